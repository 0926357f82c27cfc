/**
 * NOTIFY only when another store is open (migration 3): a notifying commit holds the
 * database's notification-queue lock until it is flushed, so a lone store says nothing. An
 * eavesdropper (a plain LISTEN, not a store) tells what the database sent.
 */
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import type { SqlDriver } from './sql-driver.js';
import {
  batchStopTemplate,
  hostIds,
  insertTask,
  postgresReachable,
  schemaForTest,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();

interface Database {
  /** A new driver on the database. */
  driver(): Promise<SqlDriver>;
  /** The store schema (undefined: the default). */
  readonly schema: string | undefined;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

function describeQuiet(name: string, open: () => Promise<Database>) {
  describe(name, () => {
    it('sends nothing while one store is open, and tells a second store once it opens', async () => {
      const db = await open();
      const options = db.schema === undefined ? {} : { schema: db.schema };
      const heard: string[] = [];
      const eavesdropper = await db.driver();
      const first = await PostgresStore.open(await db.driver(), options);
      onTestFinished(async () => {
        await first.close();
        await eavesdropper.close();
      });
      await eavesdropper.listen(first.schemaName, (payload) => heard.push(payload));
      const args = { listMap: { host_ids: hostIds(2) } };

      await insertTask(first, batchStopTemplate(), args);
      await settle();
      expect(heard).toEqual([]);

      const second = await PostgresStore.open(await db.driver(), options);
      const notices: string[] = [];
      second.subscribe((notice) => notices.push(notice.kind));
      await insertTask(first, batchStopTemplate(), args);
      await settle();
      expect(heard).toEqual(['w']);
      expect(notices).toEqual(['work']);

      await second.close();
      await insertTask(first, batchStopTemplate(), args);
      await settle();
      expect(heard).toEqual(['w']);
    });

    it('does not count a store not seen for a minute (its process died)', async () => {
      const db = await open();
      const options = db.schema === undefined ? {} : { schema: db.schema };
      const heard: string[] = [];
      const eavesdropper = await db.driver();
      const store = await PostgresStore.open(await db.driver(), options);
      onTestFinished(async () => {
        await store.close();
        await eavesdropper.close();
      });
      await eavesdropper.listen(store.schemaName, (payload) => heard.push(payload));
      const args = { listMap: { host_ids: hostIds(1) } };
      await eavesdropper.query(
        `INSERT INTO ${store.schemaName}.stores (id, seen_at) VALUES ('dead', now() - interval '61 s')`,
      );
      await insertTask(store, batchStopTemplate(), args);
      await settle();
      expect(heard).toEqual([]);

      await eavesdropper.query(`UPDATE ${store.schemaName}.stores SET seen_at = now()`);
      await insertTask(store, batchStopTemplate(), args);
      await settle();
      expect(heard).toEqual(['w']);
    });
  });
}

describeQuiet('PGlite', async () => {
  const pglite = await PGlite.create();
  onTestFinished(() => pglite.close());
  return { driver: () => createPgliteDriver(pglite), schema: undefined };
});

describe.skipIf(!reachable)('PostgreSQL server', () =>
  describeQuiet('PostgreSQL', () => {
    const schema = schemaForTest();
    return Promise.resolve({
      driver: () => Promise.resolve(createPgDriver(TEST_DATABASE_URL)),
      schema,
    });
  }),
);
