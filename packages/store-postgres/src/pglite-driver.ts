import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { SqlDriver, SqlQueryable, SqlResult } from './sql-driver.js';

function queryable(db: PGlite | Transaction): SqlQueryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      const result = await db.query<R>(text, params as unknown[] | undefined);
      return { rows: result.rows };
    },
    async exec(text: string): Promise<void> {
      await db.exec(text);
    },
  };
}

/**
 * A {@link SqlDriver} on PGlite: PostgreSQL compiled to WebAssembly, in this process, with its
 * data in `dataDir` (a directory, created when missing), or in memory when `dataDir` is
 * undefined. No server to install; one process opens a directory at a time.
 *
 * @example
 * const store = await PostgresStore.open(await createPgliteDriver('./.dagops/db'));
 */
export async function createPgliteDriver(dataDir?: string | PGlite): Promise<SqlDriver> {
  const owned = !(dataDir instanceof PGlite);
  const db = dataDir instanceof PGlite ? dataDir : await PGlite.create(dataDir);
  return {
    ...queryable(db),
    transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      return db.transaction((tx) => fn(queryable(tx)));
    },
    async listen(channel, onNotify) {
      return db.listen(channel, onNotify);
    },
    async close() {
      if (owned && !db.closed) await db.close();
    },
  };
}
