/**
 * Steps of several engines on one task run side by side (migration 010: a step does its
 * per-subtask work first and locks its task rows last). What must hold all the same, on a real
 * PostgreSQL with one pool per engine: the task's concurrency across engines, no start after
 * a failure or a cancel is committed (a claim the task no longer allows goes back to READY as
 * it was), counters that match the rows, head-first rests written beside running steps, and
 * operations that wait for the steps under way and are not starved by them.
 */
import {
  Engine,
  HandlerRegistry,
  type HandlerContext,
  type Template,
  type TaskJson,
} from '@dagops/engine';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { PostgresStore } from './postgres-store.js';
import type { SqlDriver } from './sql-driver.js';
import type { PostgresStoreOptions } from './store-options.js';
import {
  BATCH_STOP_CLASSES,
  batchStopTemplate,
  holdingQueries,
  hostIds,
  insertTask,
  postgresReachable,
  schemaForTest,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();

interface Setup {
  readonly schema: string;
  readonly engines: Engine[];
  /** What the engines logged as errors (a lock cycle would show here). */
  readonly errors: unknown[];
}

/** Waits until one backend whose query contains `needle` waits for a lock; returns how many. */
async function waitingForLock(needle: string, event?: string): Promise<number> {
  let n = 0;
  for (let i = 0; i < 200 && n === 0; i++) {
    await sleep(10);
    const [row] = await query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE wait_event_type = 'Lock' AND ($2::text IS NULL OR wait_event = $2)
         AND position($1 IN query) > 0 AND pid <> pg_backend_pid()`,
      [needle, event ?? null],
    );
    n = row!.n;
  }
  return n;
}

// Cleanups run last registered first: engines close before their stores, stores and
// connections before their schema is dropped.

/** A store on `schema` through `driver`, closed when the test ends. */
async function storeOn(
  driver: SqlDriver,
  schema: string,
  options: PostgresStoreOptions = {},
): Promise<PostgresStore> {
  const store = await PostgresStore.open(driver, { schema, ...options });
  onTestFinished(() => store.close());
  return store;
}

/** A connection of its own, for a transaction held open by hand; ended when the test ends. */
async function connection(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  onTestFinished(() => client.end());
  return client;
}

/** `count` engines, each on a store of its own (its own pool), on one fresh schema. */
async function enginesOn(
  count: number,
  handlers: HandlerRegistry,
  options: PostgresStoreOptions = {},
): Promise<Setup> {
  const schema = schemaForTest();
  const errors: unknown[] = [];
  const logger = { error: (...args: unknown[]) => errors.push(args), warn: () => {} };
  const engines: Engine[] = [];
  for (let i = 0; i < count; i++) {
    const store = await storeOn(createPgDriver(TEST_DATABASE_URL), schema, options);
    engines.push(new Engine({ store, handlers, executor: `e${i}`, concurrency: 16, logger }));
  }
  onTestFinished(async () => {
    for (const engine of engines) await engine.close();
  });
  return { schema, engines, errors };
}

/** Runs `sql` on a connection of its own. */
async function query<T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/** The task row's counters next to a count of its subtask rows by status. */
async function countersAndRows(schema: string, taskId: number) {
  const [task] = await query<Record<string, number>>(
    `SELECT n_pending, n_ready, n_running, n_canceling, n_failed, n_successful
     FROM ${schema}.tasks WHERE id = $1`,
    [taskId],
  );
  const rows = await query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM ${schema}.subtasks WHERE task_id = $1 GROUP BY status`,
    [taskId],
  );
  const counted = Object.fromEntries(
    ['pending', 'ready', 'running', 'canceling', 'failed', 'successful'].map((s) => [
      `n_${s}`,
      rows.find((r) => r.status === s.toUpperCase())?.n ?? 0,
    ]),
  );
  return { counters: task, counted };
}

/** Subtasks that never started but show a start or an executor (a claim put back wrongly). */
async function unstartedWithTraces(schema: string, taskId: number): Promise<number> {
  const [row] = await query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${schema}.subtasks
     WHERE task_id = $1 AND status IN ('PENDING', 'READY') AND run_time = 1 AND attempt = 1
       AND (start_time IS NOT NULL OR executor IS NOT NULL OR lease_until IS NOT NULL)`,
    [taskId],
  );
  return row!.n;
}

/** A handler of every batch stop class that records starts and runs at most `hold` ms. */
function recording(hold: (ctx: HandlerContext) => Promise<void>) {
  const seen = { running: 0, max: 0, starts: new Map<string, number>() };
  const handlers = new HandlerRegistry();
  for (const className of BATCH_STOP_CLASSES) {
    handlers.register(className, {
      async execute(ctx) {
        const key = `${ctx.subtaskId}:${ctx.runTime}`;
        seen.starts.set(key, (seen.starts.get(key) ?? 0) + 1);
        seen.running++;
        seen.max = Math.max(seen.max, seen.running);
        try {
          await hold(ctx);
        } finally {
          seen.running--;
        }
      },
    });
  }
  return { seen, handlers };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The batch stop without retry policies: a failure is final. */
function noRetries(concurrency: number): Template {
  const template = batchStopTemplate(concurrency);
  return { ...template, nodes: template.nodes.map(({ retry: _, ...node }) => node) };
}

async function submit(engine: Engine, template: Template, hosts: number): Promise<number> {
  const { id } = await engine.submit(
    template,
    { listMap: { host_ids: hostIds(hosts) } },
    { creator: 'test' },
  );
  return id;
}

describe.skipIf(!reachable)('steps of three engines on one task, on PostgreSQL', () => {
  it('never runs more of a task at once than its concurrency, and runs each attempt once', async () => {
    const { seen, handlers } = recording(() => sleep(2));
    const { schema, engines, errors } = await enginesOn(3, handlers);
    const id = await submit(engines[0]!, batchStopTemplate(5), 120);
    const done = await engines[1]!.waitForTask(id);
    expect(done.status).toBe('SUCCESSFUL');
    expect(seen.max).toBe(5);
    expect(seen.starts.size).toBe(360);
    expect([...seen.starts.values()].every((n) => n === 1)).toBe(true);
    const { counters, counted } = await countersAndRows(schema, id);
    expect(counters).toEqual(counted);
    expect(errors).toEqual([]);
  });

  it('starts nothing once a failure is committed, and puts back what it had claimed', async () => {
    let failed = false;
    const { seen, handlers } = recording(async (ctx) => {
      await sleep(1);
      // One prepare fails for good while the others run and claim on three engines.
      if (!failed && ctx.subtaskId % 7 === 3) {
        failed = true;
        throw new Error('host unreachable');
      }
    });
    const { schema, engines, errors } = await enginesOn(3, handlers);
    const id = await submit(engines[0]!, noRetries(24), 400);
    const done = await engines[2]!.waitForTask(id);
    expect(done.status).toBe('FAILED');
    const failedSubtasks = done.subtasks.filter((s) => s.status === 'FAILED');
    expect(failedSubtasks).toHaveLength(1);
    // Everything that started ended: nothing RUNNING, no claim left behind.
    expect(done.subtasks.filter((s) => s.status === 'RUNNING')).toEqual([]);
    const started = done.subtasks.filter((s) => s.status === 'SUCCESSFUL').length + 1;
    expect(seen.starts.size).toBe(started);
    expect(started).toBeLessThan(400);
    expect(await unstartedWithTraces(schema, id)).toBe(0);
    const { counters, counted } = await countersAndRows(schema, id);
    expect(counters).toEqual(counted);
    expect(errors).toEqual([]);
  });

  it('cancels a task while three engines run it, with no lock cycle, and rolls it back', async () => {
    const { seen, handlers } = recording(() => sleep(1));
    const { schema, engines, errors } = await enginesOn(3, handlers);
    const id = await submit(engines[0]!, noRetries(48), 600);
    while (seen.starts.size < 300) await sleep(5);
    await engines[1]!.cancelTask(id, 'ops');
    const done = await engines[2]!.waitForTask(id);
    expect([done.status, done.operation]).toEqual(['FAILED', 'CANCEL']);
    expect(done.subtasks.filter((s) => s.status === 'RUNNING')).toEqual([]);
    expect(await unstartedWithTraces(schema, id)).toBe(0);
    const canceledCounts = await countersAndRows(schema, id);
    expect(canceledCounts.counters).toEqual(canceledCounts.counted);
    await engines[0]!.rollbackTask(id, 'ops');
    const rolledBack = await engines[1]!.waitForTask(id);
    expect([rolledBack.status, rolledBack.operation]).toEqual(['SUCCESSFUL', 'ROLLBACK']);
    const rolledBackCounts = await countersAndRows(schema, id);
    expect(rolledBackCounts.counters).toEqual(rolledBackCounts.counted);
    expect(errors).toEqual([]);
  });

  it('writes head-first rests in chunks beside the steps, each upstream counted once', async () => {
    const { seen, handlers } = recording(() => sleep(1));
    const { schema, engines, errors } = await enginesOn(3, handlers, {
      headSubtasks: 8,
      restChunkSubtasks: 16,
    });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await submit(engines[i % 3]!, batchStopTemplate(64), 60));
    const done: TaskJson[] = [];
    for (const id of ids) done.push(await engines[2]!.waitForTask(id));
    expect(done.map((task) => task.status)).toEqual(ids.map(() => 'SUCCESSFUL'));
    expect(seen.starts.size).toBe(4 * 180);
    expect([...seen.starts.values()].every((n) => n === 1)).toBe(true);
    for (const id of ids) {
      const { counters, counted } = await countersAndRows(schema, id);
      expect(counters).toEqual(counted);
    }
    expect(errors).toEqual([]);
  });

  it('puts back a claim made while a failure was being committed, as the subtask was', async () => {
    const schema = schemaForTest();
    const store = await storeOn(createPgDriver(TEST_DATABASE_URL), schema, { headSubtasks: 0 });
    const expanded = await insertTask(store, noRetries(8), { listMap: { host_ids: hostIds(6) } });
    const taskId = expanded.task.id;
    const [first] = await store.claimReady({ executor: 'a', limit: 1, now: Date.now() });
    const before = await query(
      `SELECT id, status, start_time, end_time, executor, lease_until FROM ${schema}.subtasks
       WHERE task_id = $1 AND status = 'READY' ORDER BY id`,
      [taskId],
    );
    expect(before).toHaveLength(5);
    const stepSql = `SELECT ${schema}.step(NULL, $1::jsonb, $2::jsonb, $3, 30000) AS r`;
    // Step A fails the claimed prepare for good and holds its transaction open: the task is
    // FAILED in it, not yet for anyone else.
    const a = await connection();
    const b = await connection();
    const failure = { name: 'Error', message: 'host unreachable' };
    const item = { t: taskId, s: first!.subtask.id, r: 1, e: 'a', k: 'f', err: failure };
    await a.query('BEGIN');
    await a.query(stepSql, [JSON.stringify([{ ...item, now: Date.now() }]), null, Date.now()]);
    // Step B claims meanwhile from what is committed (a RUNNING task, no failure), then waits
    // for the task row.
    const claimedByB = b.query<{ r: { claims: unknown[][] } }>(stepSql, [
      null,
      JSON.stringify([{ e: 'b', n: 5 }]),
      Date.now(),
    ]);
    const blocked = await waitingForLock('.step(NULL, $1::jsonb, $2::jsonb');
    expect(blocked).toBe(1);
    await a.query('COMMIT');
    const { rows } = await claimedByB;
    expect(rows[0]!.r.claims).toEqual([[]]);
    // The five READY prepares are as they were: B's claims went back.
    const after = await query(
      `SELECT id, status, start_time, end_time, executor, lease_until FROM ${schema}.subtasks
       WHERE task_id = $1 AND status = 'READY' ORDER BY id`,
      [taskId],
    );
    expect(after).toEqual(before);
    const task = await store.getTask(taskId);
    expect(task?.status).toBe('FAILED');
    const { counters, counted } = await countersAndRows(schema, taskId);
    expect(counters).toEqual(counted);
  });

  it('makes an operation wait for a step under way on its task, then lets it through', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const { handlers } = recording(() => held);
    const { schema, engines } = await enginesOn(1, handlers);
    const id = await submit(engines[0]!, noRetries(4), 8);
    // A transaction holding what a step holds from its start: the task's shared lock.
    const step = await connection();
    await step.query('BEGIN');
    await step.query(`SELECT pg_advisory_xact_lock_shared(${schema}.task_lock_key($1))`, [id]);
    let answered = false;
    const canceled = engines[0]!.cancelTask(id, 'ops').then((task) => {
      answered = true;
      return task;
    });
    // The cancel's backend waits for the advisory lock, as long as the step is under way.
    expect(await waitingForLock('cancel_task', 'advisory')).toBe(1);
    expect(answered).toBe(false);
    await step.query('COMMIT');
    const task = await canceled;
    expect(task.operation).toBe('CANCEL');
    release();
    expect((await engines[0]!.waitForTask(id)).status).toBe('FAILED');
  });

  it('makes a rest writer wait for a step under way on its task before it counts', async () => {
    const schema = schemaForTest();
    const hold = holdingQueries(createPgDriver(TEST_DATABASE_URL), 'write_rest(');
    const store = await storeOn(hold.driver, schema, { headSubtasks: 4 });
    const expanded = await insertTask(store, batchStopTemplate(8), {
      listMap: { host_ids: hostIds(10) },
    });
    while (hold.held() === 0) await sleep(5);
    const step = await connection();
    await step.query('BEGIN');
    await step.query(`SELECT pg_advisory_xact_lock_shared(${schema}.task_lock_key($1))`, [
      expanded.task.id,
    ]);
    let written = false;
    const rests = store.restsWritten().then(() => (written = true));
    hold.release();
    expect(await waitingForLock('write_rest(', 'advisory')).toBe(1);
    expect(written).toBe(false);
    await step.query('COMMIT');
    await rests;
    const [row] = await query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema}.subtasks WHERE task_id = $1`,
      [expanded.task.id],
    );
    expect(row!.n).toBe(32);
  });
});
