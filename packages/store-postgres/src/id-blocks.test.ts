/**
 * Ids from blocks: a submission mostly costs no round trip for its ids, and ids stay unique
 * across stores sharing one database, however submissions interleave.
 */
import { PGlite } from '@electric-sql/pglite';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MAX_SUBTASK_BLOCK, MAX_TASK_BLOCK } from './internal/id-blocks.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { countingQueries } from './test-support/databases.js';

async function twoStores() {
  const db = await PGlite.create();
  const a = countingQueries(await createPgliteDriver(db), '.reserve_blocks(');
  const b = countingQueries(await createPgliteDriver(db), '.reserve_blocks(');
  const stores = [await PostgresStore.open(a.driver), await PostgresStore.open(b.driver)] as const;
  onTestFinished(async () => {
    for (const store of stores) await store.close();
    await db.close();
  });
  return { stores, counters: [a, b] as const };
}

describe('ids from blocks', () => {
  it('wastes nothing on a store that submits once', async () => {
    const { stores } = await twoStores();
    const first = await stores[0].reserveIds(5);
    const second = await stores[1].reserveIds(3);
    expect(second).toEqual({ taskId: first.taskId + 1, firstSubtaskId: first.firstSubtaskId + 5 });
  });

  it('costs a round trip for a small share of many submissions', async () => {
    const { stores, counters } = await twoStores();
    for (let i = 0; i < 1000; i++) await stores[0].reserveIds(3);
    // Blocks double up to MAX_TASK_BLOCK tasks: 1 + 2 + 4 + … + 64 = 127, then 64 at a time.
    const expected = Math.log2(MAX_TASK_BLOCK) + 1 + Math.ceil((1000 - 127) / MAX_TASK_BLOCK);
    expect(counters[0].count()).toBe(expected);
  });

  it('gives a task larger than any block consecutive ids of its own', async () => {
    const { stores } = await twoStores();
    await stores[0].reserveIds(2);
    await stores[0].reserveIds(2);
    const big = await stores[0].reserveIds(MAX_SUBTASK_BLOCK + 10);
    const other = await stores[1].reserveIds(1);
    expect(other.firstSubtaskId).toBeGreaterThanOrEqual(
      big.firstSubtaskId + MAX_SUBTASK_BLOCK + 10,
    );
    const after = await stores[0].reserveIds(1);
    expect(after.taskId).toBeGreaterThan(big.taskId);
  });

  it('never hands out an id twice, whatever two stores are asked at once', async () => {
    const { stores } = await twoStores();
    const tasks = new Set<number>();
    const ranges: [number, number][] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 600 })), {
          minLength: 1,
          maxLength: 60,
        }),
        async (requests) => {
          const reserved = await Promise.all(
            requests.map(([store, count]) => stores[store].reserveIds(count)),
          );
          reserved.forEach(({ taskId, firstSubtaskId }, i) => {
            expect(tasks.has(taskId)).toBe(false);
            tasks.add(taskId);
            ranges.push([firstSubtaskId, firstSubtaskId + (requests[i]?.[1] ?? 0)]);
          });
          ranges.sort((x, y) => x[0] - y[0]);
          for (let i = 1; i < ranges.length; i++) {
            expect(ranges[i]?.[0]).toBeGreaterThanOrEqual(ranges[i - 1]?.[1] as number);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
