/**
 * A fresh expansion is saved from its layout (SubtaskLayout), its records not built on the way;
 * an expansion whose records were read is saved from them, changes and all. On PGlite: what
 * is shown here is one process's.
 */
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { batchStopTemplate, expandTask, hostIds } from './test-support/databases.js';

async function openStore(headSubtasks: number): Promise<PostgresStore> {
  const db = await PGlite.create();
  const store = await PostgresStore.open(await createPgliteDriver(db), { headSubtasks });
  onTestFinished(async () => {
    await store.close();
    await db.close();
  });
  return store;
}

describe('saving an expansion', () => {
  for (const headSubtasks of [0, 8]) {
    const how = headSubtasks === 0 ? 'in one transaction' : 'head first';
    it(`${how}: saves from the layout and builds no record, claims included`, async () => {
      const store = await openStore(headSubtasks);
      const expanded = await expandTask(store, batchStopTemplate(), {
        listMap: { host_ids: hostIds(20) },
      });
      const now = expanded.task.startTime;
      const claims = await store.insertTaskAndClaim(
        expanded,
        { actor: 'test', now },
        { executor: 'e1', limit: 5, now },
      );
      expect(claims.map((c) => c.subtask.id)).toHaveLength(5);
      expect(expanded.layout?.built).toBe(false);
      await store.restsWritten();
      // What was saved is what the records say, once they are built.
      const saved = await store.listSubtasks(expanded.task.id);
      const claimed = new Set(claims.map((c) => c.subtask.id));
      const records = expanded.subtasks;
      expect(saved.map((s) => s.id)).toEqual(records.map((s) => s.id));
      for (const [i, s] of saved.entries()) {
        const record = records[i]!;
        expect({ ...s, status: record.status, startTime: undefined, executor: undefined }).toEqual({
          ...record,
          startTime: undefined,
          executor: undefined,
        });
        expect(s.status).toBe(claimed.has(s.id) ? 'RUNNING' : record.status);
      }
    });
  }

  it('saves the records once they were read, as the reader left them', async () => {
    const store = await openStore(8);
    const expanded = await expandTask(store, batchStopTemplate(), {
      listMap: { host_ids: hostIds(20) },
    });
    // A field no store changes, changed by hand: only a save from the records can keep it.
    (expanded.subtasks[0] as { description: string }).description = 'changed before saving';
    await store.insertTask(expanded, { actor: 'test', now: expanded.task.startTime });
    await store.restsWritten();
    const saved = await store.listSubtasks(expanded.task.id);
    expect(saved[0]?.description).toBe('changed before saving');
    expect(saved[1]?.description).toBe(expanded.subtasks[1]?.description);
  });
});
