import type { SubtaskRecord } from '@dagops/engine';
import { RunsBuilder, TextsBuilder, type RestOfTask } from './subtask-runs.js';

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

/** A task's subtasks as saved: the arrays of its first subtasks, and the rest as runs. */
export interface EncodedSubtasks {
  /** The arrays of the first `head` subtasks; the per-kind ones cover every subtask. */
  readonly head: SubtaskArrays;
  /** All subtasks, as `materialize` reads them; only when `head` is short of the count. */
  readonly rest: RestOfTask | undefined;
  /** Subtasks per status: pending, ready, running, canceling, failed, successful. */
  readonly statusCounts: number[];
}

/** The statuses of {@link EncodedSubtasks.statusCounts}, in order. */
export const STATUS_ORDER = ['PENDING', 'READY', 'RUNNING', 'CANCELING', 'FAILED', 'SUCCESSFUL'];

/** Run builders of the rest's arrays other than the per-kind ones. */
export class RestBuilder {
  readonly kind = new RunsBuilder();
  readonly parallel = new RunsBuilder();
  readonly ups = new RunsBuilder();
  readonly upStarts = new RunsBuilder();
  readonly upCounts = new RunsBuilder();
  readonly downs = new RunsBuilder();
  readonly downStarts = new RunsBuilder();
  readonly downCounts = new RunsBuilder();
  readonly statuses = new TextsBuilder();
  readonly operations = new TextsBuilder();
  readonly runTimes = new RunsBuilder();

  build(kinds: SubtaskArrays): RestOfTask {
    return {
      runs: 1,
      keys: kinds.keys,
      classes: kinds.classes,
      names: kinds.names,
      descriptions: kinds.descriptions,
      nodeTypes: kinds.nodeTypes,
      timeouts: kinds.timeouts,
      prohibit: kinds.prohibit,
      kind: this.kind.build(),
      parallel: this.parallel.build(),
      ups: this.ups.build(),
      upStarts: this.upStarts.build(),
      upCounts: this.upCounts.build(),
      downs: this.downs.build(),
      downStarts: this.downStarts.build(),
      downCounts: this.downCounts.build(),
      statuses: this.statuses.build(),
      operations: this.operations.build(),
      runTimes: this.runTimes.build(),
    };
  }
}

/**
 * Encodes `subtasks`, whose ids must be consecutive in series order from `first`, in one pass:
 * plain arrays for the first `head`, and when that is short of all of them, the rest as runs
 * built as it goes. No array of the whole task's length is made: a 10,000-host batch stop's
 * rest is a few hundred numbers, and its arrays would be 30,002 elements each, garbage the
 * moment they are encoded.
 */
export function encodeSubtasks(
  subtasks: readonly SubtaskRecord[],
  first: number,
  head = subtasks.length,
): EncodedSubtasks {
  const count = subtasks.length;
  const plain = Math.min(head, count);
  const arrays = emptyArrays(plain);
  const rest = plain < count ? new RestBuilder() : undefined;
  const counts = [0, 0, 0, 0, 0, 0];
  const kindOf = new Map<string, number>();
  let last: SubtaskRecord | undefined;
  let k = 0;
  let upAt = 1;
  let downAt = 1;
  // Indexed loops throughout: an array iterator per upstream list was most of what this
  // allocated (8.7 MB at 10,000 hosts), all of it garbage.
  for (let i = 0; i < count; i++) {
    const s = subtasks[i] as SubtaskRecord;
    if (s.id !== first + i || s.seriesId !== i) {
      throw new Error(`subtask ids must be consecutive in series order (subtask ${s.id})`);
    }
    // Consecutive subtasks mostly share a kind: compared field by field, no key to build.
    if (last === undefined || !sameKind(last, s)) k = kindIndex(arrays, kindOf, s);
    last = s;
    const at = STATUS_ORDER.indexOf(s.status);
    if (at < 0) {
      throw new Error(
        `subtask status ${JSON.stringify(s.status)} is not one of ${STATUS_ORDER.join(', ')}`,
      );
    }
    counts[at] = (counts[at] as number) + 1;
    const { upstreams, downstreams } = s;
    if (i < plain) {
      arrays.kind[i] = k;
      arrays.parallel[i] = s.parallelIdx;
      arrays.upStarts[i] = upAt;
      arrays.upCounts[i] = upstreams.length;
      for (let j = 0; j < upstreams.length; j++) arrays.ups.push(upstreams[j] as number);
      arrays.downStarts[i] = downAt;
      arrays.downCounts[i] = downstreams.length;
      for (let j = 0; j < downstreams.length; j++) arrays.downs.push(downstreams[j] as number);
      arrays.statuses[i] = s.status;
      arrays.operations[i] = s.operation;
      arrays.runTimes[i] = s.runTime;
    }
    if (rest !== undefined) {
      rest.kind.push(k);
      rest.parallel.push(s.parallelIdx);
      rest.upStarts.push(upAt);
      rest.upCounts.push(upstreams.length);
      for (let j = 0; j < upstreams.length; j++) rest.ups.push(upstreams[j] as number);
      rest.downStarts.push(downAt);
      rest.downCounts.push(downstreams.length);
      for (let j = 0; j < downstreams.length; j++) rest.downs.push(downstreams[j] as number);
      rest.statuses.push(s.status);
      rest.operations.push(s.operation);
      rest.runTimes.push(s.runTime);
    }
    upAt += upstreams.length;
    downAt += downstreams.length;
  }
  return { head: arrays, rest: rest?.build(arrays), statusCounts: counts };
}

/** Arrays with no kind yet and room for `plain` subtasks. */
export function emptyArrays(plain: number): SubtaskArrays {
  return {
    keys: [],
    classes: [],
    names: [],
    descriptions: [],
    nodeTypes: [],
    timeouts: [],
    prohibit: [],
    kind: new Array<number>(plain),
    parallel: new Array<number>(plain),
    ups: [],
    upStarts: new Array<number>(plain),
    upCounts: new Array<number>(plain),
    downs: [],
    downStarts: new Array<number>(plain),
    downCounts: new Array<number>(plain),
    statuses: new Array<string>(plain),
    operations: new Array<string>(plain),
    runTimes: new Array<number>(plain),
  };
}

/** The arrays of `subtasks` (see {@link encodeSubtasks}), all plain. */
export function toSubtaskArrays(subtasks: readonly SubtaskRecord[], first: number): SubtaskArrays {
  return encodeSubtasks(subtasks, first).head;
}

/** The kind of `s` (from 1), added to the per-kind arrays when new. */
function kindIndex(arrays: SubtaskArrays, kindOf: Map<string, number>, s: SubtaskRecord): number {
  const key = `${s.nodeKey}\u0000${s.className}\u0000${s.name}\u0000${s.description}\u0000${s.nodeType}\u0000${s.timeout}\u0000${s.prohibitRollback}`;
  let k = kindOf.get(key);
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
  return k;
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
