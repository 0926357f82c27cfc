import type { ErrorInfo } from './error-info.js';
import type { Operation, TaskStatus } from './status.js';
import type { LogEntry } from './store.js';

/** Names a subtask in event payloads. */
export interface SubtaskRef {
  readonly taskId: number;
  readonly subtaskId: number;
  readonly runTime: number;
}

/**
 * The engine's events (eventemitter3 event map). "An attempt failed" and "a subtask failed for
 * good" are different events. A listener that throws (or rejects) is logged and never breaks
 * the engine.
 */
export interface EngineEvents {
  /** A task was accepted. */
  'task.created': [
    { readonly taskId: number; readonly name: string; readonly subtaskCount: number },
  ];
  /** A task's status changed. */
  'task.statusChanged': [
    {
      readonly taskId: number;
      readonly from: TaskStatus;
      readonly to: TaskStatus;
      readonly operation: Operation;
    },
  ];
  /** A task reached `SUCCESSFUL` or `FAILED`. */
  'task.finished': [
    { readonly taskId: number; readonly status: TaskStatus; readonly operation: Operation },
  ];
  /** A subtask became READY (its upstreams are done and a slot is free). */
  'subtask.ready': [SubtaskRef];
  /** An attempt started on this engine. */
  'subtask.started': [SubtaskRef & { readonly attempt: number; readonly executor: string }];
  /** A handler logged a line. */
  'subtask.log': [LogEntry];
  /** An attempt failed and will be retried after `retryDelayMs`. */
  'subtask.attemptFailed': [
    SubtaskRef & {
      readonly attempt: number;
      readonly error: ErrorInfo;
      readonly retryDelayMs: number;
    },
  ];
  /** A subtask succeeded. */
  'subtask.succeeded': [SubtaskRef];
  /** A subtask failed for good (no retry left, or not retryable). */
  'subtask.failed': [SubtaskRef & { readonly error: ErrorInfo }];
  /**
   * A handler settled after its attempt had already ended (timed out, canceled, or fenced
   * out); its result was discarded.
   */
  'subtask.lateResult': [
    SubtaskRef & { readonly outcome: 'succeeded' | 'failed'; readonly error?: ErrorInfo },
  ];
  /** An operation was applied to a task (retry, skip, cancel, rollback), by `actor`. */
  'task.operation': [
    {
      readonly taskId: number;
      readonly subtaskId?: number;
      readonly operation: Operation;
      readonly actor: string;
    },
  ];
  /**
   * This engine lost the lease of a running attempt (store with leases): its signal is aborted
   * and its result will be discarded; the store counts it as a failed attempt.
   */
  'subtask.leaseLost': [SubtaskRef];
  /** A canceled attempt has ended; the subtask is FAILED. */
  'subtask.canceled': [SubtaskRef];
  /** A subtask was skipped (SKIP), or its failed rollback was (ROLLBACK_SKIP). */
  'subtask.skipped': [SubtaskRef & { readonly operation: Operation }];
  /** A subtask's rollback started on this engine. */
  'subtask.rollbackStarted': [SubtaskRef];
  /** A subtask was rolled back: it is PENDING again. */
  'subtask.rollbackSucceeded': [SubtaskRef];
  /** A subtask's rollback failed: it is FAILED with operation ROLLBACK. */
  'subtask.rollbackFailed': [SubtaskRef & { readonly error: ErrorInfo }];
}

/** Where the engine reports problems it survives (a throwing listener, a failed store write). */
export interface Logger {
  error(message: string, details?: Record<string, unknown>): void;
  warn(message: string, details?: Record<string, unknown>): void;
}

/** Logs to the console as one JSON line per message. */
export const consoleLogger: Logger = {
  error: (message, details) =>
    console.error(JSON.stringify({ level: 'error', message, ...details })),
  warn: (message, details) => console.warn(JSON.stringify({ level: 'warn', message, ...details })),
};
