/**
 * encodeLayout (layout-encoding.ts) against encodeSubtasks on the records of the same fresh
 * expansion: for any template, split lists and head size, the arrays and runs are the same to
 * the element, so a task saved from its layout is the task its records describe. (What the
 * database makes of those arrays and runs is subtask-arrays.test.ts's and subtask-runs.test.ts's.)
 */
import { expandTemplate, validateTemplate, type Template, type TemplateNode } from '@dagops/engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchStopTemplate, hostIds } from '../test-support/databases.js';
import { encodeLayout } from './layout-encoding.js';
import { encodeSubtasks } from './subtask-arrays.js';

const LISTS = ['a', 'b'] as const;

/** Acyclic templates: edges go forward in node order; split→split only over one list. */
const templateArb: fc.Arbitrary<Template> = fc
  .array(
    fc.record({
      split: fc.constantFrom(undefined, ...LISTS),
      method: fc.constantFrom(undefined, 'PARALLEL' as const, 'SERIAL' as const),
      className: fc.constantFrom('x.Prepare', 'x.Stop'),
      timeout: fc.constantFrom(1, 60, 0.5),
      description: fc.option(fc.constantFrom('d', 'e'), { nil: undefined }),
      prohibitRollback: fc.option(fc.boolean(), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .chain((specs) => {
    const nodes = specs.map((spec, i): TemplateNode => ({
      key: `n${i}`,
      name: `node ${i % 3}`,
      className: spec.className,
      timeout: spec.timeout,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      ...(spec.prohibitRollback === undefined ? {} : { prohibitRollback: spec.prohibitRollback }),
      ...(spec.split === undefined ? {} : { splitKey: spec.split }),
      ...(spec.split === undefined || spec.method === undefined
        ? {}
        : { splitMethod: spec.method }),
    }));
    const pairs: { from: string; to: string }[] = [];
    nodes.forEach((from, i) =>
      nodes.slice(i + 1).forEach((to) => {
        const joinable =
          from.splitKey === undefined || to.splitKey === undefined || from.splitKey === to.splitKey;
        if (joinable) pairs.push({ from: from.key, to: to.key });
      }),
    );
    return fc.subarray(pairs).map((edges): Template => ({ name: 'random', nodes, edges }));
  });

const listsArb = fc.record({
  a: fc.array(fc.constant('1'), { minLength: 1, maxLength: 12 }),
  b: fc.array(fc.constant('2'), { minLength: 1, maxLength: 12 }),
});

function expand(template: Template, listMap: Record<string, string[]>, firstId: number) {
  return expandTemplate(
    validateTemplate(template),
    { listMap },
    {
      ids: { nextTaskId: () => 7, reserveSubtaskIds: () => firstId },
      creator: 'test',
      executor: 'test',
      now: 0,
    },
  );
}

describe('encodeLayout', () => {
  it('encodes a fresh expansion as encodeSubtasks encodes its records', () => {
    fc.assert(
      fc.property(
        templateArb,
        listsArb,
        fc.integer({ min: 1, max: 2 ** 40 }),
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
