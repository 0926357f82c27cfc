import { PGlite } from '@electric-sql/pglite';
import { ErrorCode, SUBTASK_TRANSITIONS, TASK_TRANSITIONS } from '@dagops/engine';
import { describe, expect, it, onTestFinished } from 'vitest';
import { applyMigrations, MIGRATIONS } from './migration.js';
import { createPgDriver } from './pg-driver.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { resolvePostgresStoreOptions } from './store-options.js';
import {
  dropSchema,
  freshSchema,
  postgresReachable,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();

describe.skipIf(!reachable)('migrations on PostgreSQL', () => {
  it('are applied once when several engines start together', async () => {
    const schema = freshSchema();
    onTestFinished(() => dropSchema(schema));
    const stores = await Promise.all(
      Array.from({ length: 5 }, () =>
        PostgresStore.open(createPgDriver(TEST_DATABASE_URL), { schema }),
      ),
    );
    onTestFinished(async () => {
      for (const store of stores) await store.close();
    });
    const driver = createPgDriver(TEST_DATABASE_URL);
    onTestFinished(() => driver.close());
    const { rows } = await driver.query<{ version: number; name: string }>(
      `SELECT version, name FROM ${schema}.dagops_migrations ORDER BY version`,
    );
    expect(rows).toEqual(MIGRATIONS.map(({ version, name }) => ({ version, name })));
    expect(await applyMigrations(driver, schema)).toEqual([]);
  });
});

describe('migrations', () => {
  it('are required with migrate: false: an older schema is refused, naming what it lacks', async () => {
    const db = await PGlite.create();
    onTestFinished(() => db.close());
    const older = MIGRATIONS.slice(0, 5);
    await applyMigrations(await createPgliteDriver(db), 'dagops', older);
    const names = MIGRATIONS.slice(5)
      .map((m) => `${m.version} (${m.name})`)
      .join(', ');
    await expect(
      PostgresStore.open(await createPgliteDriver(db), { migrate: false }),
    ).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCode.OPTIONS_INVALID,
        target: 'migrate',
        message: `store option migrate is false, but schema dagops lacks migrations ${names}: open one store with migrate: true to apply them`,
      }) as Error,
    );
    // A schema that does not exist lacks them all; once applied, migrate: false opens.
    await expect(
      PostgresStore.open(await createPgliteDriver(db), { schema: 'nothing', migrate: false }),
    ).rejects.toThrow('schema nothing lacks migrations 1 (');
    await applyMigrations(await createPgliteDriver(db), 'dagops');
    const store = await PostgresStore.open(await createPgliteDriver(db), { migrate: false });
    await store.close();
  });

  it('write the transition tables of @dagops/engine into the schema', async () => {
    const db = await PGlite.create();
    onTestFinished(() => db.close());
    const driver = await createPgliteDriver(db);
    expect(await applyMigrations(driver, 'dagops')).toEqual(MIGRATIONS.map((m) => m.version));
    const pairs = async (table: string) =>
      (
        await driver.query<{ f: string; t: string }>(
          `SELECT from_status AS f, to_status AS t FROM dagops.${table}`,
        )
      ).rows
        .map(({ f, t }) => `${f}>${t}`)
        .sort();
    const listed = (table: Readonly<Record<string, readonly string[]>>) =>
      Object.entries(table)
        .flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`))
        .sort();
    expect(await pairs('subtask_transitions')).toEqual(listed(SUBTASK_TRANSITIONS));
    expect(await pairs('task_transitions')).toEqual(listed(TASK_TRANSITIONS));
  });

  it('refuse a status move the table does not list, and count those they make', async () => {
    const db = await PGlite.create();
    onTestFinished(() => db.close());
    const store = await PostgresStore.open(await createPgliteDriver(db));
    onTestFinished(() => store.close());
    await db.exec(`
      INSERT INTO dagops.tasks (id, name, template, creator, executor, type, task_definition_id,
        context, status, operation, start_time, concurrency, prohibit_rollback,
        first_subtask_id, subtask_count, n_pending, n_ready)
      VALUES (1, 't', '{}', 'a', 'e', 'MANUAL', -1, '{}', 'RUNNING', 'EXECUTE', 0, 10, false,
        1, 2, 2, 0);`);
    await expect(
      db.query(`SELECT dagops.moved('{1}', '{1}', '{PENDING}', '{SUCCESSFUL}')`),
    ).rejects.toMatchObject({
      code: 'DG000',
      message: 'subtask 1 cannot move from PENDING to SUCCESSFUL',
    });
    await db.query(`SELECT dagops.moved('{1,1}', '{1,2}', '{PENDING,PENDING}', '{READY,READY}')`);
    const { rows } = await db.query<{ n_pending: number; n_ready: number }>(
      'SELECT n_pending, n_ready FROM dagops.tasks',
    );
    expect(rows).toEqual([{ n_pending: 0, n_ready: 2 }]);
  });
});

describe('store options', () => {
  it.each([
    [{ schema: 'Bad-Name' }, 'schema'],
    [{ schema: 'x; DROP TABLE y' }, 'schema'],
    [{ leaseSeconds: 0 }, 'leaseSeconds'],
    [{ maxBatch: 1.5 }, 'maxBatch'],
    [{ stepsInFlight: 0 }, 'stepsInFlight'],
    [{ headSubtasks: -1 }, 'headSubtasks'],
    [{ restChunkSubtasks: 0 }, 'restChunkSubtasks'],
    [{ restChunkSubtasks: 2.5 }, 'restChunkSubtasks'],
    [{ workNoticeMs: Number.NaN }, 'workNoticeMs'],
    [{ workNoticeMs: 5000 }, 'workNoticeMs'],
  ])('refuses %j, naming the option', (options, option) => {
    expect(() => resolvePostgresStoreOptions(options)).toThrow(
      expect.objectContaining({ code: ErrorCode.OPTIONS_INVALID, target: option }) as Error,
    );
    // The message names the option and the value received.
    expect(() => resolvePostgresStoreOptions(options)).toThrow(`store option ${option} must be`);
  });

  it('fills in the defaults', () => {
    expect(resolvePostgresStoreOptions()).toEqual({
      schema: 'dagops',
      leaseSeconds: 30,
      migrate: true,
      maxBatch: 512,
      stepsInFlight: 2,
      headSubtasks: 128,
      restChunkSubtasks: 2048,
      workNoticeMs: 25,
    });
  });
});
