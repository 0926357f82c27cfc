/**
 * The window of a task saved head first (migration 005): after its first transaction (task
 * row, counters, head subtasks, the rest as JSON) and before the rest's rows are written (in
 * one transaction, or a chunk a transaction: migration 009).
 * Head subtasks that succeed in the window unblock their downstreams once these are written;
 * a submitter killed with SIGKILL in the window leaves the rest to another store's reaper; a
 * rest saved as plain arrays (migration 005) is written out as well as one saved as runs; a
 * malformed rest is an error and leaves the other tasks' rests to be written.
 * On PGlite and on the PostgreSQL server.
 */
import { PGlite } from '@electric-sql/pglite';
import {
  Engine,
  HandlerRegistry,
  SubtaskStatus,
  TaskStatus,
  type Claim,
  type ExpandedTask,
  type SubtaskRecord,
} from '@dagops/engine';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { toSubtaskArrays } from './internal/subtask-arrays.js';
import type { SqlDriver } from './sql-driver.js';
import type { PostgresStoreOptions } from './store-options.js';
import {
  BATCH_STOP_CLASSES,
  batchStopTemplate,
  beforeQueries,
  expandTask,
  holdingQueries,
  hostIds,
  insertTask,
  postgresReachable,
  schemaForTest,
  TEST_DATABASE_URL,
} from './test-support/databases.js';
import { startSubmitter } from './test-support/processes.js';
import { shapeFieldsOf } from './test-support/template-arbitraries.js';

const reachable = await postgresReachable();
const HOSTS = 10;
/** Prepare ×10, Wait, Stop ×10, Wait, Finish ×10. */
const SUBTASKS = 3 * HOSTS + 2;

/** A fresh database: a driver on it and the schema the stores use there. */
interface Database {
  readonly driver: () => Promise<SqlDriver>;
  readonly schema: string | undefined;
}

function onPostgres(): Promise<Database> {
  const schema = schemaForTest('dagops_head');
  return Promise.resolve({
    driver: () => Promise.resolve(createPgDriver(TEST_DATABASE_URL)),
    schema,
  });
}

async function onPglite(): Promise<Database> {
  const db = await PGlite.create();
  onTestFinished(() => db.close());
  return { driver: () => createPgliteDriver(db), schema: undefined };
}

/** Rows of the task in the tables, read past the store (which would complete the task first). */
async function rowsOf(driver: SqlDriver, schema: string, taskId: number) {
  const { rows } = await driver.query<{ subtasks: number; rests: number }>(
    `SELECT (SELECT count(*)::int FROM ${schema}.subtasks WHERE task_id = $1) AS subtasks,
            (SELECT count(*)::int FROM ${schema}.task_rest WHERE task_id = $1) AS rests`,
    [taskId],
  );
  return rows[0] as { subtasks: number; rests: number };
}

/**
 * Two stores on `database`: a submitter whose `write_rest` calls are held until
 * `hold.release()`, and another store; both closed when the test finishes (held writes released
 * first). `inner` is the submitter's driver past the hold.
 */
async function heldSubmitterAndOther(database: Database, options: PostgresStoreOptions) {
  const inner = await database.driver();
  const hold = holdingQueries(inner, '.write_rest(');
  const submitter = await PostgresStore.open(hold.driver, options);
  const other = await PostgresStore.open(await database.driver(), options);
  onTestFinished(async () => {
    hold.release();
    await other.close();
    await submitter.close();
  });
  return { inner, hold, submitter, other, schema: submitter.schemaName };
}

/**
 * Claims and completes until nothing is claimable, checking that each claimed subtask's
 * upstreams had all succeeded and that no subtask is claimed twice; returns the ids claimed.
 */
async function drain(store: PostgresStore, expanded: ExpandedTask, succeeded: Set<number>) {
  const upstreams = new Map(expanded.subtasks.map((s) => [s.id, s.upstreams]));
  const claimed: number[] = [];
  for (;;) {
    const claims: Claim[] = await store.claimReady({ executor: 'e1', limit: 100, now: Date.now() });
    if (claims.length === 0) return claimed;
    for (const c of claims) {
      expect(succeeded.has(c.subtask.id), `subtask ${c.subtask.id} claimed twice`).toBe(false);
      for (const up of upstreams.get(c.subtask.id) ?? []) {
        expect(succeeded.has(up), `${c.subtask.id} claimed before upstream ${up}`).toBe(true);
      }
      const fence = { taskId: c.task.id, subtaskId: c.subtask.id, runTime: 1, executor: 'e1' };
      const done = await store.completeAttempt(fence, { input: {}, output: {}, now: Date.now() });
      expect(done.accepted).toBe(true);
      succeeded.add(c.subtask.id);
      claimed.push(c.subtask.id);
    }
  }
}

describe.each([
  ['PGlite', onPglite, true],
  ['PostgreSQL', onPostgres, reachable],
] as const)('a task saved head first, on %s', (_, openDatabase, runs) => {
  // head 4: some of the barrier's upstreams succeed in the window; head 10: all of them (the
  // barrier is READY once written); head 11: the barrier itself succeeds in the window, before
  // any of its downstreams' rows exist.
  // 'runs': saved from records (read before the save), the rest written by materialize from
  // its runs; 'plain arrays': the rest as migration 005 saved it, still read after migration
  // 006; 'chunks of n': saved from the layout, the rest written n subtasks a transaction
  // (write_rest, migration 009), all of them held back here.
  it.runIf(runs).each([
    [4, 'runs'],
    [10, 'runs'],
    [11, 'runs'],
    [4, 'plain arrays'],
    [4, 'chunks of 5'],
    [11, 'chunks of 3'],
    [10, 'chunks of 2048'],
  ] as const)(
    'head %i, rest as %s: subtasks that succeed before their downstreams are written unblock them',
    async (head, form) => {
      const database = await openDatabase();
      const inner = await database.driver();
      const chunk = form.startsWith('chunks') ? Number(form.split(' ')[2]) : undefined;
      const hold = holdingQueries(inner, chunk ? '.write_rest(' : 'materialize');
      const store = await PostgresStore.open(hold.driver, {
        ...(database.schema && { schema: database.schema }),
        headSubtasks: head,
        ...(chunk && { restChunkSubtasks: chunk }),
      });
      onTestFinished(async () => {
        hold.release();
        await store.close();
      });
      const schema = store.schemaName;
      const expanded = await expandTask(store, batchStopTemplate(100), {
        listMap: { host_ids: hostIds(HOSTS) },
      });
      // Records read before the save are what is saved, and the rest goes whole.
      if (!chunk) expect(expanded.subtasks).toHaveLength(SUBTASKS);
      expect(expanded.layout?.built).toBe(!chunk);
      await store.insertTask(expanded, { actor: 'test', now: Date.now() });
      const taskId = expanded.task.id;
      const ids = expanded.subtasks.map((s) => s.id);
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: head, rests: 1 });
      if (form === 'plain arrays') {
        await inner.query(`UPDATE ${schema}.task_rest SET rest = $2::json WHERE task_id = $1`, [
          taskId,
          JSON.stringify(toSubtaskArrays(expanded.subtasks, ids[0] as number)),
        ]);
      }

      // In the window: the head runs to the end of what it can reach, the rest is not visible.
      const succeeded = new Set<number>();
      const inWindow = await drain(store, expanded, succeeded);
      const readyInHead = head >= HOSTS + 1 ? HOSTS + 1 : Math.min(head, HOSTS);
      expect(inWindow.sort((a, b) => a - b)).toEqual(ids.slice(0, readyInHead));
      expect(hold.held()).toBeGreaterThan(0);
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: head, rests: 1 });
      expect((await store.getTask(taskId))?.status).toBe(TaskStatus.RUNNING);

      hold.release();
      await store.restsWritten();
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: SUBTASKS, rests: 0 });
      const written = await store.listSubtasks(taskId);
      const waitNode = written[HOSTS];
      // The barrier waits for exactly the prepares that have not succeeded yet.
      if (head < HOSTS) {
        expect(waitNode?.status).toBe(SubtaskStatus.PENDING);
        expect(written.slice(head, HOSTS).map((s) => s.status)).toEqual(
          Array(HOSTS - head).fill(SubtaskStatus.READY),
        );
      } else if (head === HOSTS) {
        expect(waitNode?.status).toBe(SubtaskStatus.READY);
      } else {
        expect(waitNode?.status).toBe(SubtaskStatus.SUCCESSFUL);
        expect(written.slice(HOSTS + 1, 2 * HOSTS + 1).map((s) => s.status)).toEqual(
          Array(HOSTS).fill(SubtaskStatus.READY),
        );
      }

      // After it: every other subtask runs once, in order, and the task succeeds.
      const after = await drain(store, expanded, succeeded);
      expect([...inWindow, ...after].sort((a, b) => a - b)).toEqual(ids);
      expect((await store.getTask(taskId))?.status).toBe(TaskStatus.SUCCESSFUL);
    },
  );

  // The rest after the first chunk: written by the next chunk, or whole by a read that needs
  // the whole task (materialize, from what task_rest says is written), the chunk writer then
  // finding nothing left to write.
  it.runIf(runs).each(['the next chunk', 'a read of the whole task'] as const)(
    'rest in chunks: what succeeds between two chunks unblocks the later subtasks, written by %s',
    async (writer) => {
      const database = await openDatabase();
      const inner = await database.driver();
      // Head 4, chunks of 4: prepares 5-8, then prepares 9-10 with the barrier and 1 stop,
      // held back until the prepares written so far have all succeeded.
      const hold = holdingQueries(inner, '.write_rest(', 1);
      const store = await PostgresStore.open(hold.driver, {
        ...(database.schema && { schema: database.schema }),
        headSubtasks: 4,
        restChunkSubtasks: 4,
      });
      onTestFinished(async () => {
        hold.release();
        await store.close();
      });
      const schema = store.schemaName;
      const expanded = await insertTask(store, batchStopTemplate(100), {
        listMap: { host_ids: hostIds(HOSTS) },
      });
      const taskId = expanded.task.id;
      const ids = expanded.subtasks.map((s) => s.id);
      const succeeded = new Set<number>();
      // The head, and the first chunk's prepares as soon as it is written (once a claim has
      // been answered); the second chunk is held.
      const early = await drain(store, expanded, succeeded);
      await expect.poll(() => hold.held()).toBe(1);
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: 8, rests: 1 });
      early.push(...(await drain(store, expanded, succeeded)));
      expect(early.sort((a, b) => a - b)).toEqual(ids.slice(0, 8));

      let written;
      if (writer === 'the next chunk') {
        hold.release();
        await store.restsWritten();
        written = await store.listSubtasks(taskId);
      } else {
        written = await store.listSubtasks(taskId);
        expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: SUBTASKS, rests: 0 });
        hold.release();
        await store.restsWritten();
      }
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: SUBTASKS, rests: 0 });
      // The barrier waits for the two prepares after the first chunk, no more, no fewer.
      expect(written.slice(8, HOSTS).map((s) => s.status)).toEqual([
        SubtaskStatus.READY,
        SubtaskStatus.READY,
      ]);
      expect(written[HOSTS]?.status).toBe(SubtaskStatus.PENDING);
      const { rows } = await inner.query<{ waiting: number }>(
        `SELECT waiting FROM ${schema}.subtasks WHERE id = $1`,
        [ids[HOSTS]],
      );
      expect(rows[0]?.waiting).toBe(2);
      const after = await drain(store, expanded, succeeded);
      expect([...early, ...after].sort((a, b) => a - b)).toEqual(ids);
      expect((await store.getTask(taskId))?.status).toBe(TaskStatus.SUCCESSFUL);
    },
  );

  // Another engine claims from the head in the window: it reads every subtask's shape from the
  // rest as saved, and neither writes the rest's rows (materialize would take the task's lock
  // from every engine's steps) nor waits for them.
  it.runIf(runs).each(['runs', 'plain arrays'] as const)(
    'another store claims the head in the window, with shapes read from the rest as %s',
    async (form) => {
      const database = await openDatabase();
      const { inner, hold, submitter, other, schema } = await heldSubmitterAndOther(database, {
        ...(database.schema && { schema: database.schema }),
        headSubtasks: 4,
        restChunkSubtasks: 5,
      });
      const expanded = await expandTask(submitter, batchStopTemplate(100), {
        listMap: { host_ids: hostIds(HOSTS) },
      });
      await submitter.insertTask(expanded, { actor: 'test', now: Date.now() });
      const taskId = expanded.task.id;
      const records = expanded.subtasks;
      if (form === 'plain arrays') {
        await inner.query(`UPDATE ${schema}.task_rest SET rest = $2::json WHERE task_id = $1`, [
          taskId,
          JSON.stringify(toSubtaskArrays(records, records[0]?.id as number)),
        ]);
      }
      const claims = await other.claimReady({ executor: 'e1', limit: 100, now: Date.now() });
      expect(claims.map((c) => c.subtask.id)).toEqual(records.slice(0, 4).map((s) => s.id));
      for (const c of claims) {
        const record = records[c.subtask.id - (records[0]?.id as number)];
        expect(shapeFieldsOf(c.subtask)).toEqual(shapeFieldsOf(record as SubtaskRecord));
        expect(c.subtask.status).toBe(SubtaskStatus.RUNNING);
        expect(c.subtask.executor).toBe('e1');
      }
      // The rest is as it was: the submitter's first chunk held, nothing else written.
      expect(await rowsOf(inner, schema, taskId)).toEqual({ subtasks: 4, rests: 1 });

      const succeeded = new Set<number>();
      for (const c of claims) {
        const fence = { taskId, subtaskId: c.subtask.id, runTime: 1, executor: 'e1' };
        await other.completeAttempt(fence, { input: {}, output: {}, now: Date.now() });
        succeeded.add(c.subtask.id);
      }
      hold.release();
      await submitter.restsWritten();
      // The rest claimed by the other store, its records from the shape it read in the window.
      const after = await drain(other, expanded, succeeded);
      expect([...succeeded].sort((a, b) => a - b)).toEqual(records.map((s) => s.id));
      expect(after).toHaveLength(SUBTASKS - 4);
      expect((await other.getTask(taskId))?.status).toBe(TaskStatus.SUCCESSFUL);
    },
  );
});

describe('the rest of a task saved head first, on PGlite (one statement at a time)', () => {
  /** A store on a fresh PGlite, recording the SQL functions it calls, in order. */
  async function recording() {
    const db = await PGlite.create();
    const inner = await createPgliteDriver(db);
    const calls: string[] = [];
    const driver = beforeQueries(inner, (text) => {
      const called = /SELECT \w+\.(\w+)\(/.exec(text)?.[1];
      if (called) calls.push(called);
      return undefined;
    });
    const store = await PostgresStore.open(driver, { headSubtasks: 4 });
    onTestFinished(async () => {
      await store.close();
      await db.close();
    });
    return { store, calls };
  }

  it('is written after the claim of its head, which does not wait behind it', async () => {
    const { store, calls } = await recording();
    const { task } = await insertTask(store, batchStopTemplate(), {
      listMap: { host_ids: hostIds(HOSTS) },
    });
    const claims = await store.claimReady({ executor: 'e1', limit: 100, now: Date.now() });
    expect(claims.map((c) => c.subtask.seriesId)).toEqual([0, 1, 2, 3]);
    await store.restsWritten();
    const saved = calls.lastIndexOf('save_task');
    expect(calls.slice(saved)).toEqual(['save_task', 'step', 'write_rest']);
    expect(await store.listSubtasks(task.id)).toHaveLength(SUBTASKS);
  });

  it('is written straight after a save that claimed its head, ahead of the next claim', async () => {
    const { store, calls } = await recording();
    const now = Date.now();
    const expanded = await expandTask(store, batchStopTemplate(), {
      listMap: { host_ids: hostIds(HOSTS) },
    });
    const claims = await store.insertTaskAndClaim(
      expanded,
      { actor: 'test', now },
      { executor: 'e1', limit: 100, now },
    );
    expect(claims.map((c) => c.subtask.seriesId)).toEqual([0, 1, 2, 3]);
    expect(await store.claimReady({ executor: 'e1', limit: 100, now })).toHaveLength(6);
    await store.restsWritten();
    const saved = calls.lastIndexOf('save_task_and_claim');
    expect(calls.slice(saved)).toEqual(['save_task_and_claim', 'write_rest', 'step']);
    expect(await store.listSubtasks(expanded.task.id)).toHaveLength(SUBTASKS);
  });

  it('is written without a claim when none comes', async () => {
    const { store, calls } = await recording();
    const { task } = await insertTask(store, batchStopTemplate(), {
      listMap: { host_ids: hostIds(HOSTS) },
    });
    await store.restsWritten();
    expect(calls.slice(calls.lastIndexOf('save_task'))).toEqual(['save_task', 'write_rest']);
    expect(await store.listSubtasks(task.id)).toHaveLength(SUBTASKS);
  });
});

describe.each([
  ['PGlite', onPglite, true],
  ['PostgreSQL', onPostgres, reachable],
] as const)('a rest that cannot be written, on %s', (_, openDatabase, runs) => {
  it.runIf(runs)('is an error, left in place, and does not stop the reaper', async () => {
    const database = await openDatabase();
    // The submitter writes the rests of tasks it saved from their layouts with write_rest.
    const {
      inner,
      submitter,
      other: reaper,
      schema,
    } = await heldSubmitterAndOther(database, {
      ...(database.schema && { schema: database.schema }),
      headSubtasks: 4,
    });
    const args = { listMap: { host_ids: hostIds(HOSTS) } };
    const bad = (await insertTask(submitter, batchStopTemplate(), args)).task.id;
    const good = (await insertTask(submitter, batchStopTemplate(), args)).task.id;
    // A rest of the new form that holds none of its arrays.
    await inner.query(`UPDATE ${schema}.task_rest SET rest = '{"runs": 1}' WHERE task_id = $1`, [
      bad,
    ]);

    expect(await reaper.reapExpired({ executor: 'r', limit: 10, now: Date.now() })).toEqual([]);
    expect(await rowsOf(inner, schema, good)).toEqual({ subtasks: SUBTASKS, rests: 0 });
    expect(await rowsOf(inner, schema, bad)).toEqual({ subtasks: 4, rests: 1 });
    await expect(reaper.listSubtasks(bad)).rejects.toThrow(
      `the rest of task ${bad} does not hold its ${SUBTASKS} subtasks`,
    );
    expect(await rowsOf(inner, schema, bad)).toEqual({ subtasks: 4, rests: 1 });
  });
});

/** Handlers of the batch stop that do nothing. */
function noOpHandlers(): HandlerRegistry {
  const handlers = new HandlerRegistry();
  for (const className of BATCH_STOP_CLASSES) handlers.register(className, { execute() {} });
  return handlers;
}

/**
 * Opens a store on `where`, checks that task `taskId` is still saved only in part, runs one
 * reaper pass (which writes the rest), then runs an engine on it until the task ends.
 */
async function recover(where: string, schema: string | undefined, taskId: number, head: number) {
  const driver = where.startsWith('pglite:')
    ? await createPgliteDriver(where.slice('pglite:'.length))
    : createPgDriver(where);
  const store = await PostgresStore.open(driver, { ...(schema && { schema }), leaseSeconds: 1 });
  try {
    expect(await rowsOf(driver, store.schemaName, taskId)).toEqual({ subtasks: head, rests: 1 });
    // Nothing of it runs yet, and none of its leases expired: the pass only writes the rest.
    expect(await store.reapExpired({ executor: 'recoverer', limit: 10, now: Date.now() })).toEqual(
      [],
    );
    expect(await rowsOf(driver, store.schemaName, taskId)).toEqual({
      subtasks: SUBTASKS,
      rests: 0,
    });
    const engine = new Engine({ store, handlers: noOpHandlers(), executor: 'recoverer' });
    try {
      const task = await engine.waitForTask(taskId);
      return { task, subtasks: await store.listSubtasks(taskId) };
    } finally {
      await engine.close();
    }
  } finally {
    await store.close();
  }
}

describe.each([
  ['a PGlite directory', 'pglite', true],
  ['PostgreSQL', 'postgres', reachable],
] as const)('a submitter killed between its two transactions, on %s', (_, kind, runs) => {
  /** Where a fresh store lives: a new PGlite directory, or a new schema on PostgreSQL. */
  async function freshStore(): Promise<{ where: string; schema: string | undefined }> {
    if (kind === 'pglite') {
      const dir = await mkdtemp(join(tmpdir(), 'dagops-head-'));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      return { where: `pglite:${dir}`, schema: undefined };
    }
    const schema = schemaForTest('dagops_head');
    return { where: TEST_DATABASE_URL, schema };
  }

  it.runIf(runs)('leaves the rest to the next store, whose reaper pass writes it', async () => {
    const { where, schema } = await freshStore();
    // Saves the task with a head of 4, is held before writing the rest, and is killed -9.
    const submitter = startSubmitter(where, schema ?? 'dagops', HOSTS, 4);
    const taskId = await submitter.saved;
    await submitter.kill9();

    const { task, subtasks } = await recover(where, schema, taskId, 4);
    expect(task.status).toBe(TaskStatus.SUCCESSFUL);
    expect(subtasks).toHaveLength(SUBTASKS);
    expect(subtasks.every((s) => s.status === SubtaskStatus.SUCCESSFUL && s.runTime === 1)).toBe(
      true,
    );
  });

  it.runIf(runs)(
    'killed between two chunks of the rest: the reaper writes what is left',
    async () => {
      const { where, schema } = await freshStore();
      // A head of 4 and one chunk of 5 written; held before the second chunk, killed -9.
      const submitter = startSubmitter(where, schema ?? 'dagops', HOSTS, 4, {
        size: 5,
        written: 1,
      });
      const taskId = await submitter.saved;
      await submitter.kill9();

      const { task, subtasks } = await recover(where, schema, taskId, 9);
      expect(task.status).toBe(TaskStatus.SUCCESSFUL);
      expect(subtasks.map((s) => s.id)).toEqual(
        Array.from({ length: SUBTASKS }, (_, i) => (subtasks[0]?.id ?? 0) + i),
      );
      expect(subtasks.every((s) => s.status === SubtaskStatus.SUCCESSFUL && s.runTime === 1)).toBe(
        true,
      );
    },
  );
});
