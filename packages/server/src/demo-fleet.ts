import { existsSync } from 'node:fs';
import {
  AgentProcessStatus,
  OCP_AGENT_PROCESS_ALIASES,
  type LocalProcessAgent,
} from '@dagops/definitions';

/** The OCP agent ports, shown in `ports` (the demo processes do not listen on them). */
const DEMO_PORTS: Readonly<Record<string, readonly number[]>> = {
  ocp_agentd: [62888],
  ocp_monagent: [62889],
  ocp_mgragent: [62890],
  pos_proxy: [2022],
};

const BASH = ['/bin/bash', '/usr/bin/bash'].find((path) => existsSync(path));

/**
 * The start command of a demo agent process: `sleep infinity` named after the alias (bash's
 * `exec -a`, so `ps` shows `ocp_agentd`), about 1 MB each; a Node loop where bash is missing.
 */
export function demoProcessArgv(alias: string): string[] {
  if (BASH !== undefined) return [BASH, '-c', 'exec -a "$0" sleep infinity', alias];
  return [
    process.execPath,
    '-e',
    `process.title=${JSON.stringify(alias)};setInterval(()=>{},1<<30)`,
  ];
}

/** The ids of a demo fleet of `count` hosts: 1..count. */
export function demoHostIds(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i + 1);
}

/**
 * Declares the five basic OCP agent processes (`ocp_agentd`, `ocp_monagent`, `ocp_mgragent`,
 * `obstat2`, `pos_proxy`) on each demo host and starts those not running: real local processes,
 * run by the `LocalProcessAgent`. Returns how many it started.
 */
export async function startDemoFleet(agent: LocalProcessAgent, hostIds: readonly number[]) {
  let started = 0;
  for (const hostId of hostIds) {
    for (const alias of OCP_AGENT_PROCESS_ALIASES) {
      agent.declareProcess({
        hostId,
        alias,
        argv: demoProcessArgv(alias),
        ports: DEMO_PORTS[alias] ?? [],
      });
    }
    for (const record of await agent.listProcesses(hostId)) {
      if (record.status === AgentProcessStatus.STOPPED) {
        await agent.startProcess(hostId, record.id);
        started++;
      }
    }
  }
  return started;
}

/** Stops every running process of the demo hosts. Returns how many it stopped. */
export async function stopDemoFleet(agent: LocalProcessAgent, hostIds: readonly number[]) {
  let stopped = 0;
  for (const hostId of hostIds) {
    const records = await agent.listProcesses(hostId).catch(() => []);
    await Promise.all(
      records
        .filter((record) => record.status === AgentProcessStatus.STARTED)
        .map(async (record) => {
          await agent.stopProcess(hostId, record.id);
          stopped++;
        }),
    );
  }
  return stopped;
}
