import type {
  Claim,
  ContextDelta,
  ErrorInfo,
  SubtaskLayout,
  SubtaskRecord,
  TaskRecord,
} from '@dagops/engine';

/** A task row as `row_to_json` renders it. */
export interface TaskRow {
  readonly id: number;
  readonly name: string;
  readonly template: TaskRecord['template'];
  readonly creator: string;
  readonly executor: string;
  readonly host_id: number | null;
  readonly type: TaskRecord['type'];
  readonly task_definition_id: number;
  readonly context: TaskRecord['context'];
  readonly status: TaskRecord['status'];
  readonly operation: TaskRecord['operation'];
  readonly start_time: number;
  readonly end_time: number | null;
}

/** The task row's columns that make a {@link TaskRecord}, for `row_to_json`. */
export const TASK_COLUMNS =
  'id, name, template, creator, executor, host_id, type, task_definition_id, context, ' +
  'status, operation, start_time, end_time';

export function toTaskRecord(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    name: row.name,
    template: row.template,
    creator: row.creator,
    executor: row.executor,
    ...(row.host_id === null ? {} : { hostId: row.host_id }),
    type: row.type,
    taskDefinitionId: row.task_definition_id,
    context: row.context,
    status: row.status,
    operation: row.operation,
    startTime: row.start_time,
    ...(row.end_time === null ? {} : { endTime: row.end_time }),
  };
}

/** A claim as the `claim_json` SQL function renders it: what changes from claim to claim. */
export type ClaimRow = readonly [
  id: number,
  taskId: number,
  runTime: number,
  attempt: number,
  status: SubtaskRecord['status'],
  operation: SubtaskRecord['operation'],
  startTime: number | null,
  executor: string | null,
  input: ContextDelta | null,
  upstreamOutputs: ContextDelta[] | null,
  output: ContextDelta | null,
];

/** The parts of a subtask that never change. */
export type SubtaskShape = Pick<
  SubtaskRecord,
  | 'id'
  | 'taskId'
  | 'nodeKey'
  | 'seriesId'
  | 'parallelIdx'
  | 'className'
  | 'name'
  | 'description'
  | 'nodeType'
  | 'timeout'
  | 'prohibitRollback'
  | 'upstreams'
  | 'downstreams'
>;

/** A subtask shape as the `task_shape` SQL function renders it. */
export type ShapeRow = readonly [
  id: number,
  nodeKey: string,
  seriesId: number,
  parallelIdx: number,
  className: string,
  name: string,
  description: string,
  nodeType: SubtaskRecord['nodeType'],
  timeout: number,
  prohibitRollback: boolean,
  upstreams: number[],
  downstreams: number[],
];

/** What an engine keeps of a task to turn claims into records: all that never changes. */
export interface TaskShape {
  readonly task: TaskRecord;
  readonly firstId: number;
  /** Subtasks in the task. */
  readonly count: number;
  /** Subtask `index` (series order); undefined past the end. */
  subtask(index: number): SubtaskShape | undefined;
}

/** The shape of a task whose subtasks' shapes are at hand (read back, or records). */
export function shapeOf(
  task: TaskRecord,
  firstId: number,
  subtasks: readonly SubtaskShape[],
): TaskShape {
  return { task, firstId, count: subtasks.length, subtask: (index) => subtasks[index] };
}

/**
 * The shape of a task this engine has just expanded, read from its layout: a subtask's shape is
 * built when first claimed, so saving a task builds none.
 */
export function shapeOfLayout(task: TaskRecord, layout: SubtaskLayout): TaskShape {
  const built: SubtaskShape[] = [];
  return {
    task,
    firstId: layout.firstId,
    count: layout.count,
    subtask: (index) =>
      index >= 0 && index < layout.count ? (built[index] ??= layout.record(index)) : undefined,
  };
}

export function toSubtaskShape(taskId: number, row: ShapeRow): SubtaskShape {
  return {
    id: row[0],
    taskId,
    nodeKey: row[1],
    seriesId: row[2],
    parallelIdx: row[3],
    className: row[4],
    name: row[5],
    description: row[6],
    nodeType: row[7],
    timeout: row[8],
    prohibitRollback: row[9],
    upstreams: Object.freeze(row[10]),
    downstreams: Object.freeze(row[11]),
  };
}

const NO_OUTPUTS: readonly ContextDelta[] = Object.freeze([]);

export function toClaim(row: ClaimRow, shape: TaskShape): Claim {
  const [id, , runTime, attempt, status, operation, startTime, executor, input, outputs, output] =
    row;
  const s = shape.subtask(id - shape.firstId) as SubtaskShape;
  const subtask = toSubtaskRecord(s, [status, operation, runTime, startTime, null, executor, null]);
  // Equal outputs were merged by the store: one left is the input as it is.
  const single = outputs?.length === 1 ? outputs[0] : undefined;
  return {
    task: shape.task,
    subtask,
    attempt,
    input: input ?? single,
    upstreamOutputs: single === undefined ? (outputs ?? NO_OUTPUTS) : NO_OUTPUTS,
    output: output ?? undefined,
  };
}

/**
 * SQL rendering what changes of a subtask row `x`, as {@link SubtaskStateRow}: with the task's
 * shape at hand, a read of a task's subtasks needs no more (a 10,000-host batch stop's
 * records, barriers' lists of 10,000 ids included, cost ~0.5 s of database time as JSON).
 */
export const SUBTASK_STATE_SQL =
  'json_build_array(x.status, x.operation, x.run_time, x.start_time, x.end_time, x.executor, x.error)';

/** What changes of a subtask, as {@link SUBTASK_STATE_SQL} renders it. */
export type SubtaskStateRow = readonly [
  status: SubtaskRecord['status'],
  operation: SubtaskRecord['operation'],
  runTime: number,
  startTime: number | null,
  endTime: number | null,
  executor: string | null,
  error: ErrorInfo | null,
];

/** The record of a subtask from its shape and its state (nulls left out, as the SQL does). */
export function toSubtaskRecord(s: SubtaskShape, state: SubtaskStateRow): SubtaskRecord {
  const [status, operation, runTime, startTime, endTime, executor, error] = state;
  const record: SubtaskRecord = {
    id: s.id,
    taskId: s.taskId,
    nodeKey: s.nodeKey,
    seriesId: s.seriesId,
    parallelIdx: s.parallelIdx,
    className: s.className,
    name: s.name,
    description: s.description,
    nodeType: s.nodeType,
    timeout: s.timeout,
    prohibitRollback: s.prohibitRollback,
    upstreams: s.upstreams,
    downstreams: s.downstreams,
    status,
    operation,
    runTime,
  };
  if (startTime !== null) record.startTime = startTime;
  if (endTime !== null) record.endTime = endTime;
  if (executor !== null) record.executor = executor;
  if (error !== null) record.error = error;
  return record;
}

/** SQL rendering one subtask row `x` as a {@link SubtaskRecord} (nulls left out). */
export const SUBTASK_RECORD_SQL = `jsonb_strip_nulls(jsonb_build_object(
  'id', x.id, 'taskId', x.task_id, 'nodeKey', x.node_key, 'seriesId', x.series_id,
  'parallelIdx', x.parallel_idx, 'className', x.class_name, 'name', x.name,
  'description', x.description, 'nodeType', x.node_type, 'timeout', x.timeout,
  'prohibitRollback', x.prohibit_rollback, 'upstreams', to_jsonb(x.upstreams),
  'downstreams', to_jsonb(x.downstreams), 'status', x.status, 'operation', x.operation,
  'runTime', x.run_time, 'startTime', x.start_time, 'endTime', x.end_time,
  'executor', x.executor, 'error', x.error))`;

/** SQL rendering one log row `l` as a `LogEntry`. */
export const LOG_ENTRY_SQL = `jsonb_build_object('taskId', l.task_id, 'subtaskId', l.subtask_id,
  'runTime', l.run_time, 'time', l.time, 'message', l.message)`;

/** SQL rendering one audit row `a` as an `AuditEntry` (no subtaskId for the task). */
export const AUDIT_ENTRY_SQL = `jsonb_strip_nulls(jsonb_build_object('taskId', a.task_id,
  'subtaskId', a.subtask_id, 'operation', a.operation, 'actor', a.actor, 'now', a.at))`;
