import { NodeType, Operation, SubtaskStatus, type SubtaskLayout } from '@dagops/engine';
import { emptyArrays, RestBuilder, STATUS_ORDER, type EncodedSubtasks } from './subtask-arrays.js';

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
  const { count, firstId, nodes, nodeOf, upStart, ups, upCounts, downStart, downs, downCounts } =
    layout;
  const plain = Math.min(head, count);
  const arrays = emptyArrays(plain);
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
  for (let i = 0; i < plain; i++) {
    arrays.kind[i] = (nodeOf[i] as number) + 1;
    arrays.parallel[i] = layout.parallelIdx(i);
    arrays.upStarts[i] = (upStart[i] as number) + 1;
    arrays.upCounts[i] = upCounts[i] as number;
    for (let j = upStart[i] as number; j < (upStart[i + 1] as number); j++) {
      arrays.ups.push(firstId + (ups[j] as number));
    }
    arrays.downStarts[i] = (downStart[i] as number) + 1;
    arrays.downCounts[i] = downCounts[i] as number;
    for (let j = downStart[i] as number; j < (downStart[i + 1] as number); j++) {
      arrays.downs.push(firstId + (downs[j] as number));
    }
    arrays.statuses[i] = layout.status(i);
    arrays.operations[i] = Operation.EXECUTE;
    arrays.runTimes[i] = 1;
  }
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
