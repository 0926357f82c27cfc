/**
 * shapeOfRest (rest-shape.ts): the shape an engine reads from a task's rest as saved is the
 * shape of the task's subtasks, for any template and split lists, from every form a rest is
 * saved in (runs from the layout or from the records, plain arrays as migration 005 saved
 * them), after the trip through JSON that the database gives it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchStopTemplate, hostIds } from '../test-support/databases.js';
import {
  expand,
  firstIdArb,
  listsArb,
  shapeFieldsOf,
  templateArb,
} from '../test-support/template-arbitraries.js';
import { encodeLayout } from './layout-encoding.js';
import { shapeOfRest, type SavedRest } from './rest-shape.js';
import { encodeSubtasks } from './subtask-arrays.js';

/** Every form a task's rest is saved in, as read back from the database (JSON). */
function savedForms(
  template: Parameters<typeof expand>[0],
  lists: Record<string, string[]>,
  first: number,
) {
  const { task, layout, subtasks } = expand(template, lists, first);
  const forms: [string, unknown][] = [
    ['runs, from the layout', encodeLayout(layout!, 0).rest],
    ['runs, from the records', encodeSubtasks(subtasks, first, 0).rest],
    ['plain arrays (migration 005)', encodeSubtasks(subtasks, first).head],
  ];
  return {
    task,
    subtasks,
    forms: forms.map(([form, rest]) => [form, JSON.parse(JSON.stringify(rest))] as const),
  };
}

describe('shapeOfRest', () => {
  it('gives every subtask the shape of its record, from every saved form', () => {
    fc.assert(
      fc.property(templateArb, listsArb, firstIdArb, (template, lists, first) => {
        const { task, subtasks, forms } = savedForms(template, lists, first);
        for (const [form, rest] of forms) {
          const shape = shapeOfRest(task, first, subtasks.length, rest as SavedRest);
          expect(shape.count, form).toBe(subtasks.length);
          subtasks.forEach((s, i) => expect(shape.subtask(i), form).toEqual(shapeFieldsOf(s)));
          expect(shape.subtask(-1)).toBeUndefined();
          expect(shape.subtask(subtasks.length)).toBeUndefined();
        }
      }),
      { numRuns: 200 },
    );
  });

  it('reads a 2,000-host batch stop from its runs', () => {
    const { task, subtasks, forms } = savedForms(
      batchStopTemplate(),
      { host_ids: hostIds(2000) },
      5,
    );
    const shape = shapeOfRest(task, 5, subtasks.length, forms[0]![1] as SavedRest);
    for (const i of [0, 1999, 2000, 2001, 4001, 6001]) {
      expect(shape.subtask(i)).toEqual(shapeFieldsOf(subtasks[i]!));
    }
  });

  it('refuses a rest of another number of subtasks, naming both', () => {
    const { task, subtasks, forms } = savedForms(batchStopTemplate(), { host_ids: hostIds(3) }, 1);
    expect(() => shapeOfRest(task, 1, subtasks.length + 1, forms[0]![1] as SavedRest)).toThrow(
      `task ${task.id}: its saved rest holds ${subtasks.length} subtasks, not ${subtasks.length + 1}`,
    );
  });
});
