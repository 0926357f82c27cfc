import type { ContextDelta } from './context.js';
import type { ErrorInfo } from './error-info.js';
import type { ExpandedTask } from './expand-template.js';
import type { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { SubtaskRecord, TaskRecord } from './task.js';

/**
 * A value, or a promise of it. The hot-path methods of {@link Store} may answer synchronously
 * (the in-memory store does), which spares the engine a microtask hop per call.
 */
export type MaybePromise<T> = T | Promise<T>;

/** A task with its subtasks in `seriesId` order, as {@link Store.readTask} answers. */
export interface TaskSnapshot {
  readonly task: TaskRecord;
  readonly subtasks: SubtaskRecord[];
}

/** Ids reserved for one task: the task id and a block of consecutive subtask ids. */
export interface ReservedIds {
  readonly taskId: number;
  readonly firstSubtaskId: number;
}

/**
 * Names one attempt. Every write about an attempt carries it, and the store refuses the write
 * unless the subtask is still in that attempt (same `runTime`, still running, same executor):
 * a stale attempt cannot complete or fail a newer one.
 */
export interface AttemptFence {
  readonly taskId: number;
  readonly subtaskId: number;
  readonly runTime: number;
  readonly executor: string;
}

/** What {@link Store.claimReady} is asked for. */
export interface ClaimRequest {
  /** Identity of the claiming engine, recorded on the subtask. */
  readonly executor: string;
  /** At most this many claims. */
  readonly limit: number;
  /** The engine's clock, epoch ms: retries due by then may be claimed. */
  readonly now: number;
}

/** A READY subtask turned RUNNING for one engine, with what it needs to run. */
export interface Claim {
  /** The task (read-only). */
  readonly task: Readonly<TaskRecord>;
  /**
   * The subtask after the claim: `RUNNING`, with `startTime` and `executor`. Read what you need
   * when the claim arrives: an in-memory store may hand out its own record, which later moves on.
   */
  readonly subtask: Readonly<SubtaskRecord>;
  /** Attempt number within the current retry round, from 1. */
  readonly attempt: number;
  /**
   * The input, when it is known without a merge: saved by an earlier attempt (a retry reuses
   * it), or — as a store may shortcut — a root's (empty) or a single upstream's output.
   */
  readonly input: ContextDelta | undefined;
  /** The upstreams' outputs, to merge into the input when `input` is undefined. */
  readonly upstreamOutputs: readonly ContextDelta[];
  /** The saved output of a subtask that succeeded before (what a rollback undoes). */
  readonly output: ContextDelta | undefined;
}

/** One status change a store made, for the engine to turn into events. */
export type StatusChange =
  | {
      readonly kind: 'task';
      readonly taskId: number;
      readonly from: TaskStatus;
      readonly to: TaskStatus;
      readonly operation: Operation;
    }
  | {
      readonly kind: 'subtask';
      readonly taskId: number;
      readonly subtaskId: number;
      readonly runTime: number;
      readonly from: SubtaskStatus;
      readonly to: SubtaskStatus;
      readonly operation: Operation;
    };

/**
 * The outcome of a write: refused (fenced out), or applied with the changes it made. For an
 * attempt's completion or failure, `changes` lists the consequences (subtasks made READY, the
 * task's status), not the attempt's own move, which the caller knows.
 */
export interface TransitionResult {
  readonly accepted: boolean;
  readonly changes: readonly StatusChange[];
}

/** One line a handler logged. */
export interface LogEntry {
  readonly taskId: number;
  readonly subtaskId: number;
  readonly runTime: number;
  /** Epoch ms. */
  readonly time: number;
  readonly message: string;
}

/** One operation on a task, as the audit trail keeps it. */
export interface AuditEntry {
  readonly taskId: number;
  /** Absent for an operation on the whole task. */
  readonly subtaskId?: number;
  /** `EXECUTE` is the submission. */
  readonly operation: Operation;
  /** Who asked for it. */
  readonly actor: string;
  /** When, epoch ms. */
  readonly now: number;
}

/** Who asks for an operation, and when. */
export interface OperationRequest {
  readonly actor: string;
  /** Epoch ms. */
  readonly now: number;
}

/** One operation on a task, as the audit trail keeps it. */
export interface AuditEntry {
  readonly taskId: number;
  /** Absent for an operation on the whole task. */
  readonly subtaskId?: number;
  /** `EXECUTE` is the submission. */
  readonly operation: Operation;
  /** Who asked for it. */
  readonly actor: string;
  /** When, epoch ms. */
  readonly now: number;
}

/** Who asks for an operation, and when. */
export interface OperationRequest {
  readonly actor: string;
  /** Epoch ms. */
  readonly now: number;
}

/** A subtask's saved input and output, as deltas over the task's context. */
export interface SubtaskContexts {
  readonly input?: ContextDelta;
  readonly output?: ContextDelta;
}

/**
 * Where the engine's state lives. The engine keeps nothing the store does not have: each
 * method is one atomic transition, which also makes READY whatever it unblocks (within the
 * task's concurrency) and finishes the task when it is done.
 */
export interface Store {
  /** Reserves a task id and `subtaskCount` consecutive subtask ids. */
  reserveIds(subtaskCount: number): Promise<ReservedIds>;
  /**
   * Saves a task at submission; the audit trail records `creator` as its first entry. Once it
   * resolves the task is durable and whole. A store may still be writing the rows of a large
   * task's later subtasks (the PostgreSQL store saves such a task head first): those become
   * claimable once written, and the store then notifies its subscribers (`work`); reads and
   * operations of the task see all of it.
   */
  insertTask(expanded: ExpandedTask, creator: OperationRequest): Promise<void>;
  /**
   * {@link insertTask}, then {@link claimReady} with `claim`, in one transaction (one round
   * trip): the claim sees the new task and is made exactly as `claimReady(claim)` right after
   * the save would make it (of a task saved head first, it sees the head). Rejects, having
   * saved and claimed nothing, when the save fails.
   * Optional: without it, the engine saves, then claims. The engine calls it at submission, so
   * that the first subtasks of a task start without waiting for a claim of their own.
   */
  insertTaskAndClaim?(
    expanded: ExpandedTask,
    creator: OperationRequest,
    claim: ClaimRequest,
  ): Promise<Claim[]>;
  /** A task, or undefined when unknown. */
  getTask(taskId: number): Promise<TaskRecord | undefined>;
  /** A task's subtasks in `seriesId` order; empty when the task is unknown. */
  listSubtasks(taskId: number): Promise<SubtaskRecord[]>;
  /**
   * A task and its subtasks in one read (one round trip, one consistent state), or undefined
   * when the task is unknown. Optional: without it, readers call {@link getTask} and
   * {@link listSubtasks}.
   */
  readTask?(taskId: number): Promise<TaskSnapshot | undefined>;
  /** A subtask's saved input and output; undefined when unknown. */
  getSubtaskContexts(taskId: number, subtaskId: number): Promise<SubtaskContexts | undefined>;
  /**
   * Turns up to `limit` READY subtasks RUNNING, fairly across tasks, never more RUNNING per task
   * than its concurrency, and never a subtask of a task that is not RUNNING or has a subtask
   * that failed for good. On a store that answers with promises, an engine asks for a claim as
   * soon as it has handed over a success ({@link completeAttempt}), before that is answered:
   * such a store should apply the two in the order they were called (PostgresStore puts them in
   * one transaction, the end first), or the claim may miss what the end makes READY.
   */
  claimReady(request: ClaimRequest): MaybePromise<Claim[]>;
  /** RUNNING → SUCCESSFUL; saves input and output; unblocks downstreams; may finish the task. */
  completeAttempt(
    fence: AttemptFence,
    result: { readonly input: ContextDelta; readonly output: ContextDelta; readonly now: number },
  ): MaybePromise<TransitionResult>;
  /**
   * RUNNING → READY (operation RETRY, runTime + 1) when `retryAt` is given, claimable from then;
   * otherwise RUNNING → FAILED, and the task FAILED once nothing of it runs any more.
   */
  failAttempt(
    fence: AttemptFence,
    result: {
      readonly input: ContextDelta | undefined;
      readonly error: ErrorInfo;
      readonly retryAt?: number;
      readonly now: number;
    },
  ): MaybePromise<TransitionResult>;
  /**
   * Operations on a live task (SPEC §5). Each checks the state first and refuses with a
   * `DagopsError` — `TASK_NOT_FOUND` (20000) for an unknown task or a subtask not part of it,
   * `TASK_STATE_INVALID` (20003), `TASK_PROHIBIT_ROLLBACK` (20004) — changing nothing; otherwise
   * it applies the change, records it in the audit trail, and returns what changed.
   */
  retryTask(taskId: number, request: OperationRequest): Promise<StatusChange[]>;
  /** Retry one FAILED subtask (not during a rollback). */
  retrySubtask(
    taskId: number,
    subtaskId: number,
    request: OperationRequest,
  ): Promise<StatusChange[]>;
  /** Skip a FAILED subtask; during a rollback, skip a subtask whose rollback failed. */
  skipSubtask(
    taskId: number,
    subtaskId: number,
    request: OperationRequest,
  ): Promise<StatusChange[]>;
  /** RUNNING → CANCELING; the attempt's end (failAttempt) makes it FAILED. */
  cancelSubtask(
    taskId: number,
    subtaskId: number,
    request: OperationRequest,
  ): Promise<StatusChange[]>;
  /** Cancel every running subtask and start nothing new; the task ends FAILED. */
  cancelTask(taskId: number, request: OperationRequest): Promise<StatusChange[]>;
  /** Start rolling back a FAILED task. */
  rollbackTask(taskId: number, request: OperationRequest): Promise<StatusChange[]>;
  /** The task's audit trail, oldest first; empty when the task is unknown. */
  listAudit(taskId: number): Promise<AuditEntry[]>;
  /** The earliest time a READY subtask waiting for its retry backoff becomes claimable. */
  nextRetryAt(): Promise<number | undefined>;
  /** Appends handler log lines. */
  appendLogs(entries: readonly LogEntry[]): MaybePromise<void>;
  /** A subtask's log lines, oldest first. */
  readLogs(taskId: number, subtaskId: number): Promise<LogEntry[]>;

  // Leases: a store shared by engines in several processes (the PostgreSQL store) leases each
  // claim for `leaseMs`. The engine then keeps its attempts' leases alive with `heartbeat`, and
  // fails the attempts of engines that died with `reapExpired`. A store without leases (the
  // in-memory one) has none of these, and the engine does no per-attempt work for them.

  /** How long a claim stays leased without a heartbeat, ms; present with `heartbeat`. */
  readonly leaseMs?: number;
  /**
   * Extends the leases of these attempts. Reports those whose lease is lost (the attempt was
   * taken over, moved on, or its lease expired): the engine aborts them and discards their
   * result. Also reports those another engine canceled, for the engine to cancel them.
   */
  heartbeat?(fences: readonly AttemptFence[]): MaybePromise<HeartbeatResult>;
  /**
   * Takes over up to `limit` attempts whose lease expired, re-fenced to `executor` in the same
   * step so that two reapers never both take one; the engine then fails each (an expired lease
   * is a failed attempt, retried by policy). In the claims, `subtask.executor` names the engine
   * that lost the lease.
   */
  reapExpired?(request: ClaimRequest): MaybePromise<Claim[]>;
  /**
   * Calls `listener` when something happened elsewhere (another engine, another process) that
   * this engine should act on. Returns a function that stops the calls.
   */
  subscribe?(listener: (notice: StoreNotice) => void): () => void;
}

/** What {@link Store.heartbeat} found. */
export interface HeartbeatResult {
  /** Attempts whose lease is lost. */
  readonly lost: readonly AttemptFence[];
  /** Attempts still held whose subtask was canceled (CANCELING). */
  readonly canceled: readonly AttemptFence[];
}

/** News from a store shared with other engines (see {@link Store.subscribe}). */
export type StoreNotice =
  /** READY work may be claimable. */
  | { readonly kind: 'work' }
  /** A retry was scheduled: when it falls due may have changed. */
  | { readonly kind: 'retry' }
  /** A running subtask was canceled: the engine running it should learn at once. */
  | { readonly kind: 'canceled' }
  /** A task reached SUCCESSFUL or FAILED. */
  | { readonly kind: 'taskFinished'; readonly taskId: number };
