import type { SubtaskJson, SubtaskRecord, TaskJson, TaskRecord } from './task.js';
import { formatTimestamp } from './time.js';

/** Options of {@link toTaskJson}. */
export interface TaskJsonOptions {
  /** Minutes east of UTC for the timestamps. @default this process's offset */
  readonly utcOffsetMinutes?: number;
}

/** Renders one subtask in the wire shape (keys in the seeds' order). */
export function toSubtaskJson(subtask: SubtaskRecord, options: TaskJsonOptions = {}): SubtaskJson {
  const offset = options.utcOffsetMinutes;
  const json: SubtaskJson = {
    className: subtask.className,
    description: subtask.description,
    downstreams: [...subtask.downstreams],
    id: subtask.id,
    name: subtask.name,
    nodeType: subtask.nodeType,
    operation: subtask.operation,
    parallelIdx: subtask.parallelIdx,
    prohibitRollback: subtask.prohibitRollback,
    runTime: subtask.runTime,
    seriesId: subtask.seriesId,
    status: subtask.status,
    timeout: subtask.timeout,
    upstreams: [...subtask.upstreams],
  };
  if (subtask.startTime !== undefined) json.startTime = formatTimestamp(subtask.startTime, offset);
  if (subtask.endTime !== undefined) json.endTime = formatTimestamp(subtask.endTime, offset);
  if (subtask.executor !== undefined) json.executor = subtask.executor;
  return json;
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
  const offset = options.utcOffsetMinutes;
  const listMap: Record<string, string[]> = {};
  for (const [key, list] of Object.entries(task.context.listMap)) listMap[key] = [...list];
  const json: TaskJson = {
    context: {
      listMap,
      parallel: task.context.parallel,
      parallelIdx: task.context.parallelIdx,
      stringMap: { ...task.context.stringMap },
    },
    creator: task.creator,
    executor: task.executor,
    id: task.id,
    name: task.name,
    operation: task.operation,
    startTime: formatTimestamp(task.startTime, offset),
    status: task.status,
    subtasks: subtasks.map((subtask) => toSubtaskJson(subtask, options)),
    taskDefinitionId: task.taskDefinitionId,
    type: task.type,
  };
  if (task.hostId !== undefined) json.hostId = task.hostId;
  if (task.endTime !== undefined) json.endTime = formatTimestamp(task.endTime, offset);
  return json;
}
