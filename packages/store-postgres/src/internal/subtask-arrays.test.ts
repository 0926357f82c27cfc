/**
 * encodeSubtasks (subtask-arrays.ts) in its one pass: the head's arrays are the first subtasks'
 * arrays, and the rest, decoded by the SQL that reads it (migration 006) on PGlite, is every
 * subtask's arrays, whatever the subtasks and wherever the head ends. The expected arrays come
 * from a plain per-field oracle written here.
 */
import type { SubtaskRecord } from '@dagops/engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { restDecoder } from '../test-support/rest-decoder.js';
import { encodeSubtasks, type SubtaskArrays } from './subtask-arrays.js';

const database = restDecoder();

const STATUSES = ['PENDING', 'READY', 'RUNNING', 'CANCELING', 'FAILED', 'SUCCESSFUL'] as const;
const KIND_FIELDS = [
  'keys',
  'classes',
  'names',
  'descriptions',
  'nodeTypes',
  'timeouts',
  'prohibit',
] as const;
const INT_FIELDS = [
  'kind',
  'parallel',
  'ups',
  'upStarts',
  'upCounts',
  'downs',
  'downStarts',
  'downCounts',
  'runTimes',
] as const;
const TEXT_FIELDS = ['statuses', 'operations'] as const;

/** Subtasks as a store is handed them: consecutive ids, kinds mostly in runs, any links. */
const subtasksArb = fc
  .record({
    first: fc.integer({ min: 1, max: 2 ** 40 }),
    rows: fc.array(
      fc.record({
        node: fc.nat(3),
        className: fc.constantFrom('a.Prepare', 'a.Stop'),
        timeout: fc.constantFrom(30, 600, 0.5),
        prohibitRollback: fc.boolean(),
        parallelIdx: fc.integer({ min: -1, max: 4 }),
        ups: fc.array(fc.nat(40), { maxLength: 4 }),
        downs: fc.array(fc.nat(40), { maxLength: 4 }),
        status: fc.constantFrom(...STATUSES),
        operation: fc.constantFrom('EXECUTE', 'ROLLBACK'),
        runTime: fc.integer({ min: 1, max: 3 }),
      }),
      { maxLength: 40 },
    ),
  })
  .map(({ first, rows }) =>
    rows.map((row, i): SubtaskRecord => ({
      id: first + i,
      taskId: 1,
      nodeKey: `node-${row.node}`,
      seriesId: i,
      parallelIdx: row.parallelIdx,
      className: row.className,
      name: `Node ${row.node}`,
      description: row.node === 0 ? 'the first "node"' : `Node ${row.node}`,
      nodeType: 'JAVA_TASK',
      timeout: row.timeout,
      prohibitRollback: row.prohibitRollback,
      upstreams: row.ups.map((id) => first + id),
      downstreams: row.downs.map((id) => first + id),
      status: row.status,
      operation: row.operation,
      runTime: row.runTime,
      startTime: undefined,
      endTime: undefined,
      executor: undefined,
      error: undefined,
    })),
  );

/** The arrays of `subtasks`, field by field, as migration 005 defines them. */
function oracle(subtasks: readonly SubtaskRecord[]): SubtaskArrays {
  const kinds: string[] = [];
  const kindOf = (s: SubtaskRecord) => {
    const key = JSON.stringify([
      s.nodeKey,
      s.className,
      s.name,
      s.description,
      s.nodeType,
      s.timeout,
      s.prohibitRollback,
    ]);
    if (!kinds.includes(key)) kinds.push(key);
    return kinds.indexOf(key) + 1;
  };
  const kind = subtasks.map(kindOf);
  const firstOfKind = kinds.map((_, k) => subtasks[kind.indexOf(k + 1)] as SubtaskRecord);
  const starts = (lists: (readonly number[])[]) =>
    lists.map((_, i) => 1 + lists.slice(0, i).reduce((sum, list) => sum + list.length, 0));
  return {
    keys: firstOfKind.map((s) => s.nodeKey),
    classes: firstOfKind.map((s) => s.className),
    names: firstOfKind.map((s) => s.name),
    descriptions: firstOfKind.map((s) => s.description),
    nodeTypes: firstOfKind.map((s) => s.nodeType),
    timeouts: firstOfKind.map((s) => s.timeout),
    prohibit: firstOfKind.map((s) => s.prohibitRollback),
    kind,
    parallel: subtasks.map((s) => s.parallelIdx),
    ups: subtasks.flatMap((s) => s.upstreams),
    upStarts: starts(subtasks.map((s) => s.upstreams)),
    upCounts: subtasks.map((s) => s.upstreams.length),
    downs: subtasks.flatMap((s) => s.downstreams),
    downStarts: starts(subtasks.map((s) => s.downstreams)),
    downCounts: subtasks.map((s) => s.downstreams.length),
    statuses: subtasks.map((s) => s.status),
    operations: subtasks.map((s) => s.operation),
    runTimes: subtasks.map((s) => s.runTime),
  };
}

describe('encodeSubtasks', () => {
  it('gives the head the first subtasks and the rest all of them, as the database reads it', async () => {
    await fc.assert(
      fc.asyncProperty(subtasksArb, fc.nat(45), async (subtasks, headArg) => {
        const first = subtasks[0]?.id ?? 0;
        const head = Math.min(headArg, subtasks.length);
        const whole = oracle(subtasks);
        const encoded = encodeSubtasks(subtasks, first, head);

        const upEnd = (whole.upStarts[head] ?? whole.ups.length + 1) - 1;
        const downEnd = (whole.downStarts[head] ?? whole.downs.length + 1) - 1;
        expect(encoded.head).toEqual({
          ...whole,
          ...Object.fromEntries(
            [...INT_FIELDS, ...TEXT_FIELDS].map((name) => [name, whole[name].slice(0, head)]),
          ),
          ups: whole.ups.slice(0, upEnd),
          downs: whole.downs.slice(0, downEnd),
        });
        expect(encoded.statusCounts).toEqual(
          STATUSES.map((status) => whole.statuses.filter((s) => s === status).length),
        );
        if (head === subtasks.length) {
          expect(encoded.rest).toBeUndefined();
          return;
        }
        const rest = encoded.rest as NonNullable<typeof encoded.rest>;
        expect(rest.runs).toBe(1);
        for (const name of KIND_FIELDS) expect(rest[name]).toEqual(whole[name]);
        const decoded = await database.decode(rest, INT_FIELDS, TEXT_FIELDS);
        for (const name of [...INT_FIELDS, ...TEXT_FIELDS]) {
          expect({ [name]: decoded[name] }).toEqual({ [name]: whole[name] });
        }
      }),
      { numRuns: 80 },
    );
  });

  it('refuses ids out of series order, and a status it does not know, naming the value', () => {
    const [a, b] = fc.sample(
      subtasksArb.filter((s) => s.length >= 2),
      1,
    )[0] as SubtaskRecord[];
    const one = a as SubtaskRecord;
    const two = b as SubtaskRecord;
    expect(() => encodeSubtasks([one, { ...two, id: two.id + 1 }], one.id)).toThrow(
      `subtask ids must be consecutive in series order (subtask ${two.id + 1})`,
    );
    expect(() =>
      encodeSubtasks([{ ...one, status: 'DONE' as SubtaskRecord['status'] }], one.id),
    ).toThrow('subtask status "DONE" is not one of PENDING, READY');
  });
});
