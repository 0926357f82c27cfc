import PQueue from 'p-queue';
import { mergeUpstreamOutputs, type ContextDelta } from './context.js';
import {
  resolveEngineOptions,
  type EngineOptions,
  type ResolvedEngineOptions,
} from './engine-options.js';
import { toErrorInfo, type ErrorInfo } from './error-info.js';
import { DagopsError, ErrorCode, TaskArgumentsError } from './errors.js';
import type { EngineEvents } from './events.js';
import { countSubtasks, expandTemplate } from './expand-template.js';
import type { Handler } from './handler.js';
import { AttemptContext } from './internal/attempt-context.js';
import { runHandler, type LateOutcome } from './internal/run-handler.js';
import { SafeEmitter } from './internal/safe-emitter.js';
import { canRetry, resolveRetryPolicy, retryDelayMs } from './retry-policy.js';
import { SubtaskStatus, TaskStatus, TaskType } from './status.js';
import type { AttemptFence, Claim, LogEntry, StatusChange } from './store.js';
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
  private inFlight = 0;
  private claiming = false;
  private claimAgain = false;
  private closed = false;
  private wakeAt: number | undefined;
  private wakeTimer: unknown;

  constructor(options: EngineOptions = {}) {
    super();
    this.options = resolveEngineOptions(options);
    this.executor = this.options.executor;
    this.queue = new PQueue({ concurrency: this.options.concurrency });
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
    await store.insertTask(expanded);
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

  /** Claims as much READY work as there are free slots, and runs it. */
  protected pump(): void {
    if (this.closed) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    const free = this.options.concurrency - this.inFlight;
    if (free <= 0) return;
    this.claiming = true;
    const { store, clock } = this.options;
    store.claimReady({ executor: this.executor, limit: free, now: clock.now() }).then(
      (claims) => {
        this.claiming = false;
        for (const claim of claims) {
          this.inFlight++;
          void this.queue.add(() => this.runAttempt(claim));
        }
        const again = this.claimAgain;
        this.claimAgain = false;
        if (again || (claims.length === free && claims.length > 0)) this.pump();
      },
      (error: unknown) => {
        this.claiming = false;
        this.options.logger.error('claiming work failed; retrying in 1 s', {
          error: toErrorInfo(error),
        });
        this.wakeUpAt(clock.now() + 1000);
      },
    );
  }

  private async runAttempt(claim: Claim): Promise<void> {
    const { task, subtask } = claim;
    const { clock, store, handlers } = this.options;
    const fence: AttemptFence = {
      taskId: task.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      executor: this.executor,
    };
    const ref = { taskId: task.id, subtaskId: subtask.id, runTime: subtask.runTime };
    // Log lines are written in order; the chain exists only once a handler logs.
    let logWrites: Promise<void> | undefined;
    const log = (message: string) => {
      const entry: LogEntry = { ...ref, time: clock.now(), message };
      this.emit('subtask.log', entry);
      const write = () => store.appendLogs([entry]);
      logWrites = logWrites ? logWrites.then(write) : write();
    };
    try {
      this.emit('subtask.started', { ...ref, attempt: claim.attempt, executor: this.executor });
      const handler = handlers.get(subtask.className);
      let input: ContextDelta | undefined = claim.input;
      let error: ErrorInfo | undefined;
      if (input === undefined) {
        const merged = mergeUpstreamOutputs(task.context, claim.upstreamOutputs);
        if (merged.ok) input = merged.delta;
        else {
          const { key, values } = merged.conflict;
          error = toErrorInfo(
            new DagopsError(
              ErrorCode.TASK_CONTEXT_ERROR,
              `upstream outputs disagree on ${JSON.stringify(key)}: ${values.map((v) => JSON.stringify(v)).join(' vs ')}`,
              { target: key, nonRetryable: true },
            ),
          );
        }
      }
      if (input !== undefined && !handler) {
        error = toErrorInfo(
          new DagopsError(ErrorCode.HANDLER_NOT_FOUND, `no handler for ${subtask.className}`, {
            target: subtask.className,
            nonRetryable: true,
          }),
        );
      }
      if (input !== undefined && handler && error === undefined) {
        const context = new AttemptContext(
          task.id,
          subtask.id,
          subtask.runTime,
          subtask.nodeKey,
          subtask.parallelIdx,
          task.context,
          input,
          log,
        );
        const outcome = await runHandler(handler, context, subtask.timeout, clock, (late) =>
          this.reportLate(ref, late),
        );
        context.close();
        if (outcome.ok) {
          await logWrites;
          const result = await store.completeAttempt(fence, {
            input,
            output: context.output(),
            now: clock.now(),
          });
          if (result.accepted) this.emit('subtask.succeeded', ref);
          else this.reportLate(ref, outcome);
          this.emitChanges(result.changes);
          return;
        }
        error = outcome.error;
      }
      await this.failAttempt(
        claim,
        fence,
        input,
        error as ErrorInfo,
        handler,
        log,
        () => logWrites,
      );
    } catch (thrown) {
      this.options.logger.error('attempt bookkeeping failed', {
        ...ref,
        error: toErrorInfo(thrown),
      });
    } finally {
      this.inFlight--;
      this.pump();
    }
  }

  private async failAttempt(
    claim: Claim,
    fence: AttemptFence,
    input: ContextDelta | undefined,
    error: ErrorInfo,
    handler: Handler | undefined,
    log: (message: string) => void,
    logWrites: () => Promise<void> | undefined,
  ): Promise<void> {
    const { task, subtask, attempt } = claim;
    const { clock, store } = this.options;
    const node = this.nodeOf(task.template, subtask.nodeKey);
    const policy = resolveRetryPolicy(node?.retry, handler?.retry);
    const retry = canRetry(policy, attempt, error);
    const delay = retry ? retryDelayMs(policy, attempt) : 0;
    const code = error.code === undefined ? '' : ` [${error.code}]`;
    log(
      `attempt ${attempt} failed${code}: ${error.message}${retry ? `; retry in ${delay} ms` : ''}`,
    );
    await logWrites();
    const now = clock.now();
    const result = await store.failAttempt(fence, {
      input,
      error,
      ...(retry ? { retryAt: now + delay } : {}),
      now,
    });
    const ref = { taskId: task.id, subtaskId: subtask.id, runTime: subtask.runTime };
    if (!result.accepted) {
      this.reportLate(ref, { ok: false, error });
    } else if (retry) {
      this.emit('subtask.attemptFailed', { ...ref, attempt, error, retryDelayMs: delay });
      this.wakeUpAt(now + delay);
    } else {
      this.emit('subtask.failed', { ...ref, error });
    }
    this.emitChanges(result.changes);
  }

  private reportLate(
    ref: { taskId: number; subtaskId: number; runTime: number },
    late: LateOutcome,
  ) {
    this.emit('subtask.lateResult', {
      ...ref,
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
        }
      } else if (change.from === SubtaskStatus.PENDING && change.to === SubtaskStatus.READY) {
        const { taskId, subtaskId, runTime } = change;
        this.emit('subtask.ready', { taskId, subtaskId, runTime });
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
        this.pump();
        void this.options.store.nextRetryAt().then((next) => {
          if (next !== undefined) this.wakeUpAt(next);
        });
      },
      Math.max(0, at - clock.now()),
    );
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
