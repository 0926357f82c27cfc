/**
 * The conformance suite every {@link HostAgent} passes: the same behaviour whether the processes
 * are simulated or real.
 */
import type { DagopsError } from '@dagops/engine';
import { ErrorCode } from '@dagops/engine';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AgentProcessNotFoundError,
  HostNotFoundError,
  HostOperationConflictError,
} from '../errors.js';
import { AgentProcessStatus, type HostAgent, type HostAgentProcess } from '../host-agent.js';

/** What a conformance run needs from an agent under test. */
export interface AgentFixture {
  readonly agent: HostAgent;
  /** A host with at least two operable processes, all STARTED. */
  readonly hostId: number;
  /** A host id the agent does not know. */
  readonly unknownHostId: number;
  /** Ends everything the fixture started. */
  cleanup(): Promise<void>;
}

/** Keys of OCP's HostAgentProcess, in the seed's order (seed 003). */
export const HOST_AGENT_PROCESS_KEYS = [
  'alias',
  'createTime',
  'elapsedTime',
  'hostId',
  'id',
  'lastActiveTime',
  'logFilePattern',
  'operable',
  'pid',
  'ports',
  'startCommand',
  'status',
  'updateTime',
  'user',
] as const;

/** ISO-8601 to the second with a UTC offset, as OCP writes HostAgentProcess times. */
export const AGENT_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/;

/** Checks the wire shape of a record. */
export function expectProcessShape(record: HostAgentProcess): void {
  expect(Object.keys(record)).toEqual(HOST_AGENT_PROCESS_KEYS);
  expect(record.createTime).toMatch(AGENT_TIME);
  expect(record.updateTime).toMatch(AGENT_TIME);
  if (record.lastActiveTime !== null) expect(record.lastActiveTime).toMatch(AGENT_TIME);
  expect(Number.isSafeInteger(record.elapsedTime) && record.elapsedTime >= 0).toBe(true);
  if (record.status === AgentProcessStatus.STOPPED) {
    expect(record).toMatchObject({ pid: 0, elapsedTime: 0, user: null, startCommand: null });
    expect(record.ports).toBeNull();
  } else {
    expect(record.status).toBe(AgentProcessStatus.STARTED);
    expect(record.pid).toBeGreaterThan(0);
    expect(typeof record.user).toBe('string');
    expect(typeof record.startCommand).toBe('string');
  }
  expect(JSON.parse(JSON.stringify(record))).toEqual(record);
}

/** Registers the suite under `describe(name)`. */
export function describeHostAgentConformance(
  name: string,
  create: () => Promise<AgentFixture>,
): void {
  describe(`${name} (HostAgent conformance)`, () => {
    let fixture: AgentFixture;
    let agent: HostAgent;
    let hostId: number;

    beforeEach(async () => {
      fixture = await create();
      ({ agent, hostId } = fixture);
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    const first = async () => (await agent.listProcesses(hostId))[0] as HostAgentProcess;

    it('lists every process in the seed shape, all running', async () => {
      const processes = await agent.listProcesses(hostId);
      expect(processes.length).toBeGreaterThanOrEqual(2);
      for (const record of processes) {
        expectProcessShape(record);
        expect(record.hostId).toBe(hostId);
        expect(record.status).toBe(AgentProcessStatus.STARTED);
      }
      expect(new Set(processes.map((p) => p.alias)).size).toBe(processes.length);
      expect(new Set(processes.map((p) => p.id)).size).toBe(processes.length);
    });

    it('stops a process (pid 0, STOPPED), and stopping again changes nothing', async () => {
      const target = await first();
      const stopped = await agent.stopProcess(hostId, target.id);
      expectProcessShape(stopped);
      expect(stopped).toMatchObject({ id: target.id, status: 'STOPPED', pid: 0 });
      expect(await agent.stopProcess(hostId, target.id)).toMatchObject({ status: 'STOPPED' });
      const listed = (await agent.listProcesses(hostId)).find((p) => p.id === target.id);
      expect(listed?.status).toBe('STOPPED');
      const others = (await agent.listProcesses(hostId)).filter((p) => p.id !== target.id);
      for (const other of others) expect(other.status).toBe('STARTED');
    });

    it('starts a stopped process with a new pid; starting again keeps it', async () => {
      const target = await first();
      await agent.stopProcess(hostId, target.id);
      const started = await agent.startProcess(hostId, target.id);
      expectProcessShape(started);
      expect(started.status).toBe('STARTED');
      expect(started.pid).not.toBe(target.pid);
      expect((await agent.startProcess(hostId, target.id)).pid).toBe(started.pid);
    });

    it('restarts a running process (new pid) and starts a stopped one', async () => {
      const target = await first();
      const restarted = await agent.restartProcess(hostId, target.id);
      expect(restarted.status).toBe('STARTED');
      expect(restarted.pid).not.toBe(target.pid);
      await agent.stopProcess(hostId, target.id);
      expect((await agent.restartProcess(hostId, target.id)).status).toBe('STARTED');
    });

    it('rejects an unknown host or process id with a 20000 error naming it', async () => {
      const { unknownHostId } = fixture;
      const target = await first();
      const calls = [
        () => agent.listProcesses(unknownHostId),
        () => agent.stopProcess(unknownHostId, target.id),
        () => agent.startProcess(unknownHostId, target.id),
        () => agent.restartProcess(unknownHostId, target.id),
        () => agent.markOperation(unknownHostId, 'task:1'),
        () => agent.clearOperation(unknownHostId, 'task:1'),
        () => agent.getOperation(unknownHostId),
        () => agent.recordOperationNote(unknownHostId, 'task:1', 'k', []),
      ];
      for (const call of calls) {
        const error = await call().then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        expect(error).toBeInstanceOf(HostNotFoundError);
        expect((error as DagopsError).code).toBe(ErrorCode.TASK_NOT_FOUND);
        expect((error as Error).message).toContain(`host ${unknownHostId}`);
      }
      const missing = 987_654_321;
      for (const call of [
        () => agent.stopProcess(hostId, missing),
        () => agent.startProcess(hostId, missing),
        () => agent.restartProcess(hostId, missing),
      ]) {
        const error = await call().then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        expect(error).toBeInstanceOf(AgentProcessNotFoundError);
        expect((error as DagopsError).code).toBe(ErrorCode.TASK_NOT_FOUND);
        expect((error as Error).message).toContain(`agent process ${missing}`);
      }
    });

    it('marks a host once: the same owner again is a no-op, another owner is refused', async () => {
      const mark = await agent.markOperation(hostId, 'task:1');
      expect(mark).toMatchObject({ hostId, owner: 'task:1', notes: {} });
      expect(mark.markedAt).toMatch(AGENT_TIME);
      expect(await agent.markOperation(hostId, 'task:1')).toEqual(mark);
      const refused = await agent.markOperation(hostId, 'task:2').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(HostOperationConflictError);
      expect(refused).toMatchObject({
        code: ErrorCode.TASK_STATE_INVALID,
        hostId,
        owner: 'task:2',
        heldBy: 'task:1',
      });
      expect((refused as Error).message).toContain('task:1');
      expect(await agent.clearOperation(hostId, 'task:2')).toBe(false);
      expect((await agent.getOperation(hostId))?.owner).toBe('task:1');
      expect(await agent.clearOperation(hostId, 'task:1')).toBe(true);
      expect(await agent.clearOperation(hostId, 'task:1')).toBe(false);
      expect(await agent.getOperation(hostId)).toBeUndefined();
      expect((await agent.markOperation(hostId, 'task:2')).owner).toBe('task:2');
    });

    it('keeps notes under the mark: first write wins, only for the owner, gone with the mark', async () => {
      await expect(agent.recordOperationNote(hostId, 'task:1', 'plan', ['a'])).rejects.toThrow(
        HostOperationConflictError,
      );
      await agent.markOperation(hostId, 'task:1');
      expect(await agent.recordOperationNote(hostId, 'task:1', 'plan', ['a', 'b'])).toEqual([
        'a',
        'b',
      ]);
      expect(await agent.recordOperationNote(hostId, 'task:1', 'plan', ['c'])).toEqual(['a', 'b']);
      await expect(agent.recordOperationNote(hostId, 'task:2', 'plan', ['c'])).rejects.toThrow(
        HostOperationConflictError,
      );
      expect((await agent.getOperation(hostId))?.notes).toEqual({ plan: ['a', 'b'] });
      await agent.clearOperation(hostId, 'task:1');
      await agent.markOperation(hostId, 'task:1');
      expect((await agent.getOperation(hostId))?.notes).toEqual({});
    });

    it('does nothing for an already aborted signal', async () => {
      const target = await first();
      const signal = AbortSignal.abort(new Error('stop right there'));
      await expect(agent.stopProcess(hostId, target.id, { signal })).rejects.toThrow(
        'stop right there',
      );
      await expect(agent.markOperation(hostId, 'task:1', { signal })).rejects.toThrow();
      expect((await first()).status).toBe('STARTED');
      expect(await agent.getOperation(hostId)).toBeUndefined();
    });
  });
}
