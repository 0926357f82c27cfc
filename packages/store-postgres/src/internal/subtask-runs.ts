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
 * Builds {@link Runs} one value at a time, each run as long as it can be (greedy, left to
 * right), without keeping the values. The values are ids, counts and indexes: integers whose
 * differences are safe integers.
 */
export class RunsBuilder {
  private readonly runs: Runs = { s: [], d: [], n: [] };
  private start = 0;
  private step = 0;
  private length = 0;
  private last = 0;

  /** Appends `value`. */
  push(value: number): void {
    if (this.length === 0) {
      this.start = value;
      this.length = 1;
    } else if (this.length === 1) {
      this.step = value - this.start;
      this.length = 2;
    } else if (value - this.last === this.step) {
      this.length++;
    } else {
      this.flush();
      this.start = value;
      this.length = 1;
    }
    this.last = value;
  }

  /**
   * Appends `start`, `start + step`, … (`n` values): the same runs as pushing them one by one.
   * After three values the current run has step `step` whatever came before: the second may
   * start a run of one, which the third makes two; the third cannot end a run, as a run it
   * would end holds the second and so has step `step`. The others only lengthen it.
   */
  pushRun(start: number, step: number, n: number): void {
    const ones = Math.min(n, 3);
    for (let j = 0; j < ones; j++) this.push(start + step * j);
    if (n > ones) {
      this.length += n - ones;
      this.last = start + step * (n - 1);
    }
  }

  /**
   * Appends `offset + values[from]` … `offset + values[to - 1]`, a stretch of equal steps at a
   * time: the same runs as pushing them one by one.
   */
  pushAll(values: ArrayLike<number>, from: number, to: number, offset = 0): void {
    let i = from;
    while (i < to) {
      const start = values[i] as number;
      if (i + 1 === to) {
        this.push(offset + start);
        return;
      }
      const step = (values[i + 1] as number) - start;
      let end = i + 2;
      while (end < to && (values[end] as number) - (values[end - 1] as number) === step) end++;
      this.pushRun(offset + start, step, end - i);
      i = end;
    }
  }

  /** The runs of every value pushed. */
  build(): Runs {
    if (this.length > 0) this.flush();
    this.length = 0;
    return this.runs;
  }

  private flush(): void {
    this.runs.s.push(this.start);
    this.runs.d.push(this.length === 1 ? 0 : this.step);
    this.runs.n.push(this.length);
  }
}

/** Builds {@link CodedTexts} one string at a time. */
export class TextsBuilder {
  private readonly values: string[] = [];
  private readonly index = new Map<string, number>();
  private readonly at = new RunsBuilder();
  /** The last string pushed and its index: consecutive strings mostly repeat. */
  private lastText: string | undefined;
  private lastAt = 0;

  /** Appends `text`. */
  push(text: string): void {
    if (text !== this.lastText) {
      let k = this.index.get(text);
      if (k === undefined) {
        this.values.push(text);
        this.index.set(text, (k = this.values.length));
      }
      this.lastText = text;
      this.lastAt = k;
    }
    this.at.push(this.lastAt);
  }

  /** Appends `text` `n` times. */
  pushMany(text: string, n: number): void {
    if (n <= 0) return;
    this.push(text);
    this.at.pushRun(this.lastAt, 0, n - 1);
  }

  /** The distinct strings pushed and the runs of their indexes. */
  build(): CodedTexts {
    return { values: this.values, at: this.at.build() };
  }
}

/** `values` as runs (see {@link RunsBuilder}). */
export function toRuns(values: readonly number[]): Runs {
  const builder = new RunsBuilder();
  for (const value of values) builder.push(value);
  return builder.build();
}

/** `texts` as their distinct values and the runs of their indexes. */
export function toCodedTexts(texts: readonly string[]): CodedTexts {
  const builder = new TextsBuilder();
  for (const text of texts) builder.push(text);
  return builder.build();
}
