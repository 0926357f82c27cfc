/**
 * Reads of a task's subtasks: a store that keeps the task's shape (it saved the task, or claims
 * from it) reads only what changes of each subtask and builds the records from the shape; they
 * are the records a store without the shape reads whole, to the key. On PGlite.
 */
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import {
  batchStopTemplate,
  countingQueries,
  hostIds,
  insertTask,
} from './test-support/databases.js';

describe('reading a task whose shape the store keeps', () => {
  it('gives the records a store without the shape reads, whatever has happened', async () => {
    const db = await PGlite.create();
    const keeper = countingQueries(await createPgliteDriver(db), 'jsonb_build_object(');
    const saver = await PostgresStore.open(keeper.driver);
    const reader = await PostgresStore.open(await createPgliteDriver(db));
    onTestFinished(async () => {
      await saver.close();
      await reader.close();
      await db.close();
    });
    const expanded = await insertTask(saver, batchStopTemplate(), {
      listMap: { host_ids: hostIds(6) },
    });
    const taskId = expanded.task.id;
    const same = async () => {
      const full = await reader.listSubtasks(taskId);
      const before = keeper.count();
      expect(await saver.listSubtasks(taskId)).toStrictEqual(full);
      expect(await saver.readTask(taskId)).toStrictEqual(await reader.readTask(taskId));
      // The saver read states only: no record built in SQL.
      expect(keeper.count()).toBe(before);
      return full;
    };
    expect((await same()).every((s) => s.status !== 'RUNNING')).toBe(true);

    // Some running (start time, executor), some succeeded (end time), one failed (error).
    const now = Date.now();
    const claims = await saver.claimReady({ executor: 'e1', limit: 4, now });
    expect(claims).toHaveLength(4);
    const fence = (i: number) => ({
      taskId,
      subtaskId: claims[i]?.subtask.id as number,
      runTime: 1,
      executor: 'e1',
    });
    await saver.completeAttempt(fence(0), {
      input: {},
      output: { stringMap: { a: '1' } },
      now: now + 5,
    });
    await saver.completeAttempt(fence(1), { input: {}, output: {}, now: now + 6 });
    const error = { name: 'Error', message: 'no agent', code: 30001 };
    await saver.failAttempt(fence(2), { input: {}, error, now: now + 7 });
    const read = await same();
    const byId = new Map(read.map((s) => [s.id, s]));
    expect(byId.get(fence(0).subtaskId)).toMatchObject({ status: 'SUCCESSFUL', endTime: now + 5 });
    expect(byId.get(fence(2).subtaskId)).toMatchObject({ status: 'FAILED', error });
    expect(byId.get(fence(3).subtaskId)).toMatchObject({ status: 'RUNNING', executor: 'e1' });
    expect(byId.get(fence(3).subtaskId)?.endTime).toBeUndefined();
  });
});
