import { Engine, ErrorCode, HandlerRegistry, type TaskJson } from '@dagops/engine';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  batchStopAgentArguments,
  restartAgentArguments,
  stopAgentArguments,
} from './agent-arguments.js';
import { registerAgentHandlers } from './agent-handlers.js';
import {
  batchStopAgentTemplate,
  restartAgentTemplate,
  stopAgentTemplate,
} from './agent-templates.js';
import { OCP_AGENT_PROCESS_ALIASES, type HostAgentProcess } from './host-agent.js';
import type { LocalProcessAgent } from './local-process-agent.js';
import {
  createLocalFleet,
  isAlive,
  killStrays,
  loopArgv,
  pidExists,
  trackPid,
  type LocalFleet,
} from './test-support/local-fleet.js';

/**
 * The three operations end to end: a real Engine, the real handlers, and a LocalProcessAgent
 * managing real processes (`node -e` loops standing in for the OCP agent processes).
 */

let fleet: LocalFleet | undefined;
let engine: Engine | undefined;

afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await fleet?.cleanup();
  fleet = undefined;
});
afterAll(() => {
  expect(killStrays()).toEqual([]);
});

/** Host 1: the five OCP agent processes, plus one process users may not operate. */
async function setUp(): Promise<LocalProcessAgent> {
  fleet = await createLocalFleet({ hosts: { 1: OCP_AGENT_PROCESS_ALIASES } });
  const { agent } = fleet;
  const keeper = agent.declareProcess({
    hostId: 1,
    alias: 'ob_keeper',
    argv: loopArgv(),
    operable: false,
  });
  trackPid((await agent.startProcess(1, keeper.id)).pid);
  engine = new Engine({ handlers: registerAgentHandlers(new HandlerRegistry(), agent) });
  return agent;
}

async function run(template: typeof stopAgentTemplate, args: object): Promise<TaskJson> {
  const task = await (engine as Engine).submit(template, args, { creator: 'admin' });
  return (engine as Engine).waitForTask(task.id);
}

const byAlias = (records: readonly HostAgentProcess[]) =>
  Object.fromEntries(records.map((p) => [p.alias, p]));
const statusOf = (records: readonly HostAgentProcess[]) =>
  Object.fromEntries(records.map((p) => [p.alias, p.status]));

describe('Stop OCP agent on real processes', () => {
  it('stops every operable agent process: their pids are gone', async () => {
    const agent = await setUp();
    const before = await agent.listProcesses(1);
    const task = await run(stopAgentTemplate, stopAgentArguments({ hostId: 1 }));
    expect(task.status).toBe('SUCCESSFUL');
    const after = byAlias(await agent.listProcesses(1));
    for (const record of before) {
      if (record.alias === 'ob_keeper') {
        expect(after['ob_keeper']).toMatchObject({ status: 'STARTED', pid: record.pid });
        expect(isAlive(record.pid)).toBe(true);
      } else {
        expect(after[record.alias]).toMatchObject({ status: 'STOPPED', pid: 0 });
        expect(() => process.kill(record.pid, 0)).toThrow(
          expect.objectContaining({ code: 'ESRCH' }),
        );
      }
    }
    expect(await agent.getOperation(1)).toBeUndefined();
  });

  it('is refused while another operation holds the host, touching nothing', async () => {
    const agent = await setUp();
    await agent.markOperation(1, 'task:999');
    const before = await agent.listProcesses(1);
    const task = await run(stopAgentTemplate, stopAgentArguments({ hostId: 1 }));
    expect(task.status).toBe('FAILED');
    const [prepare] = await (engine as Engine).store.listSubtasks(task.id);
    expect(prepare?.error).toMatchObject({
      name: 'HostOperationConflictError',
      code: ErrorCode.TASK_STATE_INVALID,
    });
    expect(prepare?.error?.message).toContain('task:999');
    const pick = (records: readonly HostAgentProcess[]) =>
      records.map(({ alias, pid, status }) => ({ alias, pid, status }));
    expect(pick(await agent.listProcesses(1))).toEqual(pick(before));
    expect((await agent.getOperation(1))?.owner).toBe('task:999');
  });
});

describe('Restart OCP agent on real processes', () => {
  it('restarts pos_proxy and the rest, and starts the operable ones that were stopped', async () => {
    const agent = await setUp();
    await agent.stopProcess(1, agent.processId(1, 'obstat2'));
    const before = byAlias(await agent.listProcesses(1));
    const task = await run(restartAgentTemplate, restartAgentArguments({ hostId: 1 }));
    expect(task.status).toBe('SUCCESSFUL');
    const after = byAlias(await agent.listProcesses(1));
    for (const alias of OCP_AGENT_PROCESS_ALIASES) {
      expect(after[alias]?.status).toBe('STARTED');
      expect(isAlive(after[alias]?.pid as number)).toBe(true);
      const old = before[alias]?.pid as number;
      if (old !== 0) expect(pidExists(old)).toBe(false);
    }
    expect(after['ob_keeper']?.pid).toBe(before['ob_keeper']?.pid);
    const logs = await (engine as Engine).getSubtaskLogs(
      task.id,
      task.subtasks.find((s) => s.name === 'Restart pos proxy')?.id as number,
    );
    // Restarted once by its own step (a new pid), then stopped and started with the rest.
    const restarted = /restarted pos_proxy \(pid (\d+) -> (\d+)\)/.exec(
      logs.map((l) => l.message).join('\n'),
    );
    expect(Number(restarted?.[1])).toBe(before['pos_proxy']?.pid);
    expect(Number(restarted?.[2])).not.toBe(before['pos_proxy']?.pid);
    expect(pidExists(Number(restarted?.[2]))).toBe(false);
  });

  it('rolled back after Start all fails, leaves every process as it was before the task', async () => {
    const agent = await setUp();
    // An operable process that cannot start: Start all fails on it, after starting the others.
    agent.declareProcess({ hostId: 1, alias: 'broken', argv: ['/nonexistent/bin/ocp_broken'] });
    await agent.stopProcess(1, agent.processId(1, 'ocp_monagent'));
    const before = await agent.listProcesses(1);

    const failed = await run(restartAgentTemplate, restartAgentArguments({ hostId: 1 }));
    expect(failed.status).toBe('FAILED');
    const startAll = failed.subtasks.find((s) => s.name === 'Start all OCP agent processes');
    expect(startAll?.status).toBe('FAILED');
    const [record] = (await (engine as Engine).store.listSubtasks(failed.id)).filter(
      (s) => s.id === startAll?.id,
    );
    expect(record?.error).toMatchObject({ name: 'AgentOperationError' });
    expect(record?.error?.message).toContain('/nonexistent/bin/ocp_broken');

    await (engine as Engine).rollbackTask(failed.id, 'admin');
    const rolledBack = await (engine as Engine).waitForTask(failed.id);
    expect(rolledBack).toMatchObject({ status: 'SUCCESSFUL', operation: 'ROLLBACK' });

    const after = await agent.listProcesses(1);
    expect(statusOf(after)).toEqual(statusOf(before));
    for (const record of after) {
      if (record.status === 'STARTED') expect(isAlive(record.pid)).toBe(true);
    }
    expect(byAlias(after)['ob_keeper']?.pid).toBe(byAlias(before)['ob_keeper']?.pid);
    expect(await agent.getOperation(1)).toBeUndefined();
  });
});

describe('Batch stop OCP agent on real processes', () => {
  it('stops the agent processes of every host', async () => {
    fleet = await createLocalFleet({
      hosts: { 11: ['ocp_agentd', 'pos_proxy'], 12: ['ocp_agentd', 'pos_proxy'] },
    });
    const { agent } = fleet;
    engine = new Engine({ handlers: registerAgentHandlers(new HandlerRegistry(), agent) });
    const pids = [...(await agent.listProcesses(11)), ...(await agent.listProcesses(12))].map(
      (p) => p.pid,
    );
    const task = await run(batchStopAgentTemplate, batchStopAgentArguments({ hostIds: [11, 12] }));
    expect(task.status).toBe('SUCCESSFUL');
    for (const pid of pids) expect(pidExists(pid)).toBe(false);
    for (const hostId of [11, 12]) {
      expect((await agent.listProcesses(hostId)).every((p) => p.status === 'STOPPED')).toBe(true);
    }
  });
});
