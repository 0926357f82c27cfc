/**
 * fast-check arbitraries of templates and their lists, for properties over any expansion: of
 * how a task is encoded to be saved (layout-encoding.test.ts) and how its shape is read back
 * from what was saved (rest-shape.test.ts).
 */
import {
  expandTemplate,
  validateTemplate,
  type SubtaskRecord,
  type Template,
  type TemplateNode,
} from '@dagops/engine';
import fc from 'fast-check';

const LISTS = ['a', 'b'] as const;

/**
 * Acyclic templates over the lists `a` and `b`: edges go forward in node order; split→split
 * only over one list.
 */
export const templateArb: fc.Arbitrary<Template> = fc
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

/** A first subtask id: any id up to 2^40, so ids past 32 bits come up. */
export const firstIdArb = fc.integer({ min: 1, max: 2 ** 40 });

/** Lists `a` and `b` of 1 to 12 elements. */
export const listsArb = fc.record({
  a: fc.array(fc.constant('1'), { minLength: 1, maxLength: 12 }),
  b: fc.array(fc.constant('2'), { minLength: 1, maxLength: 12 }),
});

/** The fresh expansion of `template` (task id 7) with subtask ids from `firstId`. */
export function expand(template: Template, listMap: Record<string, string[]>, firstId: number) {
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

/** What a claim's subtask holds of its record that never changes. */
export function shapeFieldsOf(s: SubtaskRecord) {
  const { id, taskId, nodeKey, seriesId, parallelIdx, className, name, description } = s;
  const { nodeType, timeout, prohibitRollback, upstreams, downstreams } = s;
  return {
    ...{ id, taskId, nodeKey, seriesId, parallelIdx, className, name, description },
    ...{ nodeType, timeout, prohibitRollback, upstreams, downstreams },
  };
}
