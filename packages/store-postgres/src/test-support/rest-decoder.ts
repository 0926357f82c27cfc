import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll } from 'vitest';
import { createPgliteDriver } from '../pglite-driver.js';
import { PostgresStore } from '../postgres-store.js';
import type { SqlDriver } from '../sql-driver.js';

/** The database's reading of head-first rests, for one test file (see {@link restDecoder}). */
export interface RestDecoder {
  /** The store on the database (opening it applied the migrations). */
  readonly store: PostgresStore;
  /** What `rest_ints` and `rest_texts` (migration 006) make of `rest`'s arrays, by name. */
  decode(
    rest: object,
    ints: readonly string[],
    texts?: readonly string[],
  ): Promise<Record<string, unknown[]>>;
}

/**
 * A store on a fresh in-memory PGlite, opened before the calling file's tests and closed after
 * them, and the SQL that reads a head-first task's rest on it.
 */
export function restDecoder(): RestDecoder {
  let db: PGlite | undefined;
  let driver: SqlDriver | undefined;
  let store: PostgresStore | undefined;
  beforeAll(async () => {
    db = await PGlite.create();
    driver = await createPgliteDriver(db);
    store = await PostgresStore.open(driver);
  });
  afterAll(async () => {
    await store?.close();
    await db?.close();
  });
  const opened = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('restDecoder() is used before its beforeAll ran');
    return value;
  };
  return {
    get store() {
      return opened(store);
    },
    async decode(rest, ints, texts = []) {
      const names = [...ints, ...texts];
      const calls = names.map(
        (_, i) =>
          `dagops.rest_${i < ints.length ? 'ints' : 'texts'}($1::jsonb, $${i + 2}) AS c${i}`,
      );
      const { rows } = await opened(driver).query<Record<string, unknown[]>>(
        `SELECT ${calls.join(', ')}`,
        [JSON.stringify(rest), ...names],
      );
      const row = rows[0] as Record<string, unknown[]>;
      return Object.fromEntries(names.map((name, i) => [name, row[`c${i}`] as unknown[]]));
    },
  };
}
