/**
 * The runs of a head-first task's rest (subtask-runs.ts), decoded by the SQL that reads them
 * (migration 006) on PGlite: whatever the arrays, the database gets back exactly what was
 * encoded; an expanded batch stop's rest is small.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchStopTemplate, hostIds, insertTask } from '../test-support/databases.js';
import { restDecoder } from '../test-support/rest-decoder.js';
import { encodeSubtasks, toSubtaskArrays } from './subtask-arrays.js';
import { RunsBuilder, TextsBuilder, toCodedTexts, toRuns } from './subtask-runs.js';

const database = restDecoder();

/** What the database makes of `rest`'s array `name` (rest_ints / rest_texts). */
async function decoded(rest: object, name: string, texts = false): Promise<unknown[]> {
  const arrays = await database.decode(rest, texts ? [] : [name], texts ? [name] : []);
  return arrays[name] as unknown[];
}

/** What the rest holds: ids, counts, indexes (small ones repeat, and make runs). */
const ids = fc.array(fc.oneof(fc.nat(5), fc.maxSafeNat()), { maxLength: 60 });

describe('runs', () => {
  it('cover every value once, in order', () => {
    fc.assert(
      fc.property(ids, (values) => {
        const { s, d, n } = toRuns(values);
        expect(n.reduce((a, b) => a + b, 0)).toBe(values.length);
        expect(n.every((length) => length >= 1)).toBe(true);
        const back = s.flatMap((start, r) =>
          Array.from({ length: n[r] as number }, (_, i) => start + (d[r] as number) * i),
        );
        expect(back).toEqual(values);
        // Every run but the last holds two values at least: three numbers per two at worst.
        expect(n.length).toBeLessThanOrEqual(Math.ceil(values.length / 2));
      }),
    );
  });

  it('are the same built a stretch at a time as one value at a time', () => {
    const piece = fc.oneof(
      fc.record({ one: fc.integer({ min: -3, max: 3 }) }),
      fc.record({
        start: fc.integer({ min: -3, max: 3 }),
        step: fc.integer({ min: -2, max: 2 }),
        n: fc.nat(7),
      }),
      fc.record({
        all: fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 9 }),
        offset: fc.nat(5),
      }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const fast = new RunsBuilder();
        const values: number[] = [];
        for (const p of pieces) {
          if ('one' in p) {
            fast.push(p.one);
            values.push(p.one);
          } else if ('all' in p) {
            fast.pushAll(Int32Array.from(p.all), 0, p.all.length, p.offset);
            values.push(...p.all.map((v) => v + p.offset));
          } else {
            fast.pushRun(p.start, p.step, p.n);
            for (let j = 0; j < p.n; j++) values.push(p.start + p.step * j);
          }
        }
        expect(fast.build()).toEqual(toRuns(values));
      }),
    );
    const texts = new TextsBuilder();
    texts.pushMany('READY', 3);
    texts.pushMany('PENDING', 0);
    texts.push('PENDING');
    texts.pushMany('READY', 2);
    expect(texts.build()).toEqual(
      toCodedTexts(['READY', 'READY', 'READY', 'PENDING', 'READY', 'READY']),
    );
  });

  it('are read back by the database as the integers encoded', async () => {
    const safe = fc.array(fc.integer({ min: -1_000_000, max: 2 ** 40 }), { maxLength: 60 });
    await fc.assert(
      fc.asyncProperty(fc.oneof(safe, fc.array(fc.nat(3), { maxLength: 60 })), async (values) => {
        expect(await decoded({ runs: 1, a: toRuns(values) }, 'a')).toEqual(values);
      }),
      { numRuns: 60 },
    );
  });

  it('are read back by the database as the strings encoded', async () => {
    const texts = fc.array(fc.constantFrom('READY', 'PENDING', 'EXECUTE', 'a"b', 'é', ''), {
      maxLength: 40,
    });
    await fc.assert(
      fc.asyncProperty(texts, async (values) => {
        expect(await decoded({ runs: 1, t: toCodedTexts(values) }, 't', true)).toEqual(values);
      }),
      { numRuns: 60 },
    );
  });

  it('leave plain arrays (a rest saved before migration 006) as they are', async () => {
    expect(await decoded({ a: [3, 1, 2] }, 'a')).toEqual([3, 1, 2]);
    expect(await decoded({ t: ['x', 'y'] }, 't', true)).toEqual(['x', 'y']);
  });

  it('make the rest of a 10,000-host batch stop a few hundred bytes', async () => {
    const { subtasks } = await insertTask(database.store, batchStopTemplate(), {
      listMap: { host_ids: hostIds(10_000) },
    });
    const first = subtasks[0]?.id ?? 0;
    const arrays = toSubtaskArrays(subtasks, first);
    const { rest } = encodeSubtasks(subtasks, first, 512);
    if (rest === undefined)
      throw new Error('a task of 30,002 subtasks and a head of 512 has a rest');
    const bytes = JSON.stringify(rest).length;
    expect(bytes).toBeLessThan(2_000);
    expect(JSON.stringify(arrays).length).toBeGreaterThan(500 * bytes);
    expect(await decoded(rest, 'downs')).toEqual(arrays.downs);
    expect(await decoded(rest, 'statuses', true)).toEqual(arrays.statuses);
  });
});
