import type { TaskRecord } from '@dagops/engine';
import type { SubtaskShape, TaskShape } from './records.js';
import type { SubtaskArrays } from './subtask-arrays.js';
import type { RestOfTask, Runs } from './subtask-runs.js';

/**
 * A `task_rest` value as saved: the runs of {@link RestOfTask} (migration 006), or the plain
 * arrays of {@link SubtaskArrays} (migration 005). Either covers every subtask of the task.
 */
export type SavedRest = RestOfTask | SubtaskArrays;

/** The integers of `runs`, in order (as the `from_runs` SQL function gives them). */
function fromRuns(runs: Runs): Float64Array {
  let length = 0;
  for (const n of runs.n) length += n;
  const values = new Float64Array(length);
  let at = 0;
  for (let r = 0; r < runs.n.length; r++) {
    const s = runs.s[r] as number;
    const d = runs.d[r] as number;
    const n = runs.n[r] as number;
    for (let i = 0; i < n; i++) values[at++] = s + d * i;
  }
  return values;
}

function ints(
  rest: SavedRest,
  name:
    'kind' | 'parallel' | 'ups' | 'upStarts' | 'upCounts' | 'downs' | 'downStarts' | 'downCounts',
): ArrayLike<number> {
  return 'runs' in rest ? fromRuns(rest[name]) : rest[name];
}

/**
 * The shape of a task from the rest it was saved with (`task_rest`), read by an engine that did
 * not save it while the rest's rows are being written: every subtask's shape, without reading
 * (or waiting for) a subtask row. The subtasks are those `insert_subtasks` writes from the same
 * arrays: subtask `i` has id `firstId + i`, series id `i`, the fields of its kind and its slices
 * of the upstream and downstream lists. Each subtask's shape is built when first asked for.
 */
export function shapeOfRest(
  task: TaskRecord,
  firstId: number,
  count: number,
  rest: SavedRest,
): TaskShape {
  const kind = ints(rest, 'kind');
  if (kind.length !== count) {
    throw new Error(`task ${task.id}: its saved rest holds ${kind.length} subtasks, not ${count}`);
  }
  const parallel = ints(rest, 'parallel');
  const ups = ints(rest, 'ups');
  const upStarts = ints(rest, 'upStarts');
  const upCounts = ints(rest, 'upCounts');
  const downs = ints(rest, 'downs');
  const downStarts = ints(rest, 'downStarts');
  const downCounts = ints(rest, 'downCounts');
  const slice = (values: ArrayLike<number>, start: number, n: number) =>
    Object.freeze(Array.from({ length: n }, (_, j) => values[start - 1 + j] as number));
  const built: SubtaskShape[] = [];
  const build = (i: number): SubtaskShape => {
    const k = (kind[i] as number) - 1;
    return {
      id: firstId + i,
      taskId: task.id,
      nodeKey: rest.keys[k] as string,
      seriesId: i,
      parallelIdx: parallel[i] as number,
      className: rest.classes[k] as string,
      name: rest.names[k] as string,
      description: rest.descriptions[k] as string,
      nodeType: rest.nodeTypes[k] as SubtaskShape['nodeType'],
      timeout: rest.timeouts[k] as number,
      prohibitRollback: rest.prohibit[k] as boolean,
      upstreams: slice(ups, upStarts[i] as number, upCounts[i] as number),
      downstreams: slice(downs, downStarts[i] as number, downCounts[i] as number),
    };
  };
  return {
    task,
    firstId,
    count,
    subtask: (index) => (index >= 0 && index < count ? (built[index] ??= build(index)) : undefined),
  };
}
