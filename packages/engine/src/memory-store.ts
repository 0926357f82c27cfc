import type { ContextDelta } from './context.js';
import type { ErrorInfo } from './error-info.js';
import type { ExpandedTask } from './expand-template.js';
import { MinHeap } from './internal/min-heap.js';
import { RingQueue } from './internal/ring-queue.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type {
  AttemptFence,
  Claim,
  ClaimRequest,
  LogEntry,
  ReservedIds,
  StatusChange,
  Store,
  SubtaskContexts,
  TransitionResult,
} from './store.js';
import type { SubtaskRecord, TaskRecord } from './task.js';
import { DEFAULT_TASK_CONCURRENCY } from './template.js';
import { assertSubtaskMove, assertTaskMove } from './transitions.js';

/** Everything the store keeps about one task; subtask data is indexed by `id - firstId`. */
interface TaskState {
  readonly record: TaskRecord;
  readonly subtasks: SubtaskRecord[];
  readonly firstId: number;
  readonly concurrency: number;
  /** Upstreams of each subtask not yet SUCCESSFUL. */
  readonly unfinishedUpstreams: Int32Array;
  /** Attempt number within the current retry round, per subtask. */
  readonly attempts: Uint32Array;
  readonly inputs: (ContextDelta | undefined)[];
  readonly outputs: (ContextDelta | undefined)[];
  readonly logs: Map<number, LogEntry[]>;
  /** READY subtasks that may be claimed now. */
  readonly ready: RingQueue<number>;
  /** PENDING subtasks whose upstreams are done, waiting for a concurrency slot. */
  readonly eligible: RingQueue<number>;
  readyOrRunning: number;
  running: number;
  succeeded: number;
  failed: number;
  /** Whether the task is queued in the store's round-robin of tasks with claimable work. */
  queued: boolean;
}

const NO_CHANGES: readonly StatusChange[] = Object.freeze([]);
const REFUSED: TransitionResult = Object.freeze({ accepted: false, changes: NO_CHANGES });

/**
 * The in-memory {@link Store}: for embedding, tests and benchmarks. State lives in this process
 * only; use the PostgreSQL store for durability.
 */
export class MemoryStore implements Store {
  private readonly tasks = new Map<number, TaskState>();
  /** Round-robin of tasks that have READY work and a free slot. */
  private readonly runnable = new RingQueue<TaskState>();
  /** READY subtasks waiting for their retry backoff, by due time. */
  private readonly backoff = new MinHeap<{ state: TaskState; index: number; runTime: number }>();
  private nextTaskId = 1;
  private nextSubtaskId = 1;

  reserveIds(subtaskCount: number): Promise<ReservedIds> {
    const ids = { taskId: this.nextTaskId++, firstSubtaskId: this.nextSubtaskId };
    this.nextSubtaskId += subtaskCount;
    return Promise.resolve(ids);
  }

  insertTask({ task, subtasks }: ExpandedTask): Promise<void> {
    const count = subtasks.length;
    const firstId = subtasks[0]?.id ?? 0;
    const unfinished = new Int32Array(count);
    const state: TaskState = {
      record: task,
      subtasks,
      firstId,
      concurrency: task.template.concurrency ?? DEFAULT_TASK_CONCURRENCY,
      unfinishedUpstreams: unfinished,
      attempts: new Uint32Array(count).fill(1),
      inputs: new Array<ContextDelta | undefined>(count),
      outputs: new Array<ContextDelta | undefined>(count),
      logs: new Map(),
      ready: new RingQueue<number>(),
      eligible: new RingQueue<number>(),
      readyOrRunning: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      queued: false,
    };
    for (let i = 0; i < count; i++) {
      const subtask = subtasks[i] as SubtaskRecord;
      unfinished[i] = subtask.upstreams.length;
      if (subtask.status === SubtaskStatus.READY) {
        state.ready.push(i);
        state.readyOrRunning++;
      }
    }
    this.tasks.set(task.id, state);
    this.enqueue(state);
    return Promise.resolve();
  }

  getTask(taskId: number): Promise<TaskRecord | undefined> {
    const state = this.tasks.get(taskId);
    return Promise.resolve(state ? { ...state.record } : undefined);
  }

  listSubtasks(taskId: number): Promise<SubtaskRecord[]> {
    const state = this.tasks.get(taskId);
    return Promise.resolve(state ? state.subtasks.map((subtask) => ({ ...subtask })) : []);
  }

  getSubtaskContexts(taskId: number, subtaskId: number): Promise<SubtaskContexts | undefined> {
    const state = this.tasks.get(taskId);
    const index = state ? this.indexOf(state, subtaskId) : -1;
    if (!state || index < 0) return Promise.resolve(undefined);
    const input = state.inputs[index];
    const output = state.outputs[index];
    return Promise.resolve({
      ...(input === undefined ? {} : { input }),
      ...(output === undefined ? {} : { output }),
    });
  }

  claimReady({ executor, limit, now }: ClaimRequest): Claim[] {
    this.releaseDueRetries(now);
    const claims: Claim[] = [];
    while (claims.length < limit && this.runnable.length > 0) {
      const state = this.runnable.shift() as TaskState;
      state.queued = false;
      if (state.record.status !== TaskStatus.RUNNING || state.failed > 0) continue;
      while (claims.length < limit && state.running < state.concurrency && state.ready.length > 0) {
        const index = state.ready.shift() as number;
        const subtask = state.subtasks[index] as SubtaskRecord;
        if (subtask.status !== SubtaskStatus.READY) continue;
        this.move(state, subtask, SubtaskStatus.RUNNING, subtask.operation, undefined);
        subtask.startTime = now;
        if (subtask.endTime !== undefined) subtask.endTime = undefined;
        subtask.executor = executor;
        state.running++;
        const input = state.inputs[index];
        claims.push({
          task: state.record,
          subtask,
          attempt: state.attempts[index] as number,
          input,
          upstreamOutputs: input === undefined ? this.upstreamOutputs(state, subtask) : [],
        });
      }
      this.enqueue(state);
    }
    return claims;
  }

  completeAttempt(
    fence: AttemptFence,
    result: { readonly input: ContextDelta; readonly output: ContextDelta; readonly now: number },
  ): TransitionResult {
    const found = this.running(fence);
    if (!found) return REFUSED;
    const { state, index, subtask } = found;
    const changes: StatusChange[] = [];
    state.inputs[index] = result.input;
    state.outputs[index] = result.output;
    subtask.endTime = result.now;
    this.move(state, subtask, SubtaskStatus.SUCCESSFUL, subtask.operation, changes);
    state.running--;
    state.readyOrRunning--;
    state.succeeded++;
    const unfinished = state.unfinishedUpstreams;
    for (const downId of subtask.downstreams) {
      const down = downId - state.firstId;
      if (--(unfinished[down] as number) === 0) {
        unfinished[down] = 0;
        state.eligible.push(down);
      }
    }
    this.afterSlotFreed(state, result.now, changes);
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
    const found = this.running(fence);
    if (!found) return REFUSED;
    const { state, index, subtask } = found;
    const changes: StatusChange[] = [];
    if (result.input !== undefined) state.inputs[index] = result.input;
    subtask.endTime = result.now;
    state.running--;
    if (result.retryAt !== undefined) {
      subtask.runTime++;
      this.move(state, subtask, SubtaskStatus.READY, Operation.RETRY, changes);
      state.attempts[index] = (state.attempts[index] as number) + 1;
      this.backoff.push(result.retryAt, { state, index, runTime: subtask.runTime });
      this.enqueue(state);
      // A sibling already failed for good, so the retry will never start: if nothing else of
      // the task runs, the task is FAILED now.
      if (state.failed > 0) this.afterSlotFreed(state, result.now, changes);
    } else {
      subtask.error = result.error;
      this.move(state, subtask, SubtaskStatus.FAILED, subtask.operation, changes);
      state.readyOrRunning--;
      state.failed++;
      this.afterSlotFreed(state, result.now, changes);
    }
    return { accepted: true, changes };
  }

  nextRetryAt(): Promise<number | undefined> {
    return Promise.resolve(this.backoff.peekKey());
  }

  appendLogs(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      const state = this.tasks.get(entry.taskId);
      if (!state || this.indexOf(state, entry.subtaskId) < 0) continue;
      let lines = state.logs.get(entry.subtaskId);
      if (!lines) state.logs.set(entry.subtaskId, (lines = []));
      lines.push(entry);
    }
  }

  readLogs(taskId: number, subtaskId: number): Promise<LogEntry[]> {
    return Promise.resolve([...(this.tasks.get(taskId)?.logs.get(subtaskId) ?? [])]);
  }

  private indexOf(state: TaskState, subtaskId: number): number {
    const index = subtaskId - state.firstId;
    return Number.isInteger(index) && index >= 0 && index < state.subtasks.length ? index : -1;
  }

  private running(fence: AttemptFence) {
    const state = this.tasks.get(fence.taskId);
    if (!state) return undefined;
    const index = this.indexOf(state, fence.subtaskId);
    const subtask = state.subtasks[index];
    if (
      !subtask ||
      (subtask.status !== SubtaskStatus.RUNNING && subtask.status !== SubtaskStatus.CANCELING) ||
      subtask.runTime !== fence.runTime ||
      subtask.executor !== fence.executor
    ) {
      return undefined;
    }
    return { state, index, subtask };
  }

  private upstreamOutputs(state: TaskState, subtask: SubtaskRecord): ContextDelta[] {
    return subtask.upstreams.map((id) => state.outputs[id - state.firstId] ?? {});
  }

  /** Applies one subtask status move through the transition table and records it. */
  private move(
    state: TaskState,
    subtask: SubtaskRecord,
    to: SubtaskStatus,
    operation: Operation,
    changes: StatusChange[] | undefined,
  ): void {
    const from = subtask.status;
    assertSubtaskMove(subtask.id, from, to);
    subtask.status = to;
    subtask.operation = operation;
    if (to !== SubtaskStatus.FAILED && subtask.error !== undefined) subtask.error = undefined;
    changes?.push({
      kind: 'subtask',
      taskId: state.record.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      from,
      to,
      operation,
    });
  }

  private moveTask(state: TaskState, to: TaskStatus, now: number, changes: StatusChange[]): void {
    const task = state.record;
    assertTaskMove(task.id, task.status, to);
    changes.push({
      kind: 'task',
      taskId: task.id,
      from: task.status,
      to,
      operation: task.operation,
    });
    task.status = to;
    task.endTime = now;
  }

  /** After a subtask left RUNNING: finish the task, or promote what waits for a slot. */
  private afterSlotFreed(state: TaskState, now: number, changes: StatusChange[]): void {
    if (state.failed > 0) {
      if (state.running === 0 && state.record.status === TaskStatus.RUNNING) {
        this.moveTask(state, TaskStatus.FAILED, now, changes);
      }
      return;
    }
    if (state.succeeded === state.subtasks.length) {
      this.moveTask(state, TaskStatus.SUCCESSFUL, now, changes);
      return;
    }
    while (state.readyOrRunning < state.concurrency && state.eligible.length > 0) {
      const index = state.eligible.shift() as number;
      const subtask = state.subtasks[index] as SubtaskRecord;
      this.move(state, subtask, SubtaskStatus.READY, subtask.operation, changes);
      state.readyOrRunning++;
      state.ready.push(index);
    }
    this.enqueue(state);
  }

  private enqueue(state: TaskState): void {
    if (!state.queued && state.ready.length > 0 && state.running < state.concurrency) {
      state.queued = true;
      this.runnable.push(state);
    }
  }

  private releaseDueRetries(now: number): void {
    for (
      let due = this.backoff.peekKey();
      due !== undefined && due <= now;
      due = this.backoff.peekKey()
    ) {
      const { state, index, runTime } = this.backoff.pop() as {
        state: TaskState;
        index: number;
        runTime: number;
      };
      const subtask = state.subtasks[index] as SubtaskRecord;
      if (subtask.status !== SubtaskStatus.READY || subtask.runTime !== runTime) continue;
      state.ready.push(index);
      this.enqueue(state);
    }
  }
}
