import type { ExpandedTask } from './expand-template.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { SubtaskJson, SubtaskRecord, TaskJson, TaskRecord } from './task.js';
import { formatTimestamp } from './time.js';

/** Options of {@link toTaskJson}. */
export interface TaskJsonOptions {
  /** Minutes east of UTC for the timestamps. @default this process's offset */
  readonly utcOffsetMinutes?: number;
}

/** Frozen arrays (as expansion makes them) are shared; others are copied. */
const shared = (ids: readonly number[]): readonly number[] =>
  Object.isFrozen(ids) ? ids : ids.slice();

/** Renders one subtask in the wire shape (keys in the seeds' order). */
export function toSubtaskJson(subtask: SubtaskRecord, options: TaskJsonOptions = {}): SubtaskJson {
  if (
    subtask.startTime === undefined &&
    subtask.endTime === undefined &&
    subtask.executor === undefined
  ) {
    return notStarted(subtask, subtask.status, subtask.operation, subtask.runTime);
  }
  const offset = options.utcOffsetMinutes;
  // Optional keys go where the wire order (alphabetical, as OCP's) puts them.
  return {
    className: subtask.className,
    description: subtask.description,
    downstreams: shared(subtask.downstreams),
    ...(subtask.endTime === undefined ? {} : { endTime: formatTimestamp(subtask.endTime, offset) }),
    ...(subtask.executor === undefined ? {} : { executor: subtask.executor }),
    id: subtask.id,
    name: subtask.name,
    nodeType: subtask.nodeType,
    operation: subtask.operation,
    parallelIdx: subtask.parallelIdx,
    prohibitRollback: subtask.prohibitRollback,
    runTime: subtask.runTime,
    seriesId: subtask.seriesId,
    ...(subtask.startTime === undefined
      ? {}
      : { startTime: formatTimestamp(subtask.startTime, offset) }),
    status: subtask.status,
    timeout: subtask.timeout,
    upstreams: shared(subtask.upstreams),
  };
}

/**
 * {@link toSubtaskJson} of a subtask that never ran (every subtask at submission), with its
 * status, operation and run: one literal, without the spreads of the optional keys, which
 * make V8 build each object key by key.
 */
function notStarted(
  subtask: SubtaskRecord,
  status: SubtaskStatus,
  operation: Operation,
  runTime: number,
): SubtaskJson {
  return {
    className: subtask.className,
    description: subtask.description,
    downstreams: shared(subtask.downstreams),
    id: subtask.id,
    name: subtask.name,
    nodeType: subtask.nodeType,
    operation,
    parallelIdx: subtask.parallelIdx,
    prohibitRollback: subtask.prohibitRollback,
    runTime,
    seriesId: subtask.seriesId,
    status,
    timeout: subtask.timeout,
    upstreams: shared(subtask.upstreams),
  };
}

/**
 * Renders a task and its subtasks exactly in the shape of OCP's API: the `data` object of the
 * seeds' sample responses.
 */
export function toTaskJson(
  task: TaskRecord,
  subtasks: readonly SubtaskRecord[],
  options: TaskJsonOptions = {},
): TaskJson {
  return renderTask(
    task,
    task.status,
    task.operation,
    task.endTime,
    subtasks.map((subtask) => toSubtaskJson(subtask, options)),
    options,
  );
}

/**
 * {@link toTaskJson} of a task as {@link expandTemplate} made it, read only from what never
 * changes once a task is saved: status, operation and times are those of a new task (RUNNING,
 * EXECUTE; roots READY, the rest PENDING, run 1, not started). The engine renders a submission
 * with it once the store has the records and may already have started some of them.
 */
export function toSubmittedTaskJson(
  { task, subtasks }: ExpandedTask,
  options: TaskJsonOptions = {},
): TaskJson {
  const json = new Array<SubtaskJson>(subtasks.length);
  for (let i = 0; i < subtasks.length; i++) {
    const subtask = subtasks[i] as SubtaskRecord;
    const status = subtask.upstreams.length === 0 ? SubtaskStatus.READY : SubtaskStatus.PENDING;
    json[i] = notStarted(subtask, status, Operation.EXECUTE, 1);
  }
  return renderTask(task, TaskStatus.RUNNING, Operation.EXECUTE, undefined, json, options);
}

function renderTask(
  task: TaskRecord,
  status: TaskStatus,
  operation: Operation,
  endTime: number | undefined,
  subtasks: SubtaskJson[],
  options: TaskJsonOptions,
): TaskJson {
  const offset = options.utcOffsetMinutes;
  // fromEntries defines keys, so a `__proto__` list stays a list (assignment would not).
  const listMap = Object.fromEntries(
    Object.entries(task.context.listMap).map(([key, list]) => [key, [...list]]),
  );
  return {
    context: {
      listMap,
      parallel: task.context.parallel,
      parallelIdx: task.context.parallelIdx,
      stringMap: { ...task.context.stringMap },
    },
    creator: task.creator,
    ...(endTime === undefined ? {} : { endTime: formatTimestamp(endTime, offset) }),
    executor: task.executor,
    ...(task.hostId === undefined ? {} : { hostId: task.hostId }),
    id: task.id,
    name: task.name,
    operation,
    startTime: formatTimestamp(task.startTime, offset),
    status,
    subtasks,
    taskDefinitionId: task.taskDefinitionId,
    type: task.type,
  };
}
