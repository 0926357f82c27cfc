import { Engine, ErrorCode, HandlerRegistry, type TaskJson } from '@dagops/engine';
import { afterEach, describe, expect, it } from 'vitest';
import { batchStopAgentArguments } from './agent-arguments.js';
import { AgentClassName } from './agent-class-names.js';
import { registerAgentHandlers } from './agent-handlers.js';
import { batchStopAgentTemplate } from './agent-templates.js';
import type { AgentAction } from './errors.js';
import { OCP_AGENT_PROCESS_ALIASES } from './host-agent.js';
import { seededRandom } from './internal/seeded-random.js';
import { SimulatedAgent, type SimulatedAgentOptions } from './simulated-agent.js';

/**
 * Batch stop over 1,000 simulated hosts with random injected faults: every failure shows in the
 * task JSON, and the task can be retried to success or rolled back to the fleet as it was.
 */

const HOSTS = 1000;
const hostIds = Array.from({ length: HOSTS }, (_, i) => 5001 + i);

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.close()));
});

/** A fleet where about 10 % of the processes are stopped and 5 % are not operable. */
function fleet(options: SimulatedAgentOptions): SimulatedAgent {
  const agent = new SimulatedAgent({ hostIds, ...options });
  const random = seededRandom(99);
  for (const hostId of hostIds) {
    for (const alias of OCP_AGENT_PROCESS_ALIASES) {
      const roll = random();
      if (roll < 0.1) agent.setProcessStatus(hostId, alias, 'STOPPED');
      else if (roll < 0.15) agent.setOperable(hostId, alias, false);
    }
  }
  return agent;
}

async function batchStop(agent: SimulatedAgent): Promise<{ engine: Engine; task: TaskJson }> {
  const engine = new Engine({ handlers: registerAgentHandlers(new HandlerRegistry(), agent) });
  engines.push(engine);
  const submitted = await engine.submit(
    batchStopAgentTemplate,
    batchStopAgentArguments({ hostIds }),
    { creator: 'admin' },
  );
  return { engine, task: await engine.waitForTask(submitted.id) };
}

const STEP_OF: Record<AgentAction, string> = {
  mark: AgentClassName.PREPARE_STOP,
  note: AgentClassName.STOP_ALL,
  list: AgentClassName.STOP_ALL,
  stop: AgentClassName.STOP_ALL,
  start: AgentClassName.START_ALL,
  restart: AgentClassName.RESTART_POS_PROXY,
  clear: AgentClassName.FINISH,
};

/**
 * Every fault injected since `since` is one FAILED subtask: the step that made the call, on its
 * host's branch, with the fault's error; and nothing else is FAILED. Returns the steps that failed.
 */
async function expectEveryFailureVisible(
  engine: Engine,
  task: TaskJson,
  agent: SimulatedAgent,
  since = 0,
): Promise<string[]> {
  expect(task.status).toBe('FAILED');
  const faults = agent.injectedFaults().slice(since);
  expect(faults.length).toBeGreaterThan(0);
  const expected = faults.map((f) => `${STEP_OF[f.action]}[${hostIds.indexOf(f.hostId)}]`).sort();
  const failed = task.subtasks.filter((s) => s.status === 'FAILED');
  expect(failed.map((s) => `${s.className}[${s.parallelIdx}]`).sort()).toEqual(expected);
  const records = new Map((await engine.store.listSubtasks(task.id)).map((s) => [s.id, s]));
  for (const subtask of failed) {
    const error = records.get(subtask.id)?.error;
    expect(error).toMatchObject({
      name: 'SimulatedFaultError',
      code: ErrorCode.AGENT_OPERATION_FAILED,
    });
    expect(error?.message).toContain(`host ${hostIds[subtask.parallelIdx]}`);
  }
  return failed.map((s) => s.name);
}

describe('Batch stop over 1,000 simulated hosts with random faults', () => {
  it('shows every failure, then succeeds when retried after the faults are cleared', async () => {
    const agent = fleet({ randomFaultRate: 0.003, seed: 11 });
    const before = agent.fleetState();
    const operable = new Map<number, Set<string>>();
    for (const hostId of hostIds) {
      const records = await agent.listProcesses(hostId);
      operable.set(hostId, new Set(records.filter((p) => p.operable).map((p) => p.alias)));
    }
    const { engine, task } = await batchStop(agent);
    await expectEveryFailureVisible(engine, task, agent);

    agent.clearFaults();
    await engine.retryTask(task.id, 'admin');
    const done = await engine.waitForTask(task.id);
    expect(done.status).toBe('SUCCESSFUL');
    expect(done.subtasks).toHaveLength(3 * HOSTS + 2);
    const expected = structuredClone(before);
    for (const hostId of hostIds) {
      for (const alias of operable.get(hostId) ?? []) {
        (expected[hostId] as Record<string, string>)[alias] = 'STOPPED';
      }
    }
    expect(agent.fleetState()).toEqual(expected);
    expect(agent.marks()).toEqual([]);
  });

  it('rolls back to the fleet as it was after faults in every stage', async () => {
    // Faults stay on: each retry gets further and fails again, until a Finish fails.
    const agent = fleet({ randomFaultRate: 0.002, seed: 12 });
    const before = agent.fleetState();
    const first = await batchStop(agent);
    const { engine } = first;
    let { task } = first;
    const stages = new Set<string>();
    let seen = 0;
    for (let round = 0; round < 100; round++) {
      const failedSteps = await expectEveryFailureVisible(engine, task, agent, seen);
      seen = agent.injectedFaults().length;
      for (const step of failedSteps) stages.add(step);
      if (stages.has('Finish OCP agent operation')) break;
      await engine.retryTask(task.id, 'admin');
      task = await engine.waitForTask(task.id);
    }
    expect([...stages].sort()).toEqual([
      'Finish OCP agent operation',
      'Prepare stop OCP agent',
      'Stop all OCP agent processes',
    ]);
    expect(agent.injectedFaults().some((f) => f.afterEffect)).toBe(true);

    agent.clearFaults();
    await engine.rollbackTask(task.id, 'admin');
    const rolledBack = await engine.waitForTask(task.id);
    expect(rolledBack).toMatchObject({ status: 'SUCCESSFUL', operation: 'ROLLBACK' });
    expect(rolledBack.subtasks.every((s) => s.status === 'PENDING')).toBe(true);
    expect(agent.fleetState()).toEqual(before);
    expect(agent.marks()).toEqual([]);
  });

  it('rolls back half-done stops (lost replies included) to the fleet as it was', async () => {
    // Faults only while stopping: every host is prepared, then stops fail here and there.
    const agent = fleet({ randomFaultRate: 0.005, randomFaultActions: ['stop'], seed: 13 });
    const before = agent.fleetState();
    const { engine, task } = await batchStop(agent);
    await expectEveryFailureVisible(engine, task, agent);
    expect(
      task.subtasks.filter((s) => s.name === 'Prepare stop OCP agent' && s.status === 'SUCCESSFUL'),
    ).toHaveLength(HOSTS);
    expect(agent.fleetState()).not.toEqual(before); // some hosts are stopped
    agent.clearFaults();
    await engine.rollbackTask(task.id, 'admin');
    expect((await engine.waitForTask(task.id)).status).toBe('SUCCESSFUL');
    expect(agent.fleetState()).toEqual(before);
    expect(agent.marks()).toEqual([]);
  });
});
