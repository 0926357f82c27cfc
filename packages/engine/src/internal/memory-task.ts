import { EMPTY_DELTA, type ContextDelta } from '../context.js';
import type { ErrorInfo } from '../error-info.js';
import { DagopsError, ErrorCode } from '../errors.js';
import type { ExpandedTask } from '../expand-template.js';
import { Operation, SubtaskStatus, TaskStatus } from '../status.js';
import type { AuditEntry, LogEntry, OperationRequest, StatusChange } from '../store.js';
import { PROHIBIT_ROLLBACK_KEY } from '../task-arguments.js';
import type { SubtaskRecord, TaskRecord } from '../task.js';
import { DEFAULT_TASK_CONCURRENCY } from '../template.js';
import { assertSubtaskMove, assertTaskMove } from '../transitions.js';
import { RingQueue } from './ring-queue.js';

/** A subtask's part in the current rollback. */
const NONE = 0;
const AWAITING = 1;
const ROLLBACK_FAILED = 2;

function refuse(message: string, target: string): DagopsError {
  return new DagopsError(ErrorCode.TASK_STATE_INVALID, message, { target });
}

/**
 * One task's state in the in-memory store, and every transition of it (SPEC §4–5). Counters
 * per status are kept by the one `move` function every status change goes through, so the
 * hot path needs no scan. An operation checks everything it needs before it changes anything:
 * a refused operation leaves the task exactly as it was.
 */
export class MemoryTask {
  readonly record: TaskRecord;
  readonly subtasks: SubtaskRecord[];
  readonly firstId: number;
  readonly concurrency: number;
  /** Attempt number within the current retry round, per subtask. */
  readonly attempts: Uint32Array;
  readonly inputs: (ContextDelta | undefined)[];
  readonly outputs: (ContextDelta | undefined)[];
  readonly logs = new Map<number, LogEntry[]>();
  readonly audit: AuditEntry[] = [];
  /** Whether the store's round-robin of tasks with claimable work holds this task. */
  queued = false;
  /** READY subtasks that may be claimed now (entries may be stale: check the status). */
  readonly ready = new RingQueue<number>();
  /** Subtasks whose dependencies are done, waiting for a READY slot (`concurrency`). */
  private eligible = new RingQueue<number>();
  /** Executing: upstreams not yet SUCCESSFUL. Rolling back: downstreams not yet PENDING. */
  private readonly waiting: Int32Array;
  /** Per subtask, its part in the current rollback: NONE, AWAITING, or FAILED. */
  private readonly rollback: Uint8Array;
  /** Subtasks whose rollback failed in the current rollback. */
  private failedRollbacks = 0;
  /**
   * The current rollback was canceled: start nothing new, FAILED once nothing runs. (A canceled
   * execution says so in its operation, CANCEL; a canceled rollback keeps ROLLBACK.)
   */
  private rollbackCanceled = false;
  /** Changes the operation under way has reported (see {@link report}). */
  private reported: StatusChange[] | undefined;
  private readonly count: Record<SubtaskStatus, number> = {
    PENDING: 0,
    READY: 0,
    RUNNING: 0,
    CANCELING: 0,
    FAILED: 0,
    SUCCESSFUL: 0,
  };

  constructor({ task, subtasks }: ExpandedTask, creator: OperationRequest) {
    const size = subtasks.length;
    this.record = task;
    this.subtasks = subtasks;
    this.firstId = subtasks[0]?.id ?? 0;
    this.concurrency = task.template.concurrency ?? DEFAULT_TASK_CONCURRENCY;
    this.attempts = new Uint32Array(size).fill(1);
    this.inputs = new Array<ContextDelta | undefined>(size);
    this.outputs = new Array<ContextDelta | undefined>(size);
    this.waiting = new Int32Array(size);
    this.rollback = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const subtask = subtasks[i] as SubtaskRecord;
      this.waiting[i] = subtask.upstreams.length;
      this.tally(subtask.status, 1);
      if (subtask.status === SubtaskStatus.READY) this.ready.push(i);
    }
    this.audit.push({ taskId: task.id, operation: Operation.EXECUTE, ...creator });
  }

  /** The subtask's index, or -1 when it is not part of this task. */
  indexOf(subtaskId: number): number {
    const index = subtaskId - this.firstId;
    return Number.isInteger(index) && index >= 0 && index < this.subtasks.length ? index : -1;
  }

  /** The subtask's index; throws `TASK_NOT_FOUND` when it is not part of this task. */
  require(subtaskId: number): number {
    const index = this.indexOf(subtaskId);
    if (index < 0) {
      throw new DagopsError(
        ErrorCode.TASK_NOT_FOUND,
        `subtask ${subtaskId} is not part of task ${this.record.id}`,
        { target: String(subtaskId) },
      );
    }
    return index;
  }

  /** How many more subtasks claims may take now: none while anything failed or is canceling. */
  freeSlots(): number {
    const { record, count } = this;
    if (record.status !== TaskStatus.RUNNING || this.failures() > 0 || count.CANCELING > 0)
      return 0;
    if (record.operation === Operation.CANCEL || this.rollbackCanceled) return 0;
    return this.concurrency - count.RUNNING;
  }

  private get rollingBack(): boolean {
    return this.record.operation === Operation.ROLLBACK;
  }

  /** Failures that stop dispatch: any FAILED subtask, or while rolling back, failed rollbacks. */
  private failures(rollingBack = this.rollingBack): number {
    return rollingBack ? this.failedRollbacks : this.count.FAILED;
  }

  /** READY → RUNNING for `executor`. */
  claim(index: number, executor: string, now: number): SubtaskRecord {
    const subtask = this.subtasks[index] as SubtaskRecord;
    this.move(index, SubtaskStatus.RUNNING, subtask.operation, false);
    subtask.startTime = now;
    if (subtask.endTime !== undefined) subtask.endTime = undefined;
    subtask.executor = executor;
    return subtask;
  }

  /** The attempt of `index` succeeded (or its rollback did). */
  complete(index: number, input: ContextDelta, output: ContextDelta, now: number): StatusChange[] {
    const subtask = this.subtasks[index] as SubtaskRecord;
    subtask.endTime = now;
    if (subtask.status === SubtaskStatus.CANCELING) {
      this.endCanceled(index);
    } else if (this.rollingBack) {
      this.rollback[index] = NONE;
      this.move(index, SubtaskStatus.PENDING, Operation.ROLLBACK, false);
      this.releaseUpstreams(subtask);
    } else {
      this.inputs[index] = input;
      this.outputs[index] = output;
      // The attempt's own move is the caller's news already: only consequences are reported.
      this.move(index, SubtaskStatus.SUCCESSFUL, subtask.operation, false);
      this.releaseDownstreams(subtask);
    }
    this.settle(now);
    return this.taken();
  }

  /**
   * The attempt of `index` failed. With `retryAt` (and not canceled, not rolling back) the
   * subtask returns to READY for a retry and `'retry'` is returned; it is then the caller's to
   * make it claimable at `retryAt`.
   */
  fail(
    index: number,
    input: ContextDelta | undefined,
    error: ErrorInfo,
    retryAt: number | undefined,
    now: number,
  ): { changes: StatusChange[]; retry: boolean } {
    const subtask = this.subtasks[index] as SubtaskRecord;
    if (input !== undefined) this.inputs[index] = input;
    subtask.endTime = now;
    const retry =
      retryAt !== undefined && subtask.status === SubtaskStatus.RUNNING && !this.rollingBack;
    if (subtask.status === SubtaskStatus.CANCELING) {
      this.endCanceled(index, error);
    } else if (retry) {
      subtask.runTime++;
      this.attempts[index] = (this.attempts[index] as number) + 1;
      this.move(index, SubtaskStatus.READY, Operation.RETRY, false);
    } else {
      subtask.error = error;
      if (this.rollingBack) this.markRollbackFailed(index);
      this.move(index, SubtaskStatus.FAILED, subtask.operation, false);
    }
    this.settle(now);
    return { changes: this.taken(), retry };
  }

  /** Retry task: FAILED and not rolling back → every FAILED subtask READY again. */
  retryTask({ actor, now }: OperationRequest): StatusChange[] {
    const { record } = this;
    if (record.status !== TaskStatus.FAILED) {
      throw refuse(
        `task ${record.id} is ${record.status}: only a FAILED task can be retried`,
        String(record.id),
      );
    }
    this.refuseInRollback('retried');
    this.subtasks.forEach((subtask, index) => {
      if (subtask.status === SubtaskStatus.FAILED) this.rearm(index);
    });
    this.resume(Operation.RETRY, now);
    this.audit.push({ taskId: record.id, operation: Operation.RETRY, actor, now });
    this.settle(now);
    return this.taken();
  }

  /** Retry subtask: FAILED, not rolling back → READY. */
  retrySubtask(index: number, { actor, now }: OperationRequest): StatusChange[] {
    const subtask = this.subtasks[index] as SubtaskRecord;
    this.requireStatus(subtask, SubtaskStatus.FAILED, 'retried');
    this.refuseInRollback('retried');
    this.rearm(index);
    this.resume(Operation.RETRY, now);
    this.audit.push({
      taskId: this.record.id,
      subtaskId: subtask.id,
      operation: Operation.RETRY,
      actor,
      now,
    });
    this.settle(now);
    return this.taken();
  }

  /**
   * Skip: a FAILED subtask becomes SUCCESSFUL (operation SKIP) with its input as its output; in
   * a rollback, a subtask whose rollback failed becomes PENDING (ROLLBACK_SKIP) without running
   * its rollback. The task resumes when nothing else is FAILED.
   */
  skipSubtask(index: number, { actor, now }: OperationRequest): StatusChange[] {
    const subtask = this.subtasks[index] as SubtaskRecord;
    this.requireStatus(subtask, SubtaskStatus.FAILED, 'skipped');
    if (this.rollingBack && this.rollback[index] !== ROLLBACK_FAILED) {
      throw refuse(
        `subtask ${subtask.id} is waiting for its rollback: only a subtask whose rollback failed can be skipped during a rollback`,
        String(subtask.id),
      );
    }
    let operation: Operation;
    if (this.rollingBack) {
      operation = Operation.ROLLBACK_SKIP;
      this.rollback[index] = NONE;
      this.failedRollbacks--;
      this.move(index, SubtaskStatus.PENDING, operation, true);
      this.releaseUpstreams(subtask);
      this.resume(Operation.ROLLBACK, now);
    } else {
      operation = Operation.SKIP;
      const input = this.inputs[index] ?? EMPTY_DELTA;
      this.inputs[index] = input;
      this.outputs[index] = input;
      this.move(index, SubtaskStatus.SUCCESSFUL, operation, true);
      this.releaseDownstreams(subtask);
      this.resume(Operation.SKIP, now);
    }
    this.audit.push({ taskId: this.record.id, subtaskId: subtask.id, operation, actor, now });
    this.settle(now);
    return this.taken();
  }

  /** Cancel subtask: RUNNING → CANCELING; the attempt's end makes it FAILED. */
  cancelSubtask(index: number, { actor, now }: OperationRequest): StatusChange[] {
    const subtask = this.subtasks[index] as SubtaskRecord;
    this.requireStatus(subtask, SubtaskStatus.RUNNING, 'canceled');
    this.move(index, SubtaskStatus.CANCELING, this.cancelOperation(), true);
    this.audit.push({
      taskId: this.record.id,
      subtaskId: subtask.id,
      operation: Operation.CANCEL,
      actor,
      now,
    });
    return this.taken();
  }

  /**
   * Cancel task: every RUNNING subtask CANCELING, nothing new starts, and the task is FAILED once
   * nothing runs (at once when nothing does). While executing, the task's operation becomes
   * CANCEL; while rolling back it stays ROLLBACK, so that rollback again (or rollback-skip) is
   * what follows, never a retry.
   */
  cancelTask({ actor, now }: OperationRequest): StatusChange[] {
    const { record } = this;
    if (record.status !== TaskStatus.RUNNING) {
      throw refuse(
        `task ${record.id} is ${record.status}: only a RUNNING task can be canceled`,
        String(record.id),
      );
    }
    const operation = this.cancelOperation();
    this.subtasks.forEach((subtask, index) => {
      if (subtask.status === SubtaskStatus.RUNNING) {
        this.move(index, SubtaskStatus.CANCELING, operation, true);
      }
    });
    if (this.rollingBack) this.rollbackCanceled = true;
    else record.operation = Operation.CANCEL;
    this.audit.push({ taskId: record.id, operation: Operation.CANCEL, actor, now });
    this.settle(now);
    return this.taken();
  }

  /**
   * Rollback task (SPEC §5): FAILED, and neither the template, the arguments nor any executed
   * subtask prohibits it. Every subtask that ran and is not yet back to PENDING gets operation
   * ROLLBACK and runs its handler's `rollback` once all its downstreams are PENDING; subtasks
   * that never ran are not called.
   */
  startRollback({ actor, now }: OperationRequest): StatusChange[] {
    const { record, subtasks } = this;
    if (record.status !== TaskStatus.FAILED) {
      throw refuse(
        `task ${record.id} is ${record.status}: only a FAILED task can be rolled back`,
        String(record.id),
      );
    }
    const prohibiting = subtasks.find((s) => s.prohibitRollback && s.startTime !== undefined);
    if (
      record.template.prohibitRollback === true ||
      record.context.stringMap[PROHIBIT_ROLLBACK_KEY] === 'true' ||
      prohibiting
    ) {
      const why = prohibiting
        ? `subtask ${prohibiting.id} (${prohibiting.name}) ran and prohibits rollback`
        : 'its template or arguments prohibit rollback';
      throw new DagopsError(
        ErrorCode.TASK_PROHIBIT_ROLLBACK,
        `task ${record.id} cannot be rolled back: ${why}`,
        { target: String(prohibiting?.id ?? record.id) },
      );
    }
    subtasks.forEach((subtask, index) => {
      if (subtask.status === SubtaskStatus.READY && subtask.startTime === undefined) {
        this.move(index, SubtaskStatus.PENDING, subtask.operation, true);
      }
    });
    this.eligible = new RingQueue<number>();
    this.rollback.fill(NONE);
    this.failedRollbacks = 0;
    subtasks.forEach((subtask, index) => {
      if (!this.needsRollback(subtask)) return;
      this.rollback[index] = AWAITING;
      subtask.operation = Operation.ROLLBACK;
      let waiting = 0;
      for (const down of subtask.downstreams) {
        if ((subtasks[down - this.firstId] as SubtaskRecord).status !== SubtaskStatus.PENDING) {
          waiting++;
        }
      }
      this.waiting[index] = waiting;
      if (waiting > 0) return;
      // Already READY (a retry waiting for its backoff, a subtask whose turn came in an earlier
      // rollback): claimable as it is. Its runTime names an execution that has not happened, and
      // promoting it again would roll it back twice once an old queue entry had claimed it.
      if (subtask.status === SubtaskStatus.READY) this.ready.push(index);
      else this.eligible.push(index);
    });
    this.resume(Operation.ROLLBACK, now);
    this.audit.push({ taskId: record.id, operation: Operation.ROLLBACK, actor, now });
    this.settle(now);
    return this.taken();
  }

  private needsRollback(subtask: SubtaskRecord): boolean {
    return subtask.startTime !== undefined && subtask.status !== SubtaskStatus.PENDING;
  }

  private markRollbackFailed(index: number): void {
    if (this.rollback[index] !== ROLLBACK_FAILED) this.failedRollbacks++;
    this.rollback[index] = ROLLBACK_FAILED;
  }

  private cancelOperation(): Operation {
    return this.rollingBack ? Operation.ROLLBACK : Operation.CANCEL;
  }

  private endCanceled(index: number, error?: ErrorInfo): void {
    const subtask = this.subtasks[index] as SubtaskRecord;
    if (this.rollingBack) this.markRollbackFailed(index);
    subtask.error = error ?? {
      name: 'CanceledError',
      message: 'the attempt was canceled',
      code: ErrorCode.ATTEMPT_CANCELED,
    };
    this.move(index, SubtaskStatus.FAILED, this.cancelOperation(), true);
  }

  /** FAILED → READY for a new round of attempts (operation RETRY, runTime + 1). */
  private rearm(index: number): void {
    const subtask = this.subtasks[index] as SubtaskRecord;
    subtask.runTime++;
    this.attempts[index] = 1;
    this.move(index, SubtaskStatus.READY, Operation.RETRY, true);
    this.ready.push(index);
  }

  /**
   * FAILED task → RUNNING with `operation`, unless failures still block it (they do not count
   * the FAILED subtasks a starting rollback is about to roll back).
   */
  private resume(operation: Operation, now: number): void {
    const { record } = this;
    if (record.status !== TaskStatus.FAILED) return;
    if (this.failures(operation === Operation.ROLLBACK) > 0) {
      if (operation === Operation.ROLLBACK) record.operation = operation;
      return;
    }
    this.moveTask(TaskStatus.RUNNING, operation, now);
    record.endTime = undefined;
  }

  private releaseDownstreams({ downstreams }: SubtaskRecord): void {
    // Indexed: for-of over the frozen id arrays takes V8's generic iterator, which allocates.
    for (let i = 0; i < downstreams.length; i++) {
      const down = (downstreams[i] as number) - this.firstId;
      if (--(this.waiting[down] as number) === 0) this.eligible.push(down);
    }
  }

  private releaseUpstreams({ upstreams }: SubtaskRecord): void {
    for (let i = 0; i < upstreams.length; i++) {
      const up = (upstreams[i] as number) - this.firstId;
      if (this.rollback[up] !== AWAITING) continue;
      if (--(this.waiting[up] as number) === 0) this.eligible.push(up);
    }
  }

  private refuseInRollback(verb: string): void {
    if (this.rollingBack) {
      throw refuse(
        `task ${this.record.id} is being rolled back: it cannot be ${verb}; roll back again or skip the failed rollback`,
        String(this.record.id),
      );
    }
  }

  private requireStatus(subtask: SubtaskRecord, status: SubtaskStatus, verb: string): void {
    if (subtask.status !== status) {
      throw refuse(
        `subtask ${subtask.id} is ${subtask.status}: only a ${status} subtask can be ${verb}`,
        String(subtask.id),
      );
    }
  }

  /** Finishes the task when it is done, or promotes what waits for a READY slot. */
  private settle(now: number): void {
    const { record, count } = this;
    if (record.status !== TaskStatus.RUNNING) return;
    const running = count.RUNNING + count.CANCELING;
    if (this.failures() > 0 || record.operation === Operation.CANCEL || this.rollbackCanceled) {
      if (running === 0) {
        this.rollbackCanceled = false;
        this.moveTask(TaskStatus.FAILED, record.operation, now);
      }
      return;
    }
    const done = this.rollingBack ? count.PENDING : count.SUCCESSFUL;
    if (done === this.subtasks.length) {
      this.moveTask(TaskStatus.SUCCESSFUL, record.operation, now);
      return;
    }
    while (count.READY + running < this.concurrency && this.eligible.length > 0) {
      const index = this.eligible.shift() as number;
      const subtask = this.subtasks[index] as SubtaskRecord;
      // A rollback is an execution of its own: a new runTime fences it and keys it.
      if (this.rollingBack) subtask.runTime++;
      if (subtask.status !== SubtaskStatus.READY) {
        this.move(index, SubtaskStatus.READY, subtask.operation, true);
      }
      this.ready.push(index);
    }
  }

  /**
   * Applies one subtask status move through the transition table; `reported` adds it to the
   * changes the operation returns.
   */
  private move(index: number, to: SubtaskStatus, operation: Operation, reported: boolean): void {
    const subtask = this.subtasks[index] as SubtaskRecord;
    const from = subtask.status;
    assertSubtaskMove(subtask.id, from, to);
    this.tally(from, -1);
    this.tally(to, 1);
    subtask.status = to;
    subtask.operation = operation;
    if (to !== SubtaskStatus.FAILED && subtask.error !== undefined) subtask.error = undefined;
    if (!reported) return;
    this.report({
      kind: 'subtask',
      taskId: this.record.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      from,
      to,
      operation,
    });
  }

  /**
   * Adds `delta` to the count of `status`. A switch of named stores: `count[status] += delta`
   * with a variable key is a megamorphic keyed access, several times slower on the hot path.
   */
  private tally(status: SubtaskStatus, delta: number): void {
    const { count } = this;
    switch (status) {
      case SubtaskStatus.PENDING:
        count.PENDING += delta;
        break;
      case SubtaskStatus.READY:
        count.READY += delta;
        break;
      case SubtaskStatus.RUNNING:
        count.RUNNING += delta;
        break;
      case SubtaskStatus.CANCELING:
        count.CANCELING += delta;
        break;
      case SubtaskStatus.FAILED:
        count.FAILED += delta;
        break;
      case SubtaskStatus.SUCCESSFUL:
        count.SUCCESSFUL += delta;
        break;
    }
  }

  /** Adds a change to those the current operation returns. */
  private report(change: StatusChange): void {
    // Most operations report one change or none: a one-element literal is exact, where a push
    // onto an empty array reserves 17 slots.
    if (this.reported) this.reported.push(change);
    else this.reported = [change];
  }

  /** The changes the current operation reported, handed over to the caller. */
  private taken(): StatusChange[] {
    const changes = this.reported ?? [];
    this.reported = undefined;
    return changes;
  }

  private moveTask(to: TaskStatus, operation: Operation, now: number) {
    const { record } = this;
    assertTaskMove(record.id, record.status, to);
    this.report({ kind: 'task', taskId: record.id, from: record.status, to, operation });
    record.status = to;
    record.operation = operation;
    if (to !== TaskStatus.RUNNING) record.endTime = now;
  }
}
