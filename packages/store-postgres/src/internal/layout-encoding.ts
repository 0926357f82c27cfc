import { NodeType, Operation, SubtaskStatus, type SubtaskLayout } from '@dagops/engine';
import {
  emptyArrays,
  RestBuilder,
  STATUS_ORDER,
  type EncodedSubtasks,
  type SubtaskArrays,
} from './subtask-arrays.js';

/**
 * Encodes a fresh expansion from its layout, as `encodeSubtasks` encodes its records (the same
 * arrays and runs, to the element): the head's arrays element by element, the rest a stretch
 * of equal steps at a time straight from the layout's typed arrays. No record is built, and
 * the work is a few loops over typed arrays, which stay cheap before the JIT has warmed up.
 */
export function encodeLayout(
  layout: SubtaskLayout,
  head = Number.MAX_SAFE_INTEGER,
): EncodedSubtasks {
  const { count, nodes, ups, upStart, upCounts, downs, downStart, downCounts, firstId } = layout;
  const plain = Math.min(head, count);
  const arrays = plainArrays(layout, 0, plain);
  // Roots and non-roots in stretches: their count, and the runs of the rest's statuses.
  const stretches: number[] = [];
  let roots = 0;
  for (let i = 0; i < count;) {
    const root = upCounts[i] === 0;
    let end = i + 1;
    while (end < count && (upCounts[end] === 0) === root) end++;
    if (root) roots += end - i;
    stretches.push(end - i);
    i = end;
  }
  const statusCounts = STATUS_ORDER.map((status) =>
    status === SubtaskStatus.READY ? roots : status === SubtaskStatus.PENDING ? count - roots : 0,
  );
  if (plain === count) return { head: arrays, rest: undefined, statusCounts };

  const rest = new RestBuilder();
  // The nodes in order cover every subtask once, their copies consecutive.
  nodes.forEach(({ size, split }, n) => {
    rest.kind.pushRun(n + 1, 0, size);
    if (split) rest.parallel.pushRun(0, 1, size);
    else rest.parallel.pushRun(-1, 0, size);
  });
  rest.ups.pushAll(ups, 0, ups.length, firstId);
  rest.upStarts.pushAll(upStart, 0, count, 1);
  rest.upCounts.pushAll(upCounts, 0, count);
  rest.downs.pushAll(downs, 0, downs.length, firstId);
  rest.downStarts.pushAll(downStart, 0, count, 1);
  rest.downCounts.pushAll(downCounts, 0, count);
  let root = upCounts[0] === 0;
  for (const length of stretches) {
    rest.statuses.pushMany(root ? SubtaskStatus.READY : SubtaskStatus.PENDING, length);
    root = !root;
  }
  rest.operations.pushMany(Operation.EXECUTE, count);
  rest.runTimes.pushRun(1, 0, count);
  return { head: arrays, rest: rest.build(arrays), statusCounts };
}

/**
 * The plain arrays (as `insert_subtasks` takes them) of the subtasks of ordinals `from` to
 * `to - 1` (from 0) alone: the per-kind arrays cover every node, each subtask's upstream and
 * downstream lists start at 1 in the chunk's own `ups` and `downs`. The head of
 * {@link encodeLayout}, and each chunk of the rest that the store writes (`write_rest`).
 */
export function plainArrays(layout: SubtaskLayout, from: number, to: number): SubtaskArrays {
  const { firstId, nodes, nodeOf, upStart, ups, upCounts, downStart, downs, downCounts } = layout;
  const arrays = emptyArrays(to - from);
  // Every node is a kind of its own (its key differs), numbered in series order from 1.
  for (const { node } of nodes) {
    arrays.keys.push(node.key);
    arrays.classes.push(node.className);
    arrays.names.push(node.name);
    arrays.descriptions.push(node.description ?? node.name);
    arrays.nodeTypes.push(NodeType.JAVA_TASK);
    arrays.timeouts.push(node.timeout);
    arrays.prohibit.push(node.prohibitRollback ?? false);
  }
  const upBase = upStart[from] as number;
  const downBase = downStart[from] as number;
  for (let i = from; i < to; i++) {
    const at = i - from;
    arrays.kind[at] = (nodeOf[i] as number) + 1;
    arrays.parallel[at] = layout.parallelIdx(i);
    arrays.upStarts[at] = (upStart[i] as number) - upBase + 1;
    arrays.upCounts[at] = upCounts[i] as number;
    for (let j = upStart[i] as number; j < (upStart[i + 1] as number); j++) {
      arrays.ups.push(firstId + (ups[j] as number));
    }
    arrays.downStarts[at] = (downStart[i] as number) - downBase + 1;
    arrays.downCounts[at] = downCounts[i] as number;
    for (let j = downStart[i] as number; j < (downStart[i + 1] as number); j++) {
      arrays.downs.push(firstId + (downs[j] as number));
    }
    arrays.statuses[at] = layout.status(i);
    arrays.operations[at] = Operation.EXECUTE;
    arrays.runTimes[at] = 1;
  }
  return arrays;
}
