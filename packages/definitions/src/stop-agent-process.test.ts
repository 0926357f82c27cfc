import { readFileSync } from 'node:fs';
import type { DagopsError } from '@dagops/engine';
import { ErrorCode, TaskArgumentsError } from '@dagops/engine';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  AgentProcessNotFoundError,
  AgentProcessNotOperableError,
  HostNotFoundError,
  HostOperationConflictError,
} from './errors.js';
import { SimulatedAgent } from './simulated-agent.js';
import { stopAgentProcess } from './stop-agent-process.js';
import { AGENT_TIME, expectProcessShape } from './test-support/host-agent-conformance.js';
import {
  createLocalFleet,
  killStrays,
  pidExists,
  type LocalFleet,
} from './test-support/local-fleet.js';

const seed = JSON.parse(
  readFileSync(new URL('../test-fixtures/seed-003-stop-process.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

const jsonType = (value: unknown) => (value === null ? 'null' : typeof value);

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('stopAgentProcess (seed 003)', () => {
  let fleet: LocalFleet | undefined;
  afterEach(async () => {
    await fleet?.cleanup();
    fleet = undefined;
  });
  afterAll(() => {
    expect(killStrays()).toEqual([]);
  });

  it('returns the seed record: same keys in order, same JSON types, pid 0 and STOPPED', async () => {
    const agent = new SimulatedAgent({ hostIds: [20], utcOffsetMinutes: 480 });
    const obstat2 = (await agent.listProcesses(20)).find((p) => p.alias === 'obstat2');
    const record = await stopAgentProcess(agent, 20, obstat2?.id as number);
    expect(Object.keys(record)).toEqual(Object.keys(seed));
    for (const [key, value] of Object.entries(seed)) {
      expect(jsonType(record[key as keyof typeof record]), key).toBe(jsonType(value));
    }
    expect(record).toMatchObject({
      alias: 'obstat2',
      hostId: 20,
      pid: 0,
      status: 'STOPPED',
      elapsedTime: 0,
      operable: true,
      ports: null,
      startCommand: null,
      user: null,
      logFilePattern: seed['logFilePattern'],
    });
    for (const key of ['createTime', 'updateTime', 'lastActiveTime'] as const) {
      expect(seed[key]).toMatch(AGENT_TIME);
      expect(record[key]).toMatch(AGENT_TIME);
      expect(record[key]).toMatch(/\+08:00$/);
    }
    expect(agent.marks()).toEqual([]);
  });

  it('stops a real process: the record says STOPPED and the pid is gone', async () => {
    fleet = await createLocalFleet({ hosts: { 20: ['ocp_agentd', 'obstat2'] } });
    const [agentd, obstat2] = await fleet.agent.listProcesses(20);
    const record = await stopAgentProcess(fleet.agent, 20, obstat2?.id as number);
    expectProcessShape(record);
    expect(record).toMatchObject({ alias: 'obstat2', status: 'STOPPED', pid: 0 });
    expect(pidExists(obstat2?.pid as number)).toBe(false);
    expect(pidExists(agentd?.pid as number)).toBe(true);
    expect(await fleet.agent.getOperation(20)).toBeUndefined();
  });

  it('rejects unknown hosts and processes with 20000 errors naming the id', async () => {
    const agent = new SimulatedAgent({ hostIds: [20] });
    const host = await rejection(stopAgentProcess(agent, 21, 1));
    expect(host).toBeInstanceOf(HostNotFoundError);
    expect(host).toMatchObject({ code: ErrorCode.TASK_NOT_FOUND, hostId: 21 });
    expect((host as Error).message).toBe('host 21 does not exist');
    const proc = await rejection(stopAgentProcess(agent, 20, 200));
    expect(proc).toBeInstanceOf(AgentProcessNotFoundError);
    expect(proc).toMatchObject({ code: ErrorCode.TASK_NOT_FOUND, agentProcess: 200 });
    expect((proc as Error).message).toBe('agent process 200 does not exist on host 20');
  });

  it('rejects ids that are not positive safe integers, naming each', async () => {
    const error = await rejection(stopAgentProcess(new SimulatedAgent(), 0, 1.5));
    expect(error).toBeInstanceOf(TaskArgumentsError);
    expect((error as TaskArgumentsError).issues.map((i) => [i.path, i.value])).toEqual([
      ['hostId', 0],
      ['agentProcessId', 1.5],
    ]);
  });

  it('refuses a process users may not operate, and a host under another operation', async () => {
    const agent = new SimulatedAgent({ hostIds: [20] });
    agent.setOperable(20, 'obstat2', false);
    const [agentd, , , obstat2] = await agent.listProcesses(20);
    const notOperable = await rejection(stopAgentProcess(agent, 20, obstat2?.id as number));
    expect(notOperable).toBeInstanceOf(AgentProcessNotOperableError);
    expect((notOperable as DagopsError).code).toBe(ErrorCode.TASK_STATE_INVALID);

    await agent.markOperation(20, 'task:77');
    const busy = await rejection(stopAgentProcess(agent, 20, agentd?.id as number));
    expect(busy).toBeInstanceOf(HostOperationConflictError);
    expect((busy as Error).message).toContain('task:77');
    expect(agent.fleetState()['20']?.['ocp_agentd']).toBe('STARTED');
  });

  it('releases the host even when the stop fails', async () => {
    const agent = new SimulatedAgent({ hostIds: [20] });
    agent.injectFault({ kind: 'fail', action: 'stop' });
    const [agentd] = await agent.listProcesses(20);
    await expect(stopAgentProcess(agent, 20, agentd?.id as number)).rejects.toThrow(
      'injected fault',
    );
    expect(agent.marks()).toEqual([]);
  });
});
