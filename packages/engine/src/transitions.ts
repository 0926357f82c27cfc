import { DagopsError, ErrorCode } from './errors.js';
import { SubtaskStatus, TaskStatus } from './status.js';

/**
 * Every legal subtask status move, written once. Stores apply status changes only through
 * {@link assertSubtaskMove}, so an illegal move is a bug that fails loudly.
 */
export const SUBTASK_TRANSITIONS: Readonly<Record<SubtaskStatus, readonly SubtaskStatus[]>> = {
  // upstreams done and a slot free
  PENDING: [SubtaskStatus.READY],
  // claimed by an engine; a rollback resets a subtask that never ran
  READY: [SubtaskStatus.RUNNING, SubtaskStatus.PENDING],
  // succeeded; failed attempt to be retried; failed for good; cancel requested; rolled back
  RUNNING: [
    SubtaskStatus.SUCCESSFUL,
    SubtaskStatus.READY,
    SubtaskStatus.FAILED,
    SubtaskStatus.CANCELING,
    SubtaskStatus.PENDING,
  ],
  // the canceled attempt has ended
  CANCELING: [SubtaskStatus.FAILED],
  // retry, or its turn to roll back; skip; rollback-skip
  FAILED: [SubtaskStatus.READY, SubtaskStatus.SUCCESSFUL, SubtaskStatus.PENDING],
  // its turn to roll back
  SUCCESSFUL: [SubtaskStatus.READY],
};

/** Every legal task status move: finishing, and resuming (retry, skip, rollback). */
export const TASK_TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  RUNNING: [TaskStatus.SUCCESSFUL, TaskStatus.FAILED],
  FAILED: [TaskStatus.RUNNING],
  SUCCESSFUL: [],
};

/** Throws unless `from → to` is in {@link SUBTASK_TRANSITIONS}. */
export function assertSubtaskMove(subtaskId: number, from: SubtaskStatus, to: SubtaskStatus): void {
  if (!SUBTASK_TRANSITIONS[from].includes(to)) {
    throw new DagopsError(
      ErrorCode.TASK_STATE_INVALID,
      `subtask ${subtaskId} cannot move from ${from} to ${to}`,
      { target: String(subtaskId) },
    );
  }
}

/** Throws unless `from → to` is in {@link TASK_TRANSITIONS}. */
export function assertTaskMove(taskId: number, from: TaskStatus, to: TaskStatus): void {
  if (!TASK_TRANSITIONS[from].includes(to)) {
    throw new DagopsError(
      ErrorCode.TASK_STATE_INVALID,
      `task ${taskId} cannot move from ${from} to ${to}`,
      { target: String(taskId) },
    );
  }
}
