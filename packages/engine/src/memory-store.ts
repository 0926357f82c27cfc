import { EMPTY_DELTA, type ContextDelta } from './context.js';
import { DagopsError, ErrorCode } from './errors.js';
import type { ErrorInfo } from './error-info.js';
import type { ExpandedTask } from './expand-template.js';
import { MemoryTask } from './internal/memory-task.js';
import { MinHeap } from './internal/min-heap.js';
import { RingQueue } from './internal/ring-queue.js';
import { SubtaskStatus } from './status.js';
import type {
  AttemptFence,
  AuditEntry,
  Claim,
  ClaimRequest,
  LogEntry,
  OperationRequest,
  ReservedIds,
  StatusChange,
  Store,
  SubtaskContexts,
  TaskSnapshot,
  TransitionResult,
} from './store.js';
import type { SubtaskRecord, TaskRecord } from './task.js';

const NO_OUTPUTS: readonly ContextDelta[] = Object.freeze([]);
const REFUSED: TransitionResult = Object.freeze({ accepted: false, changes: Object.freeze([]) });

/**
 * The in-memory {@link Store}: for embedding, tests and benchmarks. State lives in this process
 * only; use the PostgreSQL store for durability. Each task's transitions are in
 * {@link MemoryTask}; this class adds ids, fair claiming across tasks, retry backoff, logs and
 * the audit trail. Hot-path methods answer synchronously.
 */
export class MemoryStore implements Store {
  private readonly tasks = new Map<number, MemoryTask>();
  /** Round-robin of tasks that may have claimable work. */
  private readonly runnable = new RingQueue<MemoryTask>();
  /** READY subtasks waiting for their retry backoff, by due time. */
  private readonly backoff = new MinHeap<{ task: MemoryTask; index: number; runTime: number }>();
  private nextTaskId = 1;
  private nextSubtaskId = 1;

  reserveIds(subtaskCount: number): Promise<ReservedIds> {
    const ids = { taskId: this.nextTaskId++, firstSubtaskId: this.nextSubtaskId };
    this.nextSubtaskId += subtaskCount;
    return Promise.resolve(ids);
  }

  /** Refuses (20003) a task whose id this store has already. */
  insertTask(expanded: ExpandedTask, creator: OperationRequest): Promise<void> {
    const { id } = expanded.task;
    if (this.tasks.has(id)) {
      return Promise.reject(
        new DagopsError(ErrorCode.TASK_STATE_INVALID, `task ${id} is saved already`, {
          target: String(id),
        }),
      );
    }
    const task = new MemoryTask(expanded, creator);
    this.tasks.set(task.record.id, task);
    this.enqueue(task);
    return Promise.resolve();
  }

  /** Saves and claims synchronously: nothing can come between the two. */
  async insertTaskAndClaim(
    expanded: ExpandedTask,
    creator: OperationRequest,
    claim: ClaimRequest,
  ): Promise<Claim[]> {
    await this.insertTask(expanded, creator);
    return this.claimReady(claim);
  }

  getTask(taskId: number): Promise<TaskRecord | undefined> {
    const task = this.tasks.get(taskId);
    return Promise.resolve(task ? { ...task.record } : undefined);
  }

  listSubtasks(taskId: number): Promise<SubtaskRecord[]> {
    const task = this.tasks.get(taskId);
    return Promise.resolve(task ? task.subtasks.map((subtask) => ({ ...subtask })) : []);
  }

  async readTask(taskId: number): Promise<TaskSnapshot | undefined> {
    const task = await this.getTask(taskId);
    return task ? { task, subtasks: await this.listSubtasks(taskId) } : undefined;
  }

  getSubtaskContexts(taskId: number, subtaskId: number): Promise<SubtaskContexts | undefined> {
    const task = this.tasks.get(taskId);
    const index = task ? task.indexOf(subtaskId) : -1;
    if (!task || index < 0) return Promise.resolve(undefined);
    const input = task.inputs[index];
    const output = task.outputs[index];
    return Promise.resolve({
      ...(input === undefined ? {} : { input }),
      ...(output === undefined ? {} : { output }),
    });
  }

  claimReady({ executor, limit, now }: ClaimRequest): Claim[] {
    this.releaseDueRetries(now);
    // Created at the first claim, as a one-element literal: engines mostly claim one subtask at
    // a time, and a push onto an empty array reserves 17 slots.
    let claims: Claim[] | undefined;
    while ((claims?.length ?? 0) < limit && this.runnable.length > 0) {
      const task = this.runnable.shift() as MemoryTask;
      task.queued = false;
      let free = task.freeSlots();
      while ((claims?.length ?? 0) < limit && free > 0 && task.ready.length > 0) {
        const index = task.ready.shift() as number;
        if ((task.subtasks[index] as SubtaskRecord).status !== SubtaskStatus.READY) continue;
        const subtask = task.claim(index, executor, now);
        free--;
        // The input, when no merge is needed to know it (most subtasks): saved by an earlier
        // attempt, a root's, or a single upstream's output.
        let input = task.inputs[index];
        let upstreamOutputs: readonly ContextDelta[] = NO_OUTPUTS;
        if (input === undefined) {
          const { upstreams } = subtask;
          if (upstreams.length === 0) input = EMPTY_DELTA;
          else if (upstreams.length === 1) {
            input = task.outputs[(upstreams[0] as number) - task.firstId] ?? EMPTY_DELTA;
          } else upstreamOutputs = this.upstreamOutputs(task, subtask);
        }
        const claim: Claim = {
          task: task.record,
          subtask,
          attempt: task.attempts[index] as number,
          input,
          upstreamOutputs,
          output: task.outputs[index],
        };
        if (claims) claims.push(claim);
        else claims = [claim];
      }
      this.enqueue(task);
    }
    return claims ?? [];
  }

  completeAttempt(
    fence: AttemptFence,
    result: { readonly input: ContextDelta; readonly output: ContextDelta; readonly now: number },
  ): TransitionResult {
    const task = this.running(fence);
    if (!task) return REFUSED;
    const index = task.indexOf(fence.subtaskId);
    const changes = task.complete(index, result.input, result.output, result.now);
    this.enqueue(task);
    return { accepted: true, changes };
  }

  failAttempt(
    fence: AttemptFence,
    result: {
      readonly input: ContextDelta | undefined;
      readonly error: ErrorInfo;
      readonly retryAt?: number;
      readonly now: number;
    },
  ): TransitionResult {
    const task = this.running(fence);
    if (!task) return REFUSED;
    const index = task.indexOf(fence.subtaskId);
    const { changes, retry } = task.fail(
      index,
      result.input,
      result.error,
      result.retryAt,
      result.now,
    );
    if (retry) {
      const runTime = (task.subtasks[index] as SubtaskRecord).runTime;
      this.backoff.push(result.retryAt as number, { task, index, runTime });
    }
    this.enqueue(task);
    return { accepted: true, changes };
  }

  retryTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate(taskId, (task) => task.retryTask(request));
  }

  retrySubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate(taskId, (task) => task.retrySubtask(task.require(subtaskId), request));
  }

  skipSubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate(taskId, (task) => task.skipSubtask(task.require(subtaskId), request));
  }

  cancelSubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate(taskId, (task) => task.cancelSubtask(task.require(subtaskId), request));
  }

  cancelTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate(taskId, (task) => task.cancelTask(request));
  }

  rollbackTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate(taskId, (task) => task.startRollback(request));
  }

  listAudit(taskId: number): Promise<AuditEntry[]> {
    return Promise.resolve([...(this.tasks.get(taskId)?.audit ?? [])]);
  }

  nextRetryAt(): Promise<number | undefined> {
    return Promise.resolve(this.backoff.peekKey());
  }

  appendLogs(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      const task = this.tasks.get(entry.taskId);
      if (!task || task.indexOf(entry.subtaskId) < 0) continue;
      let lines = task.logs.get(entry.subtaskId);
      if (!lines) task.logs.set(entry.subtaskId, (lines = []));
      lines.push(entry);
    }
  }

  readLogs(taskId: number, subtaskId: number): Promise<LogEntry[]> {
    return Promise.resolve([...(this.tasks.get(taskId)?.logs.get(subtaskId) ?? [])]);
  }

  /** Runs one operation on a known task, then makes its new work claimable. */
  private operate(
    taskId: number,
    operation: (task: MemoryTask) => StatusChange[],
  ): Promise<StatusChange[]> {
    const task = this.tasks.get(taskId);
    if (!task) {
      return Promise.reject(
        new DagopsError(ErrorCode.TASK_NOT_FOUND, `task ${taskId} does not exist`, {
          target: String(taskId),
        }),
      );
    }
    return new Promise((resolve) => {
      const changes = operation(task);
      this.enqueue(task);
      resolve(changes);
    });
  }

  /** The task of the attempt `fence` names, when that attempt is still the subtask's. */
  private running(fence: AttemptFence): MemoryTask | undefined {
    const task = this.tasks.get(fence.taskId);
    if (!task) return undefined;
    const index = task.indexOf(fence.subtaskId);
    const subtask = task.subtasks[index];
    if (
      !subtask ||
      (subtask.status !== SubtaskStatus.RUNNING && subtask.status !== SubtaskStatus.CANCELING) ||
      subtask.runTime !== fence.runTime ||
      subtask.executor !== fence.executor
    ) {
      return undefined;
    }
    return task;
  }

  private upstreamOutputs(task: MemoryTask, subtask: SubtaskRecord): ContextDelta[] {
    return subtask.upstreams.map((id) => task.outputs[id - task.firstId] ?? {});
  }

  private enqueue(task: MemoryTask): void {
    if (!task.queued && task.ready.length > 0 && task.freeSlots() > 0) {
      task.queued = true;
      this.runnable.push(task);
    }
  }

  private releaseDueRetries(now: number): void {
    for (let due = this.backoff.peekKey(); due !== undefined && due <= now;) {
      const { task, index, runTime } = this.backoff.pop() as {
        task: MemoryTask;
        index: number;
        runTime: number;
      };
      const subtask = task.subtasks[index] as SubtaskRecord;
      if (subtask.status === SubtaskStatus.READY && subtask.runTime === runTime) {
        task.ready.push(index);
        this.enqueue(task);
      }
      due = this.backoff.peekKey();
    }
  }
}
