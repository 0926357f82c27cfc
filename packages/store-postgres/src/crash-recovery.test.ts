/**
 * Real processes on a real PostgreSQL: an engine killed with SIGKILL in the middle of a 1,000-host
 * batch stop, then restarted; three engines sharing one batch stop, one of them killed.
 */
import { SubtaskStatus, TaskStatus } from '@dagops/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { PostgresStore } from './postgres-store.js';
import {
  batchStopTemplate,
  dropSchema,
  freshSchema,
  hostIds,
  insertTask,
  postgresReachable,
  TEST_DATABASE_URL,
} from './test-support/databases.js';
import { kill9, startWorker, until, type Worker } from './test-support/processes.js';

const reachable = await postgresReachable();
const HOSTS = 1000;
const SUBTASKS = 3 * HOSTS + 2;
const CONCURRENCY = 32;

/** What the tests check once the task has finished, and report. */
async function finalCheck(store: PostgresStore, taskId: number, workers: readonly Worker[]) {
  const task = await store.getTask(taskId);
  const subtasks = await store.listSubtasks(taskId);
  expect(task?.status).toBe(TaskStatus.SUCCESSFUL);
  expect(subtasks).toHaveLength(SUBTASKS);
  expect(subtasks.every((s) => s.status === SubtaskStatus.SUCCESSFUL)).toBe(true);
  const final = new Map(subtasks.map((s) => [s.id, s.runTime]));
  // No acknowledged transition is lost: what a store accepted is never done again.
  for (const worker of workers) {
    for (const [id, runTime] of worker.acks) expect(final.get(id)).toBe(runTime);
  }
  // Each attempt (subtask, runTime) was executed by one engine, once; every subtask ran.
  const executions = workers.flatMap((w) => w.executions.map(([id, rt]) => `${id}:${rt}`));
  expect(new Set(executions).size).toBe(executions.length);
  const executed = new Set(workers.flatMap((w) => w.executions.map(([id]) => id)));
  // The two barriers run the built-in handler, which prints nothing.
  expect(executed.size).toBe(SUBTASKS - 2);
  return { reExecuted: executions.length - (SUBTASKS - 2), subtasks };
}

describe.skipIf(!reachable)('real processes on PostgreSQL', () => {
  let schema: string;
  let store: PostgresStore;
  beforeAll(async () => {
    schema = freshSchema('dagops_crash');
    store = await PostgresStore.open(createPgDriver(TEST_DATABASE_URL), { schema });
  });
  afterAll(async () => {
    await store?.close();
    await dropSchema(schema);
  });

  it('resumes a 1,000-host batch stop after its engine is killed with SIGKILL', async () => {
    const { task } = await insertTask(store, batchStopTemplate(CONCURRENCY), {
      listMap: { host_ids: hostIds(HOSTS) },
    });
    const first = startWorker(TEST_DATABASE_URL, schema, task.id, 'engine-a');
    await until(() => first.acks.length >= 1500, 60_000, 'half of the batch stop');
    await kill9(first);
    const acked = first.acks.length;
    const second = startWorker(TEST_DATABASE_URL, schema, task.id, 'engine-a2');
    expect(await second.exited).toBe(0);
    const { reExecuted } = await finalCheck(store, task.id, [first, second]);
    console.log(
      `kill -9 after ${acked} acknowledged successes: every task finished; ${reExecuted} attempt(s) re-executed (bound: ${CONCURRENCY} in flight)`,
    );
    expect(reExecuted).toBeLessThanOrEqual(CONCURRENCY);
    expect(second.executions.length).toBeGreaterThan(0);
  });

  it('spreads a 1,000-host batch stop over three engines; two finish it when one is killed', async () => {
    const { task } = await insertTask(store, batchStopTemplate(96), {
      listMap: { host_ids: hostIds(HOSTS) },
    });
    const workers = ['engine-x', 'engine-y', 'engine-z'].map((executor) =>
      startWorker(TEST_DATABASE_URL, schema, task.id, executor, { sleepMs: 2 }),
    );
    const [victim, ...survivors] = workers as [Worker, Worker, Worker];
    const acks = () => workers.reduce((n, w) => n + w.acks.length, 0);
    await until(
      () => acks() >= 1600 && workers.every((w) => w.acks.length >= 60),
      60_000,
      'work on all three engines',
    );
    await kill9(victim);
    for (const survivor of survivors) expect(await survivor.exited).toBe(0);
    const { reExecuted, subtasks } = await finalCheck(store, task.id, workers);
    const shares = workers.map((w) => `${w.executor} ${w.executions.length}`).join(', ');
    console.log(
      `three engines (${shares} executions); ${victim.executor} killed: ${reExecuted} attempt(s) re-executed`,
    );
    for (const worker of workers) expect(worker.executions.length).toBeGreaterThan(50);
    expect(reExecuted).toBeLessThanOrEqual(CONCURRENCY);
    // What the victim left running was finished by the survivors.
    const executors = new Set(subtasks.filter((s) => s.runTime > 1).map((s) => s.executor));
    expect(executors.has(victim.executor)).toBe(false);
  });
});
