/**
 * encodeLayout (layout-encoding.ts) against encodeSubtasks on the records of the same fresh
 * expansion: for any template, split lists and head size, the arrays and runs are the same to
 * the element, so a task saved from its layout is the task its records describe. (What the
 * database makes of those arrays and runs is subtask-arrays.test.ts's and subtask-runs.test.ts's.)
 * And plainArrays, a chunk of the rest alone: for any range, the records of that range.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchStopTemplate, hostIds } from '../test-support/databases.js';
import { expand, firstIdArb, listsArb, templateArb } from '../test-support/template-arbitraries.js';
import { encodeLayout, plainArrays } from './layout-encoding.js';
import { encodeSubtasks } from './subtask-arrays.js';

describe('encodeLayout', () => {
  it('encodes a fresh expansion as encodeSubtasks encodes its records', () => {
    fc.assert(
      fc.property(
        templateArb,
        listsArb,
        firstIdArb,
        fc.nat(80),
        (template, listMap, firstId, head) => {
          const { layout, subtasks } = expand(template, listMap, firstId);
          const fromLayout = encodeLayout(layout!, head);
          expect(fromLayout).toEqual(encodeSubtasks(subtasks, firstId, head));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('encodes a 2,000-host batch stop as its records, head first and whole', () => {
    const { layout, subtasks } = expand(batchStopTemplate(), { host_ids: hostIds(2000) }, 1);
    for (const head of [512, Number.MAX_SAFE_INTEGER]) {
      const fromLayout = encodeLayout(layout!, head);
      expect(fromLayout).toEqual(encodeSubtasks(subtasks, 1, head));
      // The rest is a few runs, not an array of 6,002 subtasks'.
      if (fromLayout.rest) expect(JSON.stringify(fromLayout.rest).length).toBeLessThan(2000);
    }
  });

  it('builds no record', () => {
    const { layout } = expand(batchStopTemplate(), { host_ids: hostIds(50) }, 1);
    encodeLayout(layout!, 16);
    expect(layout!.built).toBe(false);
  });
});

describe('plainArrays', () => {
  it('gives the subtasks of any range alone, as the plain arrays of all give them', () => {
    fc.assert(
      fc.property(
        templateArb,
        listsArb,
        firstIdArb,
        fc.nat(),
        fc.nat(),
        (template, listMap, firstId, a, b) => {
          const { layout, subtasks } = expand(template, listMap, firstId);
          const from = a % subtasks.length;
          const to = from + 1 + (b % (subtasks.length - from));
          const chunk = plainArrays(layout!, from, to);
          const all = encodeSubtasks(subtasks, firstId).head;
          // Kinds as the whole task's (one per node), the per-subtask arrays sliced.
          expect(chunk.keys).toEqual(all.keys);
          expect(chunk.timeouts).toEqual(all.timeouts);
          for (const name of ['kind', 'parallel', 'upCounts', 'downCounts', 'statuses'] as const) {
            expect(chunk[name]).toEqual(all[name].slice(from, to));
          }
          expect(chunk.operations).toEqual(all.operations.slice(from, to));
          expect(chunk.runTimes).toEqual(all.runTimes.slice(from, to));
          // Each subtask's lists, found in the chunk's own ups and downs from its starts.
          subtasks.slice(from, to).forEach((s, i) => {
            const ups = chunk.ups.slice(
              (chunk.upStarts[i] as number) - 1,
              (chunk.upStarts[i] as number) - 1 + (chunk.upCounts[i] as number),
            );
            const downs = chunk.downs.slice(
              (chunk.downStarts[i] as number) - 1,
              (chunk.downStarts[i] as number) - 1 + (chunk.downCounts[i] as number),
            );
            expect(ups).toEqual(s.upstreams);
            expect(downs).toEqual(s.downstreams);
          });
          // Nothing of the subtasks outside the range.
          const listed = (k: 'upstreams' | 'downstreams') =>
            subtasks.slice(from, to).reduce((n, s) => n + s[k].length, 0);
          expect(chunk.ups).toHaveLength(listed('upstreams'));
          expect(chunk.downs).toHaveLength(listed('downstreams'));
        },
      ),
      { numRuns: 300 },
    );
  });
});
