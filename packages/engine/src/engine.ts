import {
  resolveEngineOptions,
  type EngineOptions,
  type ResolvedEngineOptions,
} from './engine-options.js';
import { toErrorInfo } from './error-info.js';
import { DagopsError, ErrorCode, TaskArgumentsError } from './errors.js';
import type { EngineEvents } from './events.js';
import { countSubtasks, expandTemplate, type ExpandedTask } from './expand-template.js';
import { Dispatcher } from './internal/dispatcher.js';
import { SafeEmitter } from './internal/safe-emitter.js';
import { Operation, SubtaskStatus, TaskStatus, TaskType } from './status.js';
import type { AuditEntry, Claim, LogEntry, OperationRequest, StatusChange } from './store.js';
import type { TaskJson } from './task.js';
import { readTask } from './read-task.js';
import { toSubmittedTaskJson, toTaskJson } from './task-json.js';
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
  private readonly dispatcher: Dispatcher;
  private readonly waiters = new Map<number, (() => void)[]>();
  private closed = false;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(options: EngineOptions = {}) {
    super();
    this.options = resolveEngineOptions(options);
    this.executor = this.options.executor;
    this.dispatcher = new Dispatcher(this.options, {
      emit: (event, ...args) => this.emit(event, ...args),
      listenerCount: (event) => this.listenerCount(event),
      applied: (changes) => this.emitChanges(changes),
    });
    // Work already in the store (a restart, another engine's task) is picked up at once, and
    // retries it has scheduled wake this engine when due.
    queueMicrotask(() => this.dispatcher.lookForRetries());
    // A store shared with other engines tells of their work and of tasks they finished.
    this.unsubscribe = this.options.store.subscribe?.((notice) => {
      if (notice.kind === 'taskFinished') void this.finishedElsewhere(notice.taskId);
      else this.dispatcher.noticed(notice);
    });
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
    return this.dispatcher.running;
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
    const creator = { actor: meta.creator, now: expanded.task.startTime };
    // Saved and claimed in one round trip when the store can: the first subtasks start without
    // waiting for a claim of their own.
    const claim = store.insertTaskAndClaim ? this.dispatcher.beginClaim(clock.now()) : undefined;
    let claims: readonly Claim[] = [];
    try {
      if (claim && store.insertTaskAndClaim) {
        claims = await store.insertTaskAndClaim(expanded, creator, claim);
      } else await store.insertTask(expanded, creator);
    } catch (error) {
      // Nothing saved, nothing claimed: the dispatcher claims again as usual.
      if (claim) this.dispatcher.endClaim(claim, []);
      throw error;
    }
    const { task } = expanded;
    this.emit('task.created', { taskId: task.id, name: task.name, subtaskCount: count });
    if (this.listenerCount('subtask.ready') > 0) {
      // READY at submission: the roots (the store may have started them since).
      for (const id of rootIds(expanded)) {
        this.emit('subtask.ready', { taskId: task.id, subtaskId: id, runTime: 1 });
      }
    }
    // What the claim took starts once the task's creation is told.
    if (claim) this.dispatcher.endClaim(claim, claims);
    else this.dispatcher.pump();
    // Rendered last, off the way to the first start, from what the store does not change.
    return toSubmittedTaskJson(expanded, this.jsonOptions());
  }

  /** A task in OCP's wire shape. @throws DagopsError 20000 when unknown. */
  async getTask(taskId: number): Promise<TaskJson> {
    const read = await readTask(this.options.store, taskId);
    if (!read) throw notFound(`task ${taskId}`);
    return toTaskJson(read.task, read.subtasks, this.jsonOptions());
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
    this.dispatcher.pump();
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
    this.unsubscribe?.();
    await this.dispatcher.close();
  }

  /**
   * Another engine finished a task: resolve its waiters here, once the store confirms (the
   * notice may be older than an operation that has since resumed the task).
   */
  private async finishedElsewhere(taskId: number): Promise<void> {
    if (!this.waiters.has(taskId)) return;
    try {
      const task = await this.options.store.getTask(taskId);
      if (task && task.status !== TaskStatus.RUNNING) this.resolveWaiters(taskId);
    } catch (error) {
      this.options.logger.warn('reading a task finished elsewhere failed', {
        taskId,
        error: toErrorInfo(error),
      });
    }
  }

  /** Resolves the {@link waitForTask} calls waiting for `taskId` to finish. */
  private resolveWaiters(taskId: number): void {
    const waiting = this.waiters.get(taskId);
    this.waiters.delete(taskId);
    for (const resolve of waiting ?? []) resolve();
  }

  private emitChanges(changes: readonly StatusChange[]): void {
    for (const change of changes) {
      if (change.kind === 'task') {
        const { taskId, from, to, operation } = change;
        this.emit('task.statusChanged', { taskId, from, to, operation });
        if (to !== TaskStatus.RUNNING) {
          this.emit('task.finished', { taskId, status: to, operation });
          this.resolveWaiters(taskId);
          if (to === TaskStatus.FAILED && operation !== Operation.ROLLBACK) {
            void this.rollBackIfAsked(taskId, operation);
          }
        }
      } else if (change.to === SubtaskStatus.READY && change.from !== SubtaskStatus.RUNNING) {
        if (this.listenerCount('subtask.ready') === 0) continue;
        const { taskId, subtaskId, runTime } = change;
        this.emit('subtask.ready', { taskId, subtaskId, runTime });
      } else if (
        change.operation === Operation.SKIP ||
        change.operation === Operation.ROLLBACK_SKIP
      ) {
        const { taskId, subtaskId, runTime, operation } = change;
        this.emit('subtask.skipped', { taskId, subtaskId, runTime, operation });
      } else if (change.to === SubtaskStatus.CANCELING) {
        this.dispatcher.cancelLocal(change.subtaskId);
      }
    }
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

/** Ids of the subtasks without upstreams, read from the layout when there is one. */
function* rootIds({ layout, subtasks }: ExpandedTask): Generator<number> {
  if (layout) {
    for (let i = 0; i < layout.count; i++) if (layout.upCount(i) === 0) yield layout.firstId + i;
    return;
  }
  for (const subtask of subtasks) if (subtask.upstreams.length === 0) yield subtask.id;
}
