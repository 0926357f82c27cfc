import type { SqlDriver } from './sql-driver.js';
import { migration001 } from './migrations/001-init.js';
import { migration002 } from './migrations/002-id-blocks.js';
import { migration003 } from './migrations/003-quiet-alone.js';
import { migration004 } from './migrations/004-claim-many-tasks.js';
import { migration005 } from './migrations/005-submit-head-first.js';
import { migration006 } from './migrations/006-rest-as-runs.js';
import { migration007 } from './migrations/007-paced-work-notices.js';
import { migration008 } from './migrations/008-save-and-claim.js';
import { migration009 } from './migrations/009-rest-in-chunks.js';
import { migration010 } from './migrations/010-lock-tasks-last.js';

/** One step of the schema: applied once, in version order, never edited once released. */
export interface Migration {
  /** 1, 2, 3…: the order migrations are applied in. */
  readonly version: number;
  /** Short name, recorded with the version. */
  readonly name: string;
  /** The SQL, for the given schema name (a plain identifier). */
  readonly sql: (schema: string) => string;
}

/** Every migration, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  migration001,
  migration002,
  migration003,
  migration004,
  migration005,
  migration006,
  migration007,
  migration008,
  migration009,
  migration010,
];

/** Advisory lock key (first half) under which migrations are applied. */
const MIGRATION_LOCK = 7290100;

/**
 * Applies the migrations `schema` lacks, in one transaction holding an advisory lock, so that
 * engines starting together apply each migration once. Returns the versions it applied.
 */
export async function applyMigrations(
  driver: SqlDriver,
  schema: string,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  return driver.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK, schema]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.dagops_migrations (
        version int4 PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    const { rows } = await tx.query<{ version: number }>(
      `SELECT version FROM ${schema}.dagops_migrations`,
    );
    const done = new Set(rows.map((row) => Number(row.version)));
    const applied: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql(schema));
      await tx.query(`INSERT INTO ${schema}.dagops_migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    return applied;
  });
}

/**
 * The migrations `schema` lacks (all of them when it has none): a store opened with
 * `migrate: false` refuses to run on a schema older than its code.
 */
export async function missingMigrations(
  driver: SqlDriver,
  schema: string,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<Migration[]> {
  const { rows: tables } = await driver.query<{ present: boolean }>(
    'SELECT to_regclass($1) IS NOT NULL AS present',
    [`${schema}.dagops_migrations`],
  );
  if (!tables[0]?.present) return [...migrations];
  const { rows } = await driver.query<{ version: number }>(
    `SELECT version FROM ${schema}.dagops_migrations`,
  );
  const done = new Set(rows.map((row) => Number(row.version)));
  return migrations.filter((migration) => !done.has(migration.version));
}
