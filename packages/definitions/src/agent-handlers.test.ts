import {
  Engine,
  ErrorCode,
  HandlerRegistry,
  resolveContext,
  TaskArgumentsError,
  type HandlerContext,
  type SubtaskRecord,
  type TaskJson,
} from '@dagops/engine';
import { afterEach, describe, expect, it } from 'vitest';
import { restartAgentArguments, stopAgentArguments } from './agent-arguments.js';
import { AgentClassName } from './agent-class-names.js';
import { AgentContextKey, createAgentHandlers, registerAgentHandlers } from './agent-handlers.js';
import { restartAgentTemplate, stopAgentTemplate } from './agent-templates.js';
import { SimulatedAgent } from './simulated-agent.js';

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});

function engineFor(agent: SimulatedAgent): Engine {
  const engine = new Engine({ handlers: registerAgentHandlers(new HandlerRegistry(), agent) });
  engines.push(engine);
  return engine;
}

async function run(engine: Engine, template = stopAgentTemplate, hostId = 1): Promise<TaskJson> {
  const args =
    template === restartAgentTemplate
      ? restartAgentArguments({ hostId })
      : stopAgentArguments({ hostId });
  const task = await engine.submit(template, args, { creator: 'admin' });
  return engine.waitForTask(task.id);
}

const statuses = (task: TaskJson) => task.subtasks.map((s) => `${s.name}:${s.status}`);

async function subtaskNamed(engine: Engine, task: TaskJson, name: string): Promise<SubtaskRecord> {
  const found = (await engine.store.listSubtasks(task.id)).find((s) => s.name === name);
  if (!found) throw new Error(`no subtask ${name}`);
  return found;
}

async function outputOf(engine: Engine, task: TaskJson, name: string) {
  const subtask = await subtaskNamed(engine, task, name);
  const contexts = await engine.store.getSubtaskContexts(task.id, subtask.id);
  const record = await engine.store.getTask(task.id);
  return resolveContext(record?.context ?? task.context, contexts?.output ?? {});
}

describe('Stop OCP agent handlers', () => {
  it('stop every operable running process, leave the rest, and release the mark', async () => {
    const agent = new SimulatedAgent({ hostCount: 2 });
    agent.setProcessStatus(1, 'obstat2', 'STOPPED');
    agent.setOperable(1, 'pos_proxy', false);
    const engine = engineFor(agent);
    const task = await run(engine);
    expect(task.status).toBe('SUCCESSFUL');
    expect(agent.fleetState()['1']).toEqual({
      ocp_agentd: 'STOPPED',
      ocp_monagent: 'STOPPED',
      ocp_mgragent: 'STOPPED',
      obstat2: 'STOPPED',
      pos_proxy: 'STARTED',
    });
    expect(Object.values(agent.fleetState()['2'] ?? {}).every((s) => s === 'STARTED')).toBe(true);
    expect(agent.marks()).toEqual([]);
    const output = await outputOf(engine, task, 'Stop all OCP agent processes');
    expect(output.listMap[AgentContextKey.STOPPED_PROCESSES]).toEqual([
      '1/ocp_agentd',
      '1/ocp_monagent',
      '1/ocp_mgragent',
    ]);
    const stopAll = await subtaskNamed(engine, task, 'Stop all OCP agent processes');
    const logs = await engine.getSubtaskLogs(task.id, stopAll.id);
    expect(logs.map((l) => l.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^host 1: stopped ocp_agentd \(pid \d+\)$/)]),
    );
  });

  it('refuse a second concurrent operation on the same host', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.injectFault({ kind: 'slow', action: 'stop', delayMs: 30 });
    const engine = engineFor(agent);
    const first = await engine.submit(stopAgentTemplate, stopAgentArguments({ hostId: 1 }), {
      creator: 'alice',
    });
    await new Promise((resolve) => setTimeout(resolve, 10)); // first is stopping processes
    const second = await engine.submit(restartAgentTemplate, restartAgentArguments({ hostId: 1 }), {
      creator: 'bob',
    });
    const refused = await engine.waitForTask(second.id);
    expect(refused.status).toBe('FAILED');
    const prepare = await subtaskNamed(engine, refused, 'Prepare restart OCP agent');
    expect(prepare.status).toBe('FAILED');
    expect(prepare.error).toMatchObject({
      name: 'HostOperationConflictError',
      code: ErrorCode.TASK_STATE_INVALID,
    });
    expect(prepare.error?.message).toBe(
      `host 1 is under another operation (task:${first.id}); task:${second.id} is refused`,
    );
    expect((await engine.waitForTask(first.id)).status).toBe('SUCCESSFUL');
    // The refused task never held the mark: rolling it back leaves the host alone.
    await engine.rollbackTask(second.id, 'bob');
    expect((await engine.waitForTask(second.id)).operation).toBe('ROLLBACK');
    expect(agent.marks()).toEqual([]);
    agent.clearFaults();
    expect((await run(engine, restartAgentTemplate)).status).toBe('SUCCESSFUL');
  });

  it('fail Prepare on an unknown host with a 20000 error naming it', async () => {
    const engine = engineFor(new SimulatedAgent({ hostCount: 1 }));
    const task = await run(engine, stopAgentTemplate, 42);
    expect(statuses(task)).toContain('Prepare stop OCP agent:FAILED');
    const prepare = await subtaskNamed(engine, task, 'Prepare stop OCP agent');
    expect(prepare.error).toMatchObject({
      name: 'HostNotFoundError',
      code: ErrorCode.TASK_NOT_FOUND,
      message: 'host 42 does not exist',
    });
  });

  it('finish the same plan on retry after a lost reply, and record all of it', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    // ocp_mgragent is stopped, then the reply is lost: the attempt fails after the effect.
    agent.injectFault({
      kind: 'fail',
      action: 'stop',
      alias: 'ocp_mgragent',
      afterEffect: true,
      times: 1,
    });
    const engine = engineFor(agent);
    const failed = await run(engine);
    expect(failed.status).toBe('FAILED');
    expect(agent.fleetState()['1']).toMatchObject({
      ocp_agentd: 'STOPPED',
      ocp_mgragent: 'STOPPED',
      obstat2: 'STARTED',
    });
    await engine.retryTask(failed.id, 'admin');
    const done = await engine.waitForTask(failed.id);
    expect(done.status).toBe('SUCCESSFUL');
    const stopAll = done.subtasks.find((s) => s.name === 'Stop all OCP agent processes');
    expect(stopAll?.runTime).toBe(2);
    const output = await outputOf(engine, done, 'Stop all OCP agent processes');
    // The second attempt found three processes already stopped, yet records the whole plan.
    expect(output.listMap[AgentContextKey.STOPPED_PROCESSES]).toHaveLength(5);
    expect(Object.values(agent.fleetState()['1'] ?? {})).toEqual(Array(5).fill('STOPPED'));
  });

  it('roll back a Stop all that failed half-way (no saved output) from its noted plan', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.setProcessStatus(1, 'ocp_monagent', 'STOPPED');
    const before = agent.fleetState();
    agent.injectFault({ kind: 'fail', action: 'stop', alias: 'obstat2', afterEffect: true });
    const engine = engineFor(agent);
    const failed = await run(engine);
    expect(statuses(failed)).toEqual([
      'Prepare stop OCP agent:SUCCESSFUL',
      'Stop all OCP agent processes:FAILED',
      'Finish OCP agent operation:PENDING',
    ]);
    agent.clearFaults();
    await engine.rollbackTask(failed.id, 'admin');
    const rolledBack = await engine.waitForTask(failed.id);
    expect(rolledBack).toMatchObject({ status: 'SUCCESSFUL', operation: 'ROLLBACK' });
    expect(agent.fleetState()).toEqual(before);
    expect(agent.marks()).toEqual([]);
  });

  it('honour the signal: a hung stop is abandoned when the task is canceled', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.injectFault({ kind: 'hang', action: 'stop', alias: 'ocp_monagent' });
    const engine = engineFor(agent);
    const task = await engine.submit(stopAgentTemplate, stopAgentArguments({ hostId: 1 }), {
      creator: 'admin',
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await engine.cancelTask(task.id, 'admin');
    const canceled = await engine.waitForTask(task.id);
    expect(canceled.status).toBe('FAILED');
    const stopAll = canceled.subtasks.find((s) => s.name === 'Stop all OCP agent processes');
    expect(stopAll).toMatchObject({ status: 'FAILED', operation: 'CANCEL' });
    agent.clearFaults();
    await engine.rollbackTask(task.id, 'admin');
    expect((await engine.waitForTask(task.id)).status).toBe('SUCCESSFUL');
    expect(Object.values(agent.fleetState()['1'] ?? {})).toEqual(Array(5).fill('STARTED'));
    expect(agent.marks()).toEqual([]);
  });
});

describe('Restart OCP agent handlers', () => {
  it('restart pos_proxy, stop and start every operable process', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.setProcessStatus(1, 'obstat2', 'STOPPED');
    const before = await agent.listProcesses(1);
    const engine = engineFor(agent);
    const task = await run(engine, restartAgentTemplate);
    expect(task.status).toBe('SUCCESSFUL');
    const after = await agent.listProcesses(1);
    for (const [i, record] of after.entries()) {
      expect(record.status).toBe('STARTED');
      expect(record.pid).not.toBe(before[i]?.pid);
    }
    const output = await outputOf(engine, task, 'Start all OCP agent processes');
    expect(output.listMap).toMatchObject({
      [AgentContextKey.RESTARTED_PROCESSES]: ['1/pos_proxy:STARTED'],
      [AgentContextKey.STOPPED_PROCESSES]: [
        '1/ocp_agentd',
        '1/ocp_monagent',
        '1/ocp_mgragent',
        '1/pos_proxy',
      ],
      [AgentContextKey.STARTED_PROCESSES]: [
        '1/ocp_agentd',
        '1/ocp_monagent',
        '1/ocp_mgragent',
        '1/obstat2',
        '1/pos_proxy',
      ],
    });
    expect(agent.marks()).toEqual([]);
  });

  it('roll back a failed Start all to the fleet as it was, pos_proxy included', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.setProcessStatus(1, 'pos_proxy', 'STOPPED');
    agent.setProcessStatus(1, 'obstat2', 'STOPPED');
    agent.setOperable(1, 'ocp_agentd', false);
    const before = agent.fleetState();
    agent.injectFault({ kind: 'fail', action: 'start', alias: 'obstat2' });
    const engine = engineFor(agent);
    const failed = await run(engine, restartAgentTemplate);
    expect(statuses(failed)).toContain('Start all OCP agent processes:FAILED');
    agent.clearFaults();
    await engine.rollbackTask(failed.id, 'admin');
    const rolledBack = await engine.waitForTask(failed.id);
    expect(rolledBack).toMatchObject({ status: 'SUCCESSFUL', operation: 'ROLLBACK' });
    expect(rolledBack.subtasks.every((s) => s.status === 'PENDING')).toBe(true);
    expect(agent.fleetState()).toEqual(before);
    expect(agent.marks()).toEqual([]);
  });

  it('roll back a whole successful restart after Finish fails, re-marking then releasing', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    agent.setProcessStatus(1, 'ocp_mgragent', 'STOPPED');
    const before = agent.fleetState();
    agent.injectFault({ kind: 'fail', action: 'clear', afterEffect: true, times: 1 });
    const engine = engineFor(agent);
    const failed = await run(engine, restartAgentTemplate);
    expect(statuses(failed)).toContain('Finish OCP agent operation:FAILED');
    expect(agent.marks()).toEqual([]); // the clear happened; only its reply was lost
    await engine.rollbackTask(failed.id, 'admin');
    expect((await engine.waitForTask(failed.id)).status).toBe('SUCCESSFUL');
    expect(agent.fleetState()).toEqual(before);
    expect(agent.marks()).toEqual([]);
  });
});

describe('handlers called directly', () => {
  function context(
    taskId: number,
    subtaskId: number,
    strings: Record<string, string>,
  ): HandlerContext {
    const lists = new Map<string, readonly string[]>();
    return {
      taskId,
      subtaskId,
      runTime: 1,
      idempotencyKey: `${taskId}:${subtaskId}:1`,
      nodeKey: 'n',
      parallelIdx: -1,
      signal: new AbortController().signal,
      get: (key) => strings[key],
      getList: (key) => lists.get(key),
      set: (key, value) => void (strings[key] = value),
      setList: (key, values) => void lists.set(key, values),
      log: () => {},
    };
  }

  it('are idempotent: executing Prepare and Stop all twice changes nothing more', async () => {
    const agent = new SimulatedAgent({ hostCount: 1 });
    const handlers = createAgentHandlers(agent);
    const ctx = context(9, 90, { host_id: '1' });
    await handlers[AgentClassName.PREPARE_STOP].execute(ctx);
    await handlers[AgentClassName.PREPARE_STOP].execute(ctx);
    await handlers[AgentClassName.STOP_ALL].execute(ctx);
    const calls = agent.callCount();
    await handlers[AgentClassName.STOP_ALL].execute(ctx);
    expect(ctx.getList(AgentContextKey.STOPPED_PROCESSES)).toHaveLength(5);
    // The second run only lists, notes (a no-op) and finds everything stopped.
    expect(agent.callCount() - calls).toBe(2);
    expect(agent.marks().map((m) => m.owner)).toEqual(['task:9']);
  });

  it('refuse a context without a usable host id, naming what they got', async () => {
    const handlers = createAgentHandlers(new SimulatedAgent());
    const error = await Promise.resolve(
      handlers[AgentClassName.PREPARE_STOP].execute(context(1, 2, { host_id: '01' })),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskArgumentsError);
    expect((error as Error).message).toContain('must be a positive integer host id, got "01"');
  });
});
