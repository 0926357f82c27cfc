import type { SubtaskRecord } from '@dagops/engine';

/**
 * A task's subtasks as the column arrays `insert_subtasks` takes (migration 005). What the
 * subtasks of one node share (key, class, name, description, node type, timeout,
 * prohibitRollback) comes once per kind, each subtask naming its kind (from 1). Upstream lists
 * are concatenated in `ups`, each subtask giving its first index (from 1) and count;
 * downstreams likewise.
 */
export interface SubtaskArrays {
  readonly keys: string[];
  readonly classes: string[];
  readonly names: string[];
  readonly descriptions: string[];
  readonly nodeTypes: string[];
  readonly timeouts: number[];
  readonly prohibit: boolean[];
  readonly kind: number[];
  readonly parallel: number[];
  readonly ups: number[];
  readonly upStarts: number[];
  readonly upCounts: number[];
  readonly downs: number[];
  readonly downStarts: number[];
  readonly downCounts: number[];
  readonly statuses: string[];
  readonly operations: string[];
  readonly runTimes: number[];
}

/** The arrays of `subtasks`, whose ids must be consecutive in series order from `first`. */
export function toSubtaskArrays(subtasks: readonly SubtaskRecord[], first: number): SubtaskArrays {
  const count = subtasks.length;
  const arrays: SubtaskArrays = {
    keys: [],
    classes: [],
    names: [],
    descriptions: [],
    nodeTypes: [],
    timeouts: [],
    prohibit: [],
    kind: new Array<number>(count),
    parallel: new Array<number>(count),
    ups: [],
    upStarts: new Array<number>(count),
    upCounts: new Array<number>(count),
    downs: [],
    downStarts: new Array<number>(count),
    downCounts: new Array<number>(count),
    statuses: new Array<string>(count),
    operations: new Array<string>(count),
    runTimes: new Array<number>(count),
  };
  const kindOf = new Map<string, number>();
  let last: SubtaskRecord | undefined;
  for (let i = 0; i < count; i++) {
    const s = subtasks[i] as SubtaskRecord;
    if (s.id !== first + i || s.seriesId !== i) {
      throw new Error(`subtask ids must be consecutive in series order (subtask ${s.id})`);
    }
    // Consecutive subtasks mostly share a kind: compared field by field, no key to build.
    let k: number | undefined;
    if (last !== undefined && sameKind(last, s)) k = arrays.kind[i - 1];
    else {
      const key = `${s.nodeKey}\u0000${s.className}\u0000${s.name}\u0000${s.description}\u0000${s.nodeType}\u0000${s.timeout}\u0000${s.prohibitRollback}`;
      k = kindOf.get(key);
      if (k === undefined) {
        arrays.keys.push(s.nodeKey);
        arrays.classes.push(s.className);
        arrays.names.push(s.name);
        arrays.descriptions.push(s.description);
        arrays.nodeTypes.push(s.nodeType);
        arrays.timeouts.push(s.timeout);
        arrays.prohibit.push(s.prohibitRollback);
        kindOf.set(key, (k = arrays.keys.length));
      }
    }
    last = s;
    arrays.kind[i] = k as number;
    arrays.parallel[i] = s.parallelIdx;
    arrays.upStarts[i] = arrays.ups.length + 1;
    arrays.upCounts[i] = s.upstreams.length;
    for (const id of s.upstreams) arrays.ups.push(id);
    arrays.downStarts[i] = arrays.downs.length + 1;
    arrays.downCounts[i] = s.downstreams.length;
    for (const id of s.downstreams) arrays.downs.push(id);
    arrays.statuses[i] = s.status;
    arrays.operations[i] = s.operation;
    arrays.runTimes[i] = s.runTime;
  }
  return arrays;
}

function sameKind(a: SubtaskRecord, b: SubtaskRecord): boolean {
  return (
    a.nodeKey === b.nodeKey &&
    a.className === b.className &&
    a.name === b.name &&
    a.description === b.description &&
    a.nodeType === b.nodeType &&
    a.timeout === b.timeout &&
    a.prohibitRollback === b.prohibitRollback
  );
}

/** The arrays of the first `head` subtasks only (the kinds stay whole). */
export function headOf(arrays: SubtaskArrays, head: number): SubtaskArrays {
  const upEnd = (arrays.upStarts[head] ?? arrays.ups.length + 1) - 1;
  const downEnd = (arrays.downStarts[head] ?? arrays.downs.length + 1) - 1;
  return {
    ...arrays,
    kind: arrays.kind.slice(0, head),
    parallel: arrays.parallel.slice(0, head),
    ups: arrays.ups.slice(0, upEnd),
    upStarts: arrays.upStarts.slice(0, head),
    upCounts: arrays.upCounts.slice(0, head),
    downs: arrays.downs.slice(0, downEnd),
    downStarts: arrays.downStarts.slice(0, head),
    downCounts: arrays.downCounts.slice(0, head),
    statuses: arrays.statuses.slice(0, head),
    operations: arrays.operations.slice(0, head),
    runTimes: arrays.runTimes.slice(0, head),
  };
}

/** Subtasks per status: pending, ready, running, canceling, failed, successful. */
export function statusCounts(statuses: readonly string[]): number[] {
  const order = ['PENDING', 'READY', 'RUNNING', 'CANCELING', 'FAILED', 'SUCCESSFUL'];
  const counts = [0, 0, 0, 0, 0, 0];
  for (const status of statuses) {
    const at = order.indexOf(status);
    if (at < 0)
      throw new Error(`subtask status ${JSON.stringify(status)} is not one of ${order.join(', ')}`);
    counts[at] = (counts[at] as number) + 1;
  }
  return counts;
}

/** The parameters of `insert_subtasks` after the task and ordinals, in order, as SQL casts. */
export const SUBTASK_ARRAY_CASTS = [
  'text[]',
  'text[]',
  'text[]',
  'text[]',
  'text[]',
  'float8[]',
  'bool[]',
  'int4[]',
  'int4[]',
  'int8[]',
  'int4[]',
  'int4[]',
  'int8[]',
  'int4[]',
  'int4[]',
  'text[]',
  'text[]',
  'int4[]',
] as const;

/** The arrays in the order of {@link SUBTASK_ARRAY_CASTS}. */
export function arrayParams(a: SubtaskArrays): unknown[] {
  return [
    a.keys,
    a.classes,
    a.names,
    a.descriptions,
    a.nodeTypes,
    a.timeouts,
    a.prohibit,
    a.kind,
    a.parallel,
    a.ups,
    a.upStarts,
    a.upCounts,
    a.downs,
    a.downStarts,
    a.downCounts,
    a.statuses,
    a.operations,
    a.runTimes,
  ];
}
