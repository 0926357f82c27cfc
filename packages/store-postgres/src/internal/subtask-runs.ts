import type { SubtaskArrays } from './subtask-arrays.js';

/**
 * Integers as arithmetic runs: run `r` stands for `s[r] + d[r] * 0 .. s[r] + d[r] * (n[r] - 1)`.
 * An expanded DAG's arrays are mostly a few runs (ids counting up, one upstream repeated);
 * the worst case, no two steps alike, takes three numbers per two values.
 */
export interface Runs {
  readonly s: number[];
  readonly d: number[];
  readonly n: number[];
}

/** Strings as their distinct `values` and the runs of each one's index in them, from 1. */
export interface CodedTexts {
  readonly values: string[];
  readonly at: Runs;
}

/** The arrays of {@link SubtaskArrays} with one element per kind, kept plain in the rest. */
type KindField =
  'keys' | 'classes' | 'names' | 'descriptions' | 'nodeTypes' | 'timeouts' | 'prohibit';

/**
 * The rest of a task saved head first, as `materialize` reads it (migration 006): the arrays
 * of {@link SubtaskArrays} for all subtasks, the per-kind ones plain, the others as runs.
 */
export interface RestOfTask extends Pick<SubtaskArrays, KindField> {
  /** Marks this form (migration 005 kept plain arrays). */
  readonly runs: 1;
  readonly kind: Runs;
  readonly parallel: Runs;
  readonly ups: Runs;
  readonly upStarts: Runs;
  readonly upCounts: Runs;
  readonly downs: Runs;
  readonly downStarts: Runs;
  readonly downCounts: Runs;
  readonly statuses: CodedTexts;
  readonly operations: CodedTexts;
  readonly runTimes: Runs;
}

/**
 * `values` as runs, each as long as it can be (greedy, left to right). The values are ids,
 * counts and indexes: integers whose differences are safe integers.
 */
export function toRuns(values: readonly number[]): Runs {
  const runs: Runs = { s: [], d: [], n: [] };
  const length = values.length;
  let i = 0;
  while (i < length) {
    const start = values[i] as number;
    if (i + 1 === length) {
      runs.s.push(start);
      runs.d.push(0);
      runs.n.push(1);
      break;
    }
    const step = (values[i + 1] as number) - start;
    let j = i + 1;
    while (j + 1 < length && (values[j + 1] as number) - (values[j] as number) === step) j++;
    runs.s.push(start);
    runs.d.push(step);
    runs.n.push(j - i + 1);
    i = j + 1;
  }
  return runs;
}

/** `texts` as their distinct values and the runs of their indexes. */
export function toCodedTexts(texts: readonly string[]): CodedTexts {
  const values: string[] = [];
  const index = new Map<string, number>();
  const at = new Array<number>(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i] as string;
    let k = index.get(text);
    if (k === undefined) {
      values.push(text);
      index.set(text, (k = values.length));
    }
    at[i] = k;
  }
  return { values, at: toRuns(at) };
}

/** The rest `materialize` writes out, for a task of these arrays. */
export function restOf(a: SubtaskArrays): RestOfTask {
  return {
    runs: 1,
    keys: a.keys,
    classes: a.classes,
    names: a.names,
    descriptions: a.descriptions,
    nodeTypes: a.nodeTypes,
    timeouts: a.timeouts,
    prohibit: a.prohibit,
    kind: toRuns(a.kind),
    parallel: toRuns(a.parallel),
    ups: toRuns(a.ups),
    upStarts: toRuns(a.upStarts),
    upCounts: toRuns(a.upCounts),
    downs: toRuns(a.downs),
    downStarts: toRuns(a.downStarts),
    downCounts: toRuns(a.downCounts),
    statuses: toCodedTexts(a.statuses),
    operations: toCodedTexts(a.operations),
    runTimes: toRuns(a.runTimes),
  };
}
