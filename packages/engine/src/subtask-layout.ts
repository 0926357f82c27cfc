import { NodeType, Operation, SubtaskStatus } from './status.js';
import type { SubtaskRecord } from './task.js';
import type { TemplateNode } from './template.js';

/** One template node's copies in a {@link SubtaskLayout}: subtasks `first` … `first + size - 1`. */
export interface LayoutNode {
  /** The node copied. */
  readonly node: TemplateNode;
  /** Series index of its first copy. */
  readonly first: number;
  /** Its copies: the split list's length, or 1. */
  readonly size: number;
  /** Whether it is split (its copies have a `parallelIdx`). */
  readonly split: boolean;
}

/** Dependencies by series index, `from → to`, in the order the expansion makes them. */
export type LinkVisitor = (link: (from: number, to: number) => void) => void;

/**
 * The one (frozen) id array of every subtask without upstreams or without downstreams: a third
 * of a batch stop's subtasks have no upstream and a third no downstream.
 */
const NO_IDS = Object.freeze([]) as unknown as number[];

/**
 * A fresh expansion in columns: its nodes, and the dependencies of its subtasks as compressed
 * rows (typed arrays), with no object per subtask. What a store needs to save a task can be
 * read from here in a pass of plain loops; the records themselves ({@link records}) are built
 * only for whoever asks for them. At 10,000 hosts the records are ~9 MB of young objects the
 * garbage collector then copies twice; the layout is ~1 MB of typed arrays, outside the
 * collector's young generation. Its arrays are typed read-only: a store that saved the task
 * from them may still read them to turn claims into records.
 *
 * Subtask `i` (series index) has id `firstId + i`; roots are `READY`, the rest `PENDING`, all
 * with operation `EXECUTE` and run time 1, as at submission.
 */
export class SubtaskLayout {
  /** Subtasks in the task. */
  readonly count: number;
  /** The nodes in expansion order; their copies are consecutive. */
  readonly nodes: readonly LayoutNode[];
  /** Per subtask, the index in {@link nodes} of the node it copies. */
  readonly nodeOf: ArrayLike<number>;
  /**
   * Upstreams as compressed rows: subtask `i`'s upstreams are the subtasks (series indexes)
   * `ups[upStart[i]]` … `ups[upStart[i + 1] - 1]`, in the order of the expansion's links.
   */
  readonly upStart: ArrayLike<number>;
  /** See {@link upStart}. */
  readonly ups: ArrayLike<number>;
  /** Per subtask, its number of upstreams (the length of its row in {@link ups}). */
  readonly upCounts: ArrayLike<number>;
  /** Downstreams as compressed rows, as {@link upStart}. */
  readonly downStart: ArrayLike<number>;
  /** See {@link downStart}. */
  readonly downs: ArrayLike<number>;
  /** Per subtask, its number of downstreams. */
  readonly downCounts: ArrayLike<number>;
  private memo: SubtaskRecord[] | undefined;

  /**
   * @param taskId - The task's id.
   * @param firstId - The id of subtask 0; the others follow.
   * @param nodes - The nodes in expansion order, covering indexes 0 … count - 1 in turn.
   * @param links - Calls its argument once per dependency.
   */
  constructor(
    readonly taskId: number,
    readonly firstId: number,
    nodes: readonly LayoutNode[],
    links: LinkVisitor,
  ) {
    const last = nodes[nodes.length - 1];
    const count = last === undefined ? 0 : last.first + last.size;
    this.count = count;
    this.nodes = nodes;
    const nodeOf = new Uint32Array(count);
    nodes.forEach(({ first, size }, n) => nodeOf.fill(n, first, first + size));
    this.nodeOf = nodeOf;
    // Two passes over the links: count each row, then fill it (compressed sparse rows).
    const upCounts = new Int32Array(count);
    const downCounts = new Int32Array(count);
    links((from, to) => {
      downCounts[from] = (downCounts[from] as number) + 1;
      upCounts[to] = (upCounts[to] as number) + 1;
    });
    const upStart = new Int32Array(count + 1);
    const downStart = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) {
      upStart[i + 1] = (upStart[i] as number) + (upCounts[i] as number);
      downStart[i + 1] = (downStart[i] as number) + (downCounts[i] as number);
    }
    const ups = new Int32Array(upStart[count] as number);
    const downs = new Int32Array(downStart[count] as number);
    const upAt = upStart.slice(0, count);
    const downAt = downStart.slice(0, count);
    links((from, to) => {
      downs[(downAt[from] as number)++] = to;
      ups[(upAt[to] as number)++] = from;
    });
    this.upCounts = upCounts;
    this.upStart = upStart;
    this.ups = ups;
    this.downCounts = downCounts;
    this.downStart = downStart;
    this.downs = downs;
  }

  /** The node subtask `i` copies. */
  nodeAt(i: number): LayoutNode {
    return this.nodes[this.nodeOf[i] as number] as LayoutNode;
  }

  /** Its `parallelIdx`: the copy's index in a split, -1 otherwise. */
  parallelIdx(i: number): number {
    const { first, split } = this.nodeAt(i);
    return split ? i - first : -1;
  }

  /** How many upstreams subtask `i` has. */
  upCount(i: number): number {
    return this.upCounts[i] as number;
  }

  /** The id of its `j`-th upstream. */
  upstreamId(i: number, j: number): number {
    return this.firstId + (this.ups[(this.upStart[i] as number) + j] as number);
  }

  /** How many downstreams subtask `i` has. */
  downCount(i: number): number {
    return this.downCounts[i] as number;
  }

  /** The id of its `j`-th downstream. */
  downstreamId(i: number, j: number): number {
    return this.firstId + (this.downs[(this.downStart[i] as number) + j] as number);
  }

  /** Its status at submission: `READY` for a root, `PENDING` otherwise. */
  status(i: number): SubtaskStatus {
    return this.upCount(i) === 0 ? SubtaskStatus.READY : SubtaskStatus.PENDING;
  }

  /** Whether {@link records} has been called: from then on the records, not this, are the task. */
  get built(): boolean {
    return this.memo !== undefined;
  }

  /**
   * Subtask `i` as a record at submission (its id lists frozen); once {@link records} is built,
   * that record (whose status its holder may have changed since).
   */
  record(i: number): SubtaskRecord {
    const built = this.memo?.[i];
    if (built !== undefined) return built;
    const at = this.nodeAt(i);
    return this.toRecord(i, at, at.node.description ?? at.node.name);
  }

  /**
   * Every subtask as a record at submission, in series order (`records()[i].seriesId === i`):
   * built on the first call, the same array on every call after.
   */
  records(): SubtaskRecord[] {
    return (this.memo ??= this.build());
  }

  private build(): SubtaskRecord[] {
    const records = new Array<SubtaskRecord>(this.count);
    for (const at of this.nodes) {
      const description = at.node.description ?? at.node.name;
      for (let i = at.first; i < at.first + at.size; i++) {
        records[i] = this.toRecord(i, at, description);
      }
    }
    return records;
  }

  private toRecord(
    i: number,
    { node, first, split }: LayoutNode,
    description: string,
  ): SubtaskRecord {
    return {
      id: this.firstId + i,
      taskId: this.taskId,
      nodeKey: node.key,
      seriesId: i,
      parallelIdx: split ? i - first : -1,
      className: node.className,
      name: node.name,
      description,
      nodeType: NodeType.JAVA_TASK,
      timeout: node.timeout,
      prohibitRollback: node.prohibitRollback ?? false,
      upstreams: this.idList(this.ups, this.upStart, i),
      downstreams: this.idList(this.downs, this.downStart, i),
      status: this.status(i),
      operation: Operation.EXECUTE,
      runTime: 1,
      // Present from the start: fields a store adds later would give every record a second
      // hidden class and an out-of-object property store, allocated as its subtask runs.
      startTime: undefined,
      endTime: undefined,
      executor: undefined,
      error: undefined,
    };
  }

  /**
   * Row `i` as a frozen id array. Frozen: the JSON view and a store can then share it instead
   * of copying, and no caller can rewire a stored task by mutating what it was handed. Most
   * rows hold one id: a literal is a packed array, which V8 freezes in half the time of the
   * holey array `new Array(size)` makes.
   */
  private idList(row: ArrayLike<number>, start: ArrayLike<number>, i: number): number[] {
    const from = start[i] as number;
    const size = (start[i + 1] as number) - from;
    if (size === 0) return NO_IDS;
    const ids = size === 1 ? [0] : new Array<number>(size);
    for (let j = 0; j < size; j++) ids[j] = this.firstId + (row[from + j] as number);
    return Object.freeze(ids) as number[];
  }
}
