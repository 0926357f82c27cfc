/**
 * Claims of a task another engine submitted: the store reads the task's shape (what never
 * changes of its subtasks) once, however many claims of it arrive together. Before this was
 * single-flight, 128 lanes claiming a 1,000-host task on a joining engine read its 3,002-row
 * shape 128 times and that engine did almost nothing else.
 */
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import type { SqlDriver } from './sql-driver.js';
import {
  batchStopTemplate,
  countingQueries,
  hostIds,
  insertTask,
  postgresReachable,
  schemaForTest,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();

type OpenDrivers = () => Promise<[SqlDriver, SqlDriver, string | undefined]>;

function describeShapeReads(name: string, open: OpenDrivers) {
  describe(name, () => {
    it('reads the shape of a task it did not submit once for claims that arrive together', async () => {
      const [submitting, joining, schema] = await open();
      const options = schema === undefined ? {} : { schema };
      const owner = await PostgresStore.open(submitting, options);
      const counted = countingQueries(joining, '.task_shape(');
      const other = await PostgresStore.open(counted.driver, options);
      onTestFinished(async () => {
        await other.close();
        await owner.close();
      });
      const task = await insertTask(owner, batchStopTemplate(64), {
        listMap: { host_ids: hostIds(40) },
      });

      const claims = await Promise.all(
        Array.from({ length: 40 }, () =>
          other.claimReady({ executor: 'joining', limit: 1, now: Date.now() }),
        ),
      );

      const claimed = claims.flat();
      expect(claimed).toHaveLength(40);
      expect(new Set(claimed.map((c) => c.subtask.id)).size).toBe(40);
      for (const claim of claimed) {
        expect(claim.task.id).toBe(task.task.id);
        const saved = task.subtasks.find((s) => s.id === claim.subtask.id);
        expect(claim.subtask.nodeKey).toBe(saved?.nodeKey);
        expect(claim.subtask.downstreams).toEqual(saved?.downstreams);
      }
      expect(counted.count()).toBe(1);
      // Kept afterwards: later claims of the task read nothing more.
      await other.claimReady({ executor: 'joining', limit: 1, now: Date.now() });
      expect(counted.count()).toBe(1);
    });
  });
}

describeShapeReads('PGlite', async () => {
  const db = await PGlite.create();
  onTestFinished(() => db.close());
  return [await createPgliteDriver(db), await createPgliteDriver(db), undefined];
});

describe.skipIf(!reachable)('PostgreSQL server', () =>
  describeShapeReads('PostgreSQL', () => {
    const schema = schemaForTest();
    return Promise.resolve([
      createPgDriver(TEST_DATABASE_URL),
      createPgDriver(TEST_DATABASE_URL),
      schema,
    ]);
  }),
);
