/**
 * Real processes for the LocalProcessAgent tests: small `node -e` loops declared as agent
 * processes in a temporary state directory, and a cleanup that leaves nothing running.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProcessAgent, LOCAL_AGENT_STATE_FILE } from '../local-process-agent.js';
import { probeProcess } from '../internal/process-identity.js';

/** argv of an agent process stand-in: a node loop that runs until signalled. */
export function loopArgv(prelude = ''): string[] {
  return [process.execPath, '-e', `${prelude}setInterval(() => {}, 1 << 30);`];
}

/** argv of a process that ignores SIGTERM (and says so in its log once it does). */
export function stubbornArgv(): string[] {
  return loopArgv(
    "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready');",
  );
}

/** Whether a pid names a live (not zombie) process. */
export function isAlive(pid: number): boolean {
  return probeProcess(pid).state === 'running';
}

/** Whether the kernel still knows the pid at all (`process.kill(pid, 0)` does not throw ESRCH). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Waits until `condition` holds, polling; throws after `timeoutMs`. */
export async function eventually(
  condition: () => boolean,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A temporary state directory with an agent on it. */
export interface LocalFleet {
  readonly stateDir: string;
  readonly agent: LocalProcessAgent;
  /** A new agent on the same directory, as after an engine restart. */
  reopen(): LocalProcessAgent;
  /** Stops every process any agent on the directory recorded, then removes the directory. */
  cleanup(): Promise<void>;
}

/** Options of {@link createLocalFleet}. */
export interface LocalFleetOptions {
  /** Processes per host, by host id. */
  readonly hosts: Readonly<Record<number, readonly string[]>>;
  /** Start them all. @default true */
  readonly start?: boolean;
  /** @default 2000 */
  readonly stopGracePeriodMs?: number;
}

/** pid → start identity of every process the tests started. */
const ALL_SPAWNED = new Map<number, string>();

/** Creates a state directory, declares the processes, and starts them. */
export async function createLocalFleet(options: LocalFleetOptions): Promise<LocalFleet> {
  const stateDir = mkdtempSync(join(tmpdir(), 'dagops-local-agent-'));
  const open = () =>
    new LocalProcessAgent({
      stateDir,
      stopGracePeriodMs: options.stopGracePeriodMs ?? 2_000,
      killTimeoutMs: 2_000,
    });
  const agent = open();
  const started: Promise<unknown>[] = [];
  for (const [host, aliases] of Object.entries(options.hosts)) {
    for (const alias of aliases) {
      const record = agent.declareProcess({
        hostId: Number(host),
        alias,
        argv: loopArgv(),
        ports: alias === 'ocp_agentd' ? [62888] : [],
      });
      if (options.start ?? true) started.push(agent.startProcess(Number(host), record.id));
    }
  }
  const records = (await Promise.all(started)) as { pid: number }[];
  for (const { pid } of records) trackPid(pid);
  return {
    stateDir,
    agent,
    reopen: open,
    async cleanup() {
      const last = open();
      for (const hostId of last.hostIds()) {
        for (const record of await last.listProcesses(hostId)) {
          if (record.status === 'STARTED') await last.stopProcess(hostId, record.id);
        }
      }
      killRecorded(stateDir);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Safety net: SIGKILLs every recorded pid that still runs with its recorded identity. */
function killRecorded(stateDir: string): void {
  let text: string;
  try {
    text = readFileSync(join(stateDir, LOCAL_AGENT_STATE_FILE), 'utf8');
  } catch {
    return;
  }
  const state = JSON.parse(text) as {
    hosts: Record<string, { processes: { run?: { pid: number; startTicks: string } }[] }>;
  };
  for (const host of Object.values(state.hosts)) {
    for (const { run } of host.processes) {
      if (!run) continue;
      const probe = probeProcess(run.pid);
      if (probe.state === 'running' && probe.identity.startTicks === run.startTicks) {
        process.kill(run.pid, 'SIGKILL');
      }
    }
  }
}

/** Registers a pid (with its current identity) to be killed by {@link killStrays}. */
export function trackPid(pid: number): void {
  const probe = probeProcess(pid);
  if (probe.state === 'running') ALL_SPAWNED.set(pid, probe.identity.startTicks);
}

/** SIGKILLs every tracked process that still runs as itself; returns those it had to kill. */
export function killStrays(): number[] {
  const killed: number[] = [];
  for (const [pid, startTicks] of ALL_SPAWNED) {
    const probe = probeProcess(pid);
    if (probe.state === 'running' && probe.identity.startTicks === startTicks) {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
  }
  ALL_SPAWNED.clear();
  return killed;
}
