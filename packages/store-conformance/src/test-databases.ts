/**
 * Stores under test on real databases: PostgreSQL (a fresh schema per store, dropped
 * afterwards) and PGlite (one in-memory database per test file, a fresh schema per store).
 */
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import {
  createPgDriver,
  createPgliteDriver,
  PostgresStore,
  type PostgresStoreOptions,
  type SqlDriver,
} from '@dagops/store-postgres';
import pg from 'pg';
import type { OpenStore, StoreUnderTest } from './describe-store-conformance.js';

/** The PostgreSQL the suites use: `DAGOPS_TEST_DATABASE_URL`, or the local test database. */
export const TEST_DATABASE_URL =
  process.env['DAGOPS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether PostgreSQL answers. With CI=true it must: an unreachable server throws (the suites
 * fail). Otherwise the PostgreSQL suites skip, saying so loudly.
 */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 3000,
  });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    if (process.env['CI'] === 'true') {
      throw new Error(
        `CI=true: the PostgreSQL suites need the server at ${TEST_DATABASE_URL} (DAGOPS_TEST_DATABASE_URL), which is unreachable: ${String(error)}`,
      );
    }
    console.warn(
      `\n${'!'.repeat(78)}\n!! PostgreSQL at ${TEST_DATABASE_URL} is unreachable: SKIPPING the PostgreSQL suites.\n!! Set DAGOPS_TEST_DATABASE_URL, or run with CI=true to make this a failure.\n${'!'.repeat(78)}\n`,
    );
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name no other run uses. */
export function freshSchema(prefix = 'dagops_t'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

async function dropSchema(driver: SqlDriver, schema: string): Promise<void> {
  await driver.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/** Moves every lease of `schema` into the past: as if the lease time had gone by. */
async function expireLeases(driver: SqlDriver, schema: string): Promise<void> {
  await driver.exec(
    `UPDATE ${schema}.subtasks SET lease_until = now() - interval '1 second'
     WHERE lease_until IS NOT NULL`,
  );
}

/**
 * Opens PostgreSQL stores: each on a fresh schema, with a second pool for `another`; `close`
 * drops the schema. `defaults` are options of every store opened. Call `end` after the file's
 * tests.
 */
export function postgresStores(defaults: PostgresStoreOptions = {}): {
  open: OpenStore;
  end(): Promise<void>;
} {
  const pools = [1, 2].map(() => new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 6 })) as [
    pg.Pool,
    pg.Pool,
  ];
  const admin = createPgDriver(pools[0]);
  const open: OpenStore = async (options = {}) => {
    const schema = freshSchema();
    const opened: PostgresStore[] = [];
    const make = async (pool: pg.Pool) => {
      const store = await PostgresStore.open(createPgDriver(pool), {
        schema,
        ...defaults,
        ...options,
      });
      opened.push(store);
      return store;
    };
    const handle: StoreUnderTest = {
      store: await make(pools[0]),
      another: () => make(pools[1]),
      async reopen() {
        await (handle.store as PostgresStore).close();
        return make(pools[0]);
      },
      expireLeases: () => expireLeases(admin, schema),
      async close() {
        for (const store of opened) await store.close();
        await dropSchema(admin, schema);
      },
    };
    return handle;
  };
  return {
    open,
    async end() {
      await admin.close();
      for (const pool of pools) await pool.end();
    },
  };
}

/**
 * Opens PGlite stores: one in-memory database for all of them (opening one costs about a
 * second), a fresh schema each; `another` is a second store on the same database. `defaults`
 * are options of every store opened. Call `end` after the file's tests.
 */
export function pgliteStores(defaults: PostgresStoreOptions = {}): {
  open: OpenStore;
  end(): Promise<void>;
} {
  let db: Promise<PGlite> | undefined;
  const database = () => (db ??= PGlite.create());
  const open: OpenStore = async (options = {}) => {
    const instance = await database();
    const admin = await createPgliteDriver(instance);
    const schema = freshSchema();
    const opened: PostgresStore[] = [];
    const make = async () => {
      const store = await PostgresStore.open(await createPgliteDriver(instance), {
        schema,
        ...defaults,
        ...options,
      });
      opened.push(store);
      return store;
    };
    const handle: StoreUnderTest = {
      store: await make(),
      another: make,
      async reopen() {
        await (handle.store as PostgresStore).close();
        return make();
      },
      expireLeases: () => expireLeases(admin, schema),
      async close() {
        for (const store of opened) await store.close();
        await dropSchema(admin, schema);
      },
    };
    return handle;
  };
  return {
    open,
    async end() {
      if (db) await (await db).close();
    },
  };
}
