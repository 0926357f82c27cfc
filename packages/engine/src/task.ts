import type { ErrorInfo } from './error-info.js';
import type { NodeType, Operation, SubtaskStatus, TaskStatus, TaskType } from './status.js';
import type { Template } from './template.js';

/** A task's context: string arguments and list arguments, as OCP keeps them. */
export interface TaskContext {
  /** List arguments, e.g. `host_ids`; a split node makes one copy per element. */
  readonly listMap: Readonly<Record<string, readonly string[]>>;
  /** Always false on a task: the task itself is not a branch. */
  readonly parallel: boolean;
  /** Always -1 on a task. */
  readonly parallelIdx: number;
  /** String arguments; always holds `prohibit_rollback` as `"true"` or `"false"`. */
  readonly stringMap: Readonly<Record<string, string>>;
}

/**
 * A subtask as the engine keeps it. Times are epoch milliseconds; {@link toTaskJson} renders
 * the wire shape.
 */
export interface SubtaskRecord {
  /** Unique across all tasks. */
  readonly id: number;
  /** The task it belongs to. */
  readonly taskId: number;
  /** The template node it was expanded from. */
  readonly nodeKey: string;
  /** Index in expansion order. */
  readonly seriesId: number;
  /** Branch index of a split node; -1 when the node is not split. */
  readonly parallelIdx: number;
  /** The handler's className. */
  readonly className: string;
  /** Human name. */
  readonly name: string;
  /** Human description. */
  readonly description: string;
  /** Always `JAVA_TASK`. */
  readonly nodeType: NodeType;
  /** Bound on one attempt, in seconds. */
  readonly timeout: number;
  /** When true, a task that ran this subtask cannot be rolled back. */
  readonly prohibitRollback: boolean;
  /** Ids of the subtasks this one waits for. */
  readonly upstreams: readonly number[];
  /** Ids of the subtasks that wait for this one. */
  readonly downstreams: readonly number[];
  /** Current status. */
  status: SubtaskStatus;
  /** Last operation applied. */
  operation: Operation;
  /** Number of the current (or next) execution, starting at 1. */
  runTime: number;
  /** When the current execution started (epoch ms). */
  startTime?: number | undefined;
  /** When the last execution ended (epoch ms). */
  endTime?: number | undefined;
  /** Identity of the engine that ran it. */
  executor?: string | undefined;
  /** Why it failed; present only while `status` is `FAILED`. */
  error?: ErrorInfo | undefined;
}

/** A task as the engine keeps it, without its subtasks. Times are epoch milliseconds. */
export interface TaskRecord {
  /** Unique task id. */
  readonly id: number;
  /** The template's name. */
  readonly name: string;
  /** The template the task runs, as validated at submission. */
  readonly template: Template;
  /** Who submitted the task. */
  readonly creator: string;
  /** Identity of the engine that accepted the task. */
  readonly executor: string;
  /** The host a single-host task is about (from the `host_id` argument). */
  readonly hostId?: number;
  /** `MANUAL`, `SCHEDULED` or `SYS_SCHEDULED`. */
  readonly type: TaskType;
  /** -1 for ad-hoc tasks, as OCP. */
  readonly taskDefinitionId: number;
  /** The arguments, with `prohibit_rollback` always present. */
  readonly context: TaskContext;
  /** Current status. */
  status: TaskStatus;
  /** Last operation applied. */
  operation: Operation;
  /** Submission time (epoch ms). */
  readonly startTime: number;
  /** When the task reached a final status (epoch ms). */
  endTime?: number | undefined;
}

/** A subtask in the wire shape of OCP's API (keys in the seeds' order). */
export interface SubtaskJson {
  className: string;
  description: string;
  downstreams: readonly number[];
  endTime?: string;
  executor?: string;
  id: number;
  name: string;
  nodeType: NodeType;
  operation: Operation;
  parallelIdx: number;
  prohibitRollback: boolean;
  runTime: number;
  seriesId: number;
  startTime?: string;
  status: SubtaskStatus;
  timeout: number;
  upstreams: readonly number[];
}

/** A task in the wire shape of OCP's API (keys in the seeds' order). */
export interface TaskJson {
  context: {
    listMap: Record<string, string[]>;
    parallel: boolean;
    parallelIdx: number;
    stringMap: Record<string, string>;
  };
  creator: string;
  endTime?: string;
  executor: string;
  hostId?: number;
  id: number;
  name: string;
  operation: Operation;
  startTime: string;
  status: TaskStatus;
  subtasks: SubtaskJson[];
  taskDefinitionId: number;
  type: TaskType;
}
