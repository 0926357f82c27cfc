/**
 * The enums of the wire format, as `as const` objects with same-named types (no TS `enum`),
 * spelled exactly as OCP spells them.
 */

/** Status of a task instance. */
export const TaskStatus = {
  RUNNING: 'RUNNING',
  SUCCESSFUL: 'SUCCESSFUL',
  FAILED: 'FAILED',
} as const;
/** Status of a task instance. */
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

/** Status of a subtask instance. */
export const SubtaskStatus = {
  PENDING: 'PENDING',
  READY: 'READY',
  RUNNING: 'RUNNING',
  CANCELING: 'CANCELING',
  FAILED: 'FAILED',
  SUCCESSFUL: 'SUCCESSFUL',
} as const;
/** Status of a subtask instance. */
export type SubtaskStatus = (typeof SubtaskStatus)[keyof typeof SubtaskStatus];

/** The last operation applied to a task or subtask. */
export const Operation = {
  EXECUTE: 'EXECUTE',
  RETRY: 'RETRY',
  ROLLBACK: 'ROLLBACK',
  SKIP: 'SKIP',
  ROLLBACK_SKIP: 'ROLLBACK_SKIP',
  CANCEL: 'CANCEL',
} as const;
/** The last operation applied to a task or subtask. */
export type Operation = (typeof Operation)[keyof typeof Operation];

/** Who started a task. */
export const TaskType = {
  MANUAL: 'MANUAL',
  SCHEDULED: 'SCHEDULED',
  SYS_SCHEDULED: 'SYS_SCHEDULED',
} as const;
/** Who started a task. */
export type TaskType = (typeof TaskType)[keyof typeof TaskType];

/** Kind of a subtask; dagops runs in-process handlers only, which OCP calls `JAVA_TASK`. */
export const NodeType = {
  JAVA_TASK: 'JAVA_TASK',
} as const;
/** Kind of a subtask. */
export type NodeType = (typeof NodeType)[keyof typeof NodeType];

/** How the copies of a split node relate: side by side, or chained one after another. */
export const SplitMethod = {
  PARALLEL: 'PARALLEL',
  SERIAL: 'SERIAL',
} as const;
/** How the copies of a split node relate. */
export type SplitMethod = (typeof SplitMethod)[keyof typeof SplitMethod];
