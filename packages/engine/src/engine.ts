import PQueue from 'p-queue';
import { EMPTY_DELTA, mergeUpstreamOutputs, type ContextDelta } from './context.js';
import {
  resolveEngineOptions,
  type EngineOptions,
  type ResolvedEngineOptions,
} from './engine-options.js';
import { toErrorInfo, type ErrorInfo } from './error-info.js';
import { DagopsError, ErrorCode, TaskArgumentsError } from './errors.js';
import type { EngineEvents, SubtaskRef } from './events.js';
import { countSubtasks, expandTemplate } from './expand-template.js';
import type { Handler } from './handler.js';
import { Attempt, type AttemptHost, type AttemptOutcome } from './internal/attempt.js';
import { SafeEmitter } from './internal/safe-emitter.js';
import { canRetry, resolveRetryPolicy, retryDelayMs } from './retry-policy.js';
import { Operation, SubtaskStatus, TaskStatus, TaskType } from './status.js';
import type {
  AttemptFence,
  AuditEntry,
  Claim,
  LogEntry,
  OperationRequest,
  StatusChange,
  TransitionResult,
} from './store.js';
import type { TaskJson } from './task.js';
import { toTaskJson } from './task-json.js';
import type { Template, TemplateNode } from './template.js';
import { validateTemplate } from './validate-template.js';

/** Who submits a task, and how. */
export interface SubmitMeta {
  /** The caller's name, recorded as the task's `creator`. */
  readonly creator: string;
  /** @default 'MANUAL' */
  readonly type?: TaskType;
  /** @default -1 */
  readonly taskDefinitionId?: number;
}

/**
 * Runs tasks: validates and expands templates, then runs READY subtasks in dependency order
 * with per-node timeouts and retries, at most `concurrency` at once on this engine (p-queue)
 * and at most the template's `concurrency` per task. All state is in the {@link Store}.
 *
 * @example
 * const engine = new Engine({ handlers: new HandlerRegistry().register('x.Hello', { execute() {} }) });
 * const task = await engine.submit(template, { stringMap: { host_id: '2' } }, { creator: 'admin' });
 * const done = await engine.waitForTask(task.id);
 */
export class Engine extends SafeEmitter<EngineEvents> {
  /** This engine's identity, recorded as `executor` on what it runs. */
  readonly executor: string;
  private readonly options: ResolvedEngineOptions;
  private readonly queue: PQueue;
  private readonly nodeIndex = new WeakMap<Template, Map<string, TemplateNode>>();
  private readonly waiters = new Map<number, (() => void)[]>();
  /** Attempts executing on this engine now. */
  private inFlight = 0;
  /** Lanes alive: p-queue jobs that each run claimed subtasks one after another. */
  private lanes = 0;
  private claiming = false;
  private claimAgain = false;
  private closed = false;
  private wakeAt: number | undefined;
  private wakeTimer: unknown;
  /** A retry fell due while every slot was busy: the next attempt to end looks for retries. */
  private retryWaitsForSlot = false;
  private readonly attemptHost: AttemptHost;
  /**
   * Writes an asynchronous store has not answered yet, by subtask id. What they make claimable
   * (a retry, a downstream) may be claimed by another lane before their events are emitted;
   * such a claim waits for them, so that every subtask's events stay in order.
   */
  private readonly unanswered = new Map<number, Promise<unknown>>();
  /** Attempts running in this process, by subtask id: what a cancel reaches. */
  private readonly live = new Map<number, Attempt>();

  constructor(options: EngineOptions = {}) {
    super();
    this.options = resolveEngineOptions(options);
    this.executor = this.options.executor;
    this.queue = new PQueue({ concurrency: this.options.concurrency });
    this.attemptHost = {
      clock: this.options.clock,
      attemptSettledLate: (attempt, outcome) => this.reportLate(attempt, outcome),
      attemptLogged: (attempt, message) => {
        const write = () => this.writeLog(attempt, message);
        if (attempt.logWrites) attempt.logWrites = attempt.logWrites.then(write);
        else {
          const pending = write();
          if (pending instanceof Promise) attempt.logWrites = pending;
        }
      },
    };
    // Work already in the store (a restart, another engine's task) is picked up at once, and
    // retries it has scheduled wake this engine when due.
    queueMicrotask(() => this.lookForRetries());
  }

  /** The store this engine works on. */
  get store() {
    return this.options.store;
  }

  /** The handler registry; register custom nodes here. */
  get handlers() {
    return this.options.handlers;
  }

  /** Subtasks running on this engine right now. */
  get running(): number {
    return this.inFlight;
  }

  /**
   * Validates `template`, expands it with `args`, saves the task and starts running it.
   * Returns the task as at submission, in OCP's wire shape.
   *
   * @throws TemplateValidationError, DagCycleError, TaskArgumentsError on bad input (nothing saved).
   */
  async submit(template: unknown, args: unknown, meta: SubmitMeta): Promise<TaskJson> {
    this.checkOpen();
    checkMeta(meta);
    const { store, handlers, clock } = this.options;
    const validated = validateTemplate(template, { hasHandler: (name) => handlers.has(name) });
    const count = countSubtasks(validated, args);
    const ids = await store.reserveIds(count);
    const expanded = expandTemplate(validated, args, {
      ids: { nextTaskId: () => ids.taskId, reserveSubtaskIds: () => ids.firstSubtaskId },
      creator: meta.creator,
      executor: this.executor,
      now: clock.now(),
      ...(meta.type === undefined ? {} : { type: meta.type }),
      ...(meta.taskDefinitionId === undefined ? {} : { taskDefinitionId: meta.taskDefinitionId }),
    });
    // Render before saving: once saved, the records belong to the store and may change.
    const json = toTaskJson(expanded.task, expanded.subtasks, this.jsonOptions());
    await store.insertTask(expanded, { actor: meta.creator, now: expanded.task.startTime });
    const { task } = expanded;
    this.emit('task.created', { taskId: task.id, name: task.name, subtaskCount: count });
    if (this.listenerCount('subtask.ready') > 0) {
      for (const subtask of json.subtasks) {
        if (subtask.status !== SubtaskStatus.READY) continue;
        this.emit('subtask.ready', { taskId: task.id, subtaskId: subtask.id, runTime: 1 });
      }
    }
    this.pump();
    return json;
  }

  /** A task in OCP's wire shape. @throws DagopsError 20000 when unknown. */
  async getTask(taskId: number): Promise<TaskJson> {
    const { store } = this.options;
    const task = await store.getTask(taskId);
    if (!task) throw notFound(`task ${taskId}`);
    return toTaskJson(task, await store.listSubtasks(taskId), this.jsonOptions());
  }

  /** A subtask's log lines, oldest first. @throws DagopsError 20000 when the pair is unknown. */
  async getSubtaskLogs(taskId: number, subtaskId: number): Promise<LogEntry[]> {
    const { store } = this.options;
    if (!(await store.getSubtaskContexts(taskId, subtaskId))) {
      throw notFound(`subtask ${subtaskId} of task ${taskId}`);
    }
    return store.readLogs(taskId, subtaskId);
  }

  /** Resolves with the task once it is no longer RUNNING. */
  async waitForTask(taskId: number): Promise<TaskJson> {
    const finished = new Promise<void>((resolve) => {
      const list = this.waiters.get(taskId) ?? [];
      list.push(resolve);
      this.waiters.set(taskId, list);
    });
    const task = await this.options.store.getTask(taskId);
    if (!task) {
      this.waiters.delete(taskId);
      throw notFound(`task ${taskId}`);
    }
    if (task.status === TaskStatus.RUNNING) await finished;
    else this.waiters.delete(taskId);
    return this.getTask(taskId);
  }

  /** Retries a FAILED task: every FAILED subtask runs again (not after a rollback began). */
  retryTask(taskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, undefined, Operation.RETRY, actor, (request) =>
      this.options.store.retryTask(taskId, request),
    );
  }

  /** Retries one FAILED subtask; the task resumes once nothing else is FAILED. */
  retrySubtask(taskId: number, subtaskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, subtaskId, Operation.RETRY, actor, (request) =>
      this.options.store.retrySubtask(taskId, subtaskId, request),
    );
  }

  /**
   * Skips a FAILED subtask: SUCCESSFUL with its input as output (operation SKIP); during a
   * rollback, a subtask whose rollback failed goes back to PENDING (ROLLBACK_SKIP).
   */
  skipSubtask(taskId: number, subtaskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, subtaskId, Operation.SKIP, actor, (request) =>
      this.options.store.skipSubtask(taskId, subtaskId, request),
    );
  }

  /** Cancels a RUNNING subtask: CANCELING, signal aborted, handler `cancel` called, FAILED. */
  cancelSubtask(taskId: number, subtaskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, subtaskId, Operation.CANCEL, actor, (request) =>
      this.options.store.cancelSubtask(taskId, subtaskId, request),
    );
  }

  /** Cancels a RUNNING task: its running subtasks are canceled, nothing new starts, it ends FAILED. */
  cancelTask(taskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, undefined, Operation.CANCEL, actor, (request) =>
      this.options.store.cancelTask(taskId, request),
    );
  }

  /**
   * Rolls back a FAILED task (SPEC §5): every subtask that ran runs its handler's `rollback`,
   * downstreams first. Refused with 20004 when rollback is prohibited.
   */
  rollbackTask(taskId: number, actor: string): Promise<TaskJson> {
    return this.operate(taskId, undefined, Operation.ROLLBACK, actor, (request) =>
      this.options.store.rollbackTask(taskId, request),
    );
  }

  /** Who did what to a task and when, oldest first (the submission is the first entry). */
  async getAuditTrail(taskId: number): Promise<AuditEntry[]> {
    const { store } = this.options;
    if (!(await store.getTask(taskId))) throw notFound(`task ${taskId}`);
    return store.listAudit(taskId);
  }

  private async operate(
    taskId: number,
    subtaskId: number | undefined,
    operation: Operation,
    actor: string,
    apply: (request: OperationRequest) => Promise<StatusChange[]>,
  ): Promise<TaskJson> {
    if (typeof actor !== 'string' || actor.length === 0) {
      throw new TaskArgumentsError('(operation)', [
        { path: 'actor', message: 'must be a non-empty string', value: actor },
      ]);
    }
    const changes = await apply({ actor, now: this.options.clock.now() });
    this.emit('task.operation', {
      taskId,
      ...(subtaskId === undefined ? {} : { subtaskId }),
      operation,
      actor,
    });
    this.emitChanges(changes);
    this.pump();
    return this.getTask(taskId);
  }

  /** Saga style: a task whose template asks for it is rolled back when it fails. */
  private async rollBackIfAsked(taskId: number, operation: Operation): Promise<void> {
    if (operation === Operation.CANCEL) return;
    const { store, logger } = this.options;
    try {
      const task = await store.getTask(taskId);
      if (task?.template.autoRollback !== true) return;
      await this.rollbackTask(taskId, AUTO_ROLLBACK_ACTOR);
    } catch (error) {
      logger.warn('automatic rollback did not start', { taskId, error: toErrorInfo(error) });
    }
  }

  /**
   * Stops claiming work and resolves once every running attempt has ended (each is bounded by
   * its timeout).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.wakeTimer !== undefined) this.options.clock.clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    await this.queue.onIdle();
  }

  /**
   * Starts a lane for every free slot that READY work can fill. A lane is one p-queue job (the
   * queue's concurrency is the engine's limit) that runs claimed subtasks one after another
   * until none is left: p-queue bounds what runs, and its cost (~3 µs an item, PERF-NOTES) is
   * paid per lane, not per subtask.
   */
  protected pump(): void {
    if (this.closed) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    const free = this.options.concurrency - this.lanes;
    if (free <= 0) return;
    const { store, clock } = this.options;
    let claimed: Claim[] | Promise<Claim[]>;
    try {
      claimed = store.claimReady({ executor: this.executor, limit: free, now: clock.now() });
    } catch (error) {
      this.claimFailed(error);
      return;
    }
    if (!(claimed instanceof Promise)) {
      this.startLanes(claimed, free);
      return;
    }
    this.claiming = true;
    claimed.then(
      (claims) => {
        this.claiming = false;
        this.startLanes(claims, free);
      },
      (error: unknown) => {
        this.claiming = false;
        this.claimFailed(error);
      },
    );
  }

  private startLanes(claims: readonly Claim[], free: number): void {
    for (const claim of claims) {
      this.lanes++;
      void this.queue.add(() => this.lane(claim));
    }
    const again = this.claimAgain;
    this.claimAgain = false;
    if (again || (claims.length === free && claims.length > 0)) this.pump();
  }

  /** Runs `first`, then whatever this lane can claim next, one at a time. */
  private async lane(first: Claim): Promise<void> {
    let claim: Claim | undefined = first;
    try {
      while (claim) {
        this.inFlight++;
        await this.runAttempt(claim);
        this.inFlight--;
        if (this.retryWaitsForSlot) {
          this.retryWaitsForSlot = false;
          this.lookForRetries();
        }
        const next = this.claimNext();
        claim = next instanceof Promise ? await next : next;
        // Work this lane does not take (a completion may unblock many) goes to other lanes.
        if (this.lanes < this.options.concurrency) this.pump();
      }
    } finally {
      this.lanes--;
    }
  }

  private claimNext(): Claim | undefined | Promise<Claim | undefined> {
    if (this.closed) return undefined;
    const { store, clock } = this.options;
    try {
      const claimed = store.claimReady({ executor: this.executor, limit: 1, now: clock.now() });
      if (!(claimed instanceof Promise)) return claimed[0];
      return claimed.then(
        (claims) => claims[0],
        (error: unknown) => {
          this.claimFailed(error);
          return undefined;
        },
      );
    } catch (error) {
      this.claimFailed(error);
      return undefined;
    }
  }

  private claimFailed(error: unknown): void {
    const { logger, clock } = this.options;
    logger.error('claiming work failed; retrying in 1 s', { error: toErrorInfo(error) });
    this.wakeUpAt(clock.now() + 1000);
  }

  private async runAttempt(claim: Claim): Promise<void> {
    const { task, subtask } = claim;
    try {
      if (this.unanswered.size > 0) await this.afterWritesOf(subtask);
      if (this.listenerCount('subtask.started') > 0) {
        this.emit('subtask.started', {
          taskId: task.id,
          subtaskId: subtask.id,
          runTime: subtask.runTime,
          attempt: claim.attempt,
          executor: this.executor,
        });
      }
      const handler = this.options.handlers.get(subtask.className);
      if (subtask.operation === Operation.ROLLBACK) {
        await this.runRollback(claim, handler);
        return;
      }
      let input = claim.input;
      if (input === undefined) {
        const merged = mergeUpstreamOutputs(task.context, claim.upstreamOutputs);
        if (!merged.ok) {
          const { key, values } = merged.conflict;
          const shown = values.map((value) => JSON.stringify(value)).join(' vs ');
          const error = new DagopsError(
            ErrorCode.TASK_CONTEXT_ERROR,
            `upstream outputs disagree on ${JSON.stringify(key)}: ${shown}`,
            { target: key, nonRetryable: true },
          );
          await this.persistFailure(claim, undefined, toErrorInfo(error), handler, undefined);
          return;
        }
        input = merged.delta;
      }
      if (!handler) {
        const error = new DagopsError(
          ErrorCode.HANDLER_NOT_FOUND,
          `no handler for ${subtask.className}`,
          { target: subtask.className, nonRetryable: true },
        );
        await this.persistFailure(claim, input, toErrorInfo(error), handler, undefined);
        return;
      }
      const attempt = new Attempt(this.attemptHost, claim, input, handler);
      this.live.set(subtask.id, attempt);
      const outcome = await attempt.run();
      this.live.delete(subtask.id);
      if (outcome.ok) {
        // Inline and without needless awaits: this is the path every subtask takes.
        if (attempt.logWrites) await attempt.logWrites;
        const fence = this.fenceOf(claim);
        const pending = this.options.store.completeAttempt(fence, {
          input,
          output: attempt.output(),
          now: this.options.clock.now(),
        });
        this.succeeded(
          fence,
          pending instanceof Promise ? await this.writing(fence, pending) : pending,
        );
      } else {
        if (attempt.cancelHook) await attempt.cancelHook;
        await this.persistFailure(claim, input, outcome.error, handler, attempt);
      }
    } catch (thrown) {
      this.options.logger.error('attempt bookkeeping failed', {
        taskId: task.id,
        subtaskId: subtask.id,
        error: toErrorInfo(thrown),
      });
    }
  }

  private succeeded(ref: SubtaskRef, result: TransitionResult): void {
    if (!result.accepted) {
      this.reportLate(ref, { ok: true });
      return;
    }
    if (this.listenerCount('subtask.succeeded') > 0) {
      const { taskId, subtaskId, runTime } = ref;
      this.emit('subtask.succeeded', { taskId, subtaskId, runTime });
    }
    this.emitChanges(result.changes);
  }

  private async persistFailure(
    claim: Claim,
    input: ContextDelta | undefined,
    error: ErrorInfo,
    handler: Handler | undefined,
    attempt: Attempt | undefined,
  ): Promise<void> {
    const { task, subtask } = claim;
    const { clock, store } = this.options;
    // Names the attempt from here on: the store moves the claimed record on (a retry bumps its
    // runTime), so `subtask.runTime` must not be read after the write.
    const fence = this.fenceOf(claim);
    const node = this.nodeOf(task.template, subtask.nodeKey);
    const policy = resolveRetryPolicy(node?.retry, handler?.retry);
    const canceled = error.code === ErrorCode.ATTEMPT_CANCELED;
    const retry = !canceled && canRetry(policy, claim.attempt, error);
    const delay = retry ? retryDelayMs(policy, claim.attempt) : 0;
    const code = error.code === undefined ? '' : ` [${error.code}]`;
    const line = `attempt ${claim.attempt} failed${code}: ${error.message}${retry ? `; retry in ${delay} ms` : ''}`;
    if (attempt) {
      attempt.log(line);
      await attempt.logWrites;
    } else {
      await this.writeLog(fence, line);
    }
    const now = clock.now();
    const pending = store.failAttempt(fence, {
      input,
      error,
      ...(retry ? { retryAt: now + delay } : {}),
      now,
    });
    const result = pending instanceof Promise ? await this.writing(fence, pending) : pending;
    const ref = { taskId: task.id, subtaskId: subtask.id, runTime: fence.runTime };
    if (!result.accepted) {
      this.reportLate(ref, { ok: false, error });
    } else if (retry) {
      this.emit('subtask.attemptFailed', {
        ...ref,
        attempt: claim.attempt,
        error,
        retryDelayMs: delay,
      });
      this.wakeUpAt(now + delay);
    } else if (canceled) {
      this.emit('subtask.canceled', ref);
    } else {
      this.emit('subtask.failed', { ...ref, error });
    }
    this.emitChanges(result.changes);
  }

  /**
   * Runs a subtask's rollback: its handler's `rollback` on what the subtask produced (a handler
   * without one has nothing to undo). Success returns the subtask to PENDING; a failure leaves
   * it FAILED (operation ROLLBACK) and is not retried: roll back again, or skip it.
   */
  private async runRollback(claim: Claim, handler: Handler | undefined): Promise<void> {
    const fence = this.fenceOf(claim);
    const ref = { taskId: fence.taskId, subtaskId: fence.subtaskId, runTime: fence.runTime };
    const { store, clock } = this.options;
    this.emit('subtask.rollbackStarted', ref);
    const input = claim.output ?? claim.input ?? EMPTY_DELTA;
    let outcome: AttemptOutcome = { ok: true };
    let attempt: Attempt | undefined;
    if (handler?.rollback) {
      attempt = new Attempt(this.attemptHost, claim, input, handler);
      this.live.set(fence.subtaskId, attempt);
      outcome = await attempt.run('rollback');
      this.live.delete(fence.subtaskId);
      if (attempt.cancelHook) await attempt.cancelHook;
      if (attempt.logWrites) await attempt.logWrites;
    }
    const now = clock.now();
    let result: TransitionResult;
    if (outcome.ok) {
      result = await store.completeAttempt(fence, { input, output: input, now });
      if (result.accepted) this.emit('subtask.rollbackSucceeded', ref);
    } else {
      const { error } = outcome;
      const line = `rollback failed${error.code === undefined ? '' : ` [${error.code}]`}: ${error.message}`;
      if (attempt) {
        attempt.log(line);
        await attempt.logWrites;
      } else {
        await this.writeLog(ref, line);
      }
      result = await store.failAttempt(fence, { input: undefined, error, now });
      if (result.accepted) this.emit('subtask.rollbackFailed', { ...ref, error });
    }
    if (!result.accepted) this.reportLate(ref, outcome);
    this.emitChanges(result.changes);
  }

  /** Awaits a store write, registered in {@link unanswered} until the caller emitted its events. */
  private async writing<T>(fence: AttemptFence, pending: Promise<T>): Promise<T> {
    const settled = pending.then(
      () => undefined,
      () => undefined,
    );
    this.unanswered.set(fence.subtaskId, settled);
    try {
      return await pending;
    } finally {
      // The caller emits right after this resumes; claims waiting on `settled` resume later.
      if (this.unanswered.get(fence.subtaskId) === settled) this.unanswered.delete(fence.subtaskId);
    }
  }

  /** Waits for unanswered writes about a claimed subtask or its upstreams (async stores only). */
  private async afterWritesOf(subtask: Claim['subtask']): Promise<void> {
    const waits: Promise<unknown>[] = [];
    const own = this.unanswered.get(subtask.id);
    if (own) waits.push(own);
    for (const id of subtask.upstreams) {
      const upstream = this.unanswered.get(id);
      if (upstream) waits.push(upstream);
    }
    if (waits.length > 0) {
      await Promise.all(waits);
      // Let the writers' continuations (which emit) run first.
      await Promise.resolve();
    }
  }

  private fenceOf({ task, subtask }: Claim): AttemptFence {
    return {
      taskId: task.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      executor: this.executor,
    };
  }

  private writeLog(
    { taskId, subtaskId, runTime }: SubtaskRef,
    message: string,
  ): Promise<void> | void {
    const entry: LogEntry = {
      taskId,
      subtaskId,
      runTime,
      time: this.options.clock.now(),
      message,
    };
    this.emit('subtask.log', entry);
    return this.options.store.appendLogs([entry]);
  }

  private reportLate({ taskId, subtaskId, runTime }: SubtaskRef, late: AttemptOutcome): void {
    this.emit('subtask.lateResult', {
      taskId,
      subtaskId,
      runTime,
      outcome: late.ok ? 'succeeded' : 'failed',
      ...(late.ok ? {} : { error: late.error }),
    });
  }

  private nodeOf(template: Template, key: string): TemplateNode | undefined {
    let index = this.nodeIndex.get(template);
    if (!index) {
      index = new Map(template.nodes.map((node) => [node.key, node]));
      this.nodeIndex.set(template, index);
    }
    return index.get(key);
  }

  private emitChanges(changes: readonly StatusChange[]): void {
    for (const change of changes) {
      if (change.kind === 'task') {
        const { taskId, from, to, operation } = change;
        this.emit('task.statusChanged', { taskId, from, to, operation });
        if (to !== TaskStatus.RUNNING) {
          this.emit('task.finished', { taskId, status: to, operation });
          const waiting = this.waiters.get(taskId);
          this.waiters.delete(taskId);
          for (const resolve of waiting ?? []) resolve();
          if (to === TaskStatus.FAILED && operation !== Operation.ROLLBACK) {
            void this.rollBackIfAsked(taskId, operation);
          }
        }
      } else if (change.to === SubtaskStatus.READY && change.from !== SubtaskStatus.RUNNING) {
        const { taskId, subtaskId, runTime } = change;
        this.emit('subtask.ready', { taskId, subtaskId, runTime });
      } else if (
        change.operation === Operation.SKIP ||
        change.operation === Operation.ROLLBACK_SKIP
      ) {
        const { taskId, subtaskId, runTime, operation } = change;
        this.emit('subtask.skipped', { taskId, subtaskId, runTime, operation });
      } else if (change.to === SubtaskStatus.CANCELING) {
        this.live.get(change.subtaskId)?.cancel();
      }
    }
  }

  /** Makes sure the engine looks for work again at `at` (a retry falling due). */
  private wakeUpAt(at: number): void {
    if (this.closed || (this.wakeAt !== undefined && this.wakeAt <= at)) return;
    const { clock } = this.options;
    if (this.wakeTimer !== undefined) clock.clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = clock.setTimeout(
      () => {
        this.wakeAt = undefined;
        this.wakeTimer = undefined;
        this.lookForRetries();
      },
      Math.max(0, at - clock.now()),
    );
  }

  /** Claims what is due, then makes sure the engine wakes up for the next retry. */
  private lookForRetries(): void {
    this.pump();
    void this.options.store.nextRetryAt().then((next) => {
      if (next === undefined) return;
      // A retry already due waits for a free slot; re-arming for it now would spin on
      // zero-delay timers until then, so the attempt that frees a slot looks again.
      if (next <= this.options.clock.now() && this.inFlight >= this.options.concurrency) {
        this.retryWaitsForSlot = true;
        return;
      }
      this.wakeUpAt(next);
    });
  }

  protected override onListenerError(event: string, error: unknown): void {
    this.options.logger.error('an event listener threw; the engine goes on', {
      event,
      error: toErrorInfo(error),
    });
  }

  private jsonOptions() {
    const offset = this.options.utcOffsetMinutes;
    return offset === undefined ? {} : { utcOffsetMinutes: offset };
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new DagopsError(ErrorCode.TASK_STATE_INVALID, 'the engine is closed');
    }
  }
}

/** The actor the audit trail names for an automatic (saga) rollback. */
export const AUTO_ROLLBACK_ACTOR = 'dagops:auto-rollback';

function notFound(what: string): DagopsError {
  return new DagopsError(ErrorCode.TASK_NOT_FOUND, `${what} does not exist`, { target: what });
}

function checkMeta(meta: SubmitMeta): void {
  const issues = [];
  const creator = (meta as { creator?: unknown } | undefined)?.creator;
  if (typeof creator !== 'string' || creator.length === 0) {
    issues.push({ path: 'meta.creator', message: 'must be a non-empty string', value: creator });
  }
  const type = (meta as { type?: unknown } | undefined)?.type;
  if (type !== undefined && !Object.values(TaskType).includes(type as TaskType)) {
    issues.push({
      path: 'meta.type',
      message: `must be one of ${Object.values(TaskType).join(', ')}`,
      value: type,
    });
  }
  const definitionId = (meta as { taskDefinitionId?: unknown } | undefined)?.taskDefinitionId;
  if (definitionId !== undefined && !Number.isSafeInteger(definitionId)) {
    issues.push({
      path: 'meta.taskDefinitionId',
      message: 'must be an integer',
      value: definitionId,
    });
  }
  if (issues.length > 0) throw new TaskArgumentsError('(submit)', issues);
}
