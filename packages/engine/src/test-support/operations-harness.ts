/**
 * Helpers for the tests of operations on live tasks (retry, skip, cancel, rollback): a scripted
 * handler whose execute, rollback and cancel behave as each test plans, per subtask; an engine
 * on a stepped manual clock with every event recorded; byte-for-byte snapshots of a task; and
 * the rules that say which operation is legal in which state, written from SPEC §5
 * independently of the engine. Status moves are observed by mocking `transitions.js` in the
 * test files (see `operations.test.ts`).
 */
import { expect } from 'vitest';
import { Engine } from '../engine.js';
import type { EngineOptions } from '../engine-options.js';
import { DagopsError, ErrorCode } from '../errors.js';
import type { EngineEvents } from '../events.js';
import { HandlerRegistry, type Handler, type HandlerContext } from '../handler.js';
import { MemoryStore } from '../memory-store.js';
import { Operation, SubtaskStatus, TaskStatus } from '../status.js';
import type { SubtaskJson, TaskJson } from '../task.js';
import type { Template, TemplateNode } from '../template.js';
import { flush, memoryLogger, steppedClock, type SteppedClock } from './engine-harness.js';

/** The class name of the scripted handler. */
export const STEP = 'test.Step';
/** A class name whose handler has `execute` only: nothing to undo, nothing to cancel. */
export const NO_ROLLBACK = 'test.NoRollback';

/** What one call of a scripted handler function does. */
export type Behaviour =
  /** Returns at once (execute writes `out:<label>` = `done`). */
  | 'ok'
  /** Throws. */
  | 'fail'
  /** Never settles by itself: only a timeout, a cancel or {@link Script.settle} ends it. */
  | 'hang'
  /** Sleeps on the test clock, then returns or throws. */
  | { readonly sleepMs: number; readonly then: 'ok' | 'fail' };

/** One call of a scripted handler function. */
export interface Call {
  /** Order of the call among all calls. */
  readonly seq: number;
  readonly kind: 'execute' | 'rollback' | 'cancel';
  readonly label: string;
  readonly subtaskId: number;
  readonly runTime: number;
  readonly idempotencyKey: string;
  /** Clock time of the call. */
  readonly at: number;
  readonly context: HandlerContext;
  /** For `cancel`: whether the signal was already aborted, and why. */
  readonly aborted?: boolean;
  readonly reason?: unknown;
}

/** `nodeKey`, or `nodeKey[i]` for branch i of a split node. */
export function labelOf(subtask: { nodeKey: string; parallelIdx: number }): string {
  return subtask.parallelIdx < 0 ? subtask.nodeKey : `${subtask.nodeKey}[${subtask.parallelIdx}]`;
}

/**
 * A handler scripted per subtask label: `plan('execute', 'a', 'fail', 'ok')` makes a's first
 * execution fail and every later one succeed (the last planned behaviour repeats). Unplanned
 * calls do {@link Script.defaults}. Every call is recorded.
 */
export class Script {
  readonly calls: Call[] = [];
  /** What unplanned calls do. */
  readonly defaults: { execute: Behaviour; rollback: Behaviour; cancel: 'ok' | 'hang' } = {
    execute: 'ok',
    rollback: 'ok',
    cancel: 'ok',
  };
  private readonly plans = new Map<string, Behaviour[]>();
  private readonly hung = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  constructor(private readonly clock: SteppedClock) {}

  /** Plans the next calls of `kind` for `label`; the last behaviour repeats. */
  plan(kind: 'execute' | 'rollback', label: string, ...steps: Behaviour[]): this {
    this.plans.set(`${kind}:${label}`, steps);
    return this;
  }

  /** Settles the hung call of `subtaskId` (its result is late if the attempt has ended). */
  settle(subtaskId: number, outcome: 'ok' | 'fail'): void {
    const hung = this.hung.get(subtaskId);
    this.hung.delete(subtaskId);
    if (outcome === 'ok') hung?.resolve();
    else hung?.reject(new Error(`subtask ${subtaskId} failed late`));
  }

  /** Calls of `kind`, optionally of one label. */
  callsOf(kind: Call['kind'], label?: string): Call[] {
    return this.calls.filter((c) => c.kind === kind && (label === undefined || c.label === label));
  }

  /** Labels of the calls of `kind`, in call order. */
  labels(kind: Call['kind']): string[] {
    return this.callsOf(kind).map((c) => c.label);
  }

  /** The scripted handler. */
  handler(): Handler {
    return {
      execute: (ctx) => this.act('execute', ctx),
      rollback: (ctx) => this.act('rollback', ctx),
      cancel: (ctx) => {
        this.record('cancel', ctx, { aborted: ctx.signal.aborted, reason: ctx.signal.reason });
        if (this.defaults.cancel === 'hang') return new Promise<void>(() => {});
        return undefined;
      },
    };
  }

  private next(kind: 'execute' | 'rollback', label: string): Behaviour {
    const steps = this.plans.get(`${kind}:${label}`);
    if (!steps || steps.length === 0) return this.defaults[kind];
    return (steps.length > 1 ? steps.shift() : steps[0]) as Behaviour;
  }

  private record(kind: Call['kind'], ctx: HandlerContext, extra: Partial<Call> = {}): void {
    this.calls.push({
      seq: this.calls.length,
      kind,
      label: labelOf(ctx),
      subtaskId: ctx.subtaskId,
      runTime: ctx.runTime,
      idempotencyKey: ctx.idempotencyKey,
      at: this.clock.now(),
      context: ctx,
      ...extra,
    });
  }

  private act(kind: 'execute' | 'rollback', ctx: HandlerContext): Promise<void> | void {
    this.record(kind, ctx);
    const label = labelOf(ctx);
    const behaviour = this.next(kind, label);
    const succeed = () => {
      if (kind === 'execute') ctx.set(`out:${label}`, 'done');
    };
    const failure = () => new Error(`${kind} of ${label} failed`);
    if (behaviour === 'ok') return succeed();
    if (behaviour === 'fail') throw failure();
    if (behaviour === 'hang') {
      return new Promise<void>((resolve, reject) => {
        this.hung.set(ctx.subtaskId, { resolve, reject });
      });
    }
    return this.clock.sleep(behaviour.sleepMs).then(() => {
      if (behaviour.then === 'fail') throw failure();
      succeed();
    });
  }
}

/** Every event of the engine (a new event fails to compile until it is listed here). */
const ALL_EVENTS: Readonly<Record<keyof EngineEvents, true>> = {
  'task.created': true,
  'task.statusChanged': true,
  'task.finished': true,
  'task.operation': true,
  'subtask.ready': true,
  'subtask.started': true,
  'subtask.log': true,
  'subtask.attemptFailed': true,
  'subtask.succeeded': true,
  'subtask.failed': true,
  'subtask.lateResult': true,
  'subtask.leaseLost': true,
  'subtask.canceled': true,
  'subtask.skipped': true,
  'subtask.rollbackStarted': true,
  'subtask.rollbackSucceeded': true,
  'subtask.rollbackFailed': true,
};

/** One recorded event. */
export type Recorded = {
  [K in keyof EngineEvents]: {
    readonly name: K;
    readonly at: number;
    readonly data: EngineEvents[K][0];
  };
}[keyof EngineEvents];

/** Payloads of the recorded events named `name`. */
export function payloads<K extends keyof EngineEvents>(
  events: readonly Recorded[],
  name: K,
): EngineEvents[K][0][] {
  return events.filter((e) => e.name === name).map((e) => e.data as EngineEvents[K][0]);
}

type NodeSpec = Partial<TemplateNode> & { readonly key: string };

/** A template; nodes default to className {@link STEP}, timeout 60 s; edges as `'a>b'`. */
export function template(
  nodes: readonly (string | NodeSpec)[],
  edges: readonly string[] = [],
  extra: Partial<Template> = {},
): Template {
  return {
    name: 'ops test',
    nodes: nodes.map((spec) => {
      const node = typeof spec === 'string' ? { key: spec } : spec;
      return { className: STEP, name: node.key, timeout: 60, ...node };
    }),
    edges: edges.map((edge) => {
      const [from = '', to = ''] = edge.split('>');
      return { from, to };
    }),
    ...extra,
  };
}

/** The six operations, by their engine method names. */
export const OPERATIONS = [
  'retryTask',
  'retrySubtask',
  'skipSubtask',
  'cancelSubtask',
  'cancelTask',
  'rollbackTask',
] as const;
/** One of {@link OPERATIONS}. */
export type OperationName = (typeof OPERATIONS)[number];

/** Whether `name` acts on one subtask. */
export function onSubtask(name: OperationName): boolean {
  return name === 'retrySubtask' || name === 'skipSubtask' || name === 'cancelSubtask';
}

/** Calls operation `name` on `engine`. */
export function callOperation(
  engine: Engine,
  name: OperationName,
  taskId: number,
  subtaskId: number,
  actor: string,
): Promise<TaskJson> {
  switch (name) {
    case 'retryTask':
      return engine.retryTask(taskId, actor);
    case 'cancelTask':
      return engine.cancelTask(taskId, actor);
    case 'rollbackTask':
      return engine.rollbackTask(taskId, actor);
    case 'retrySubtask':
      return engine.retrySubtask(taskId, subtaskId, actor);
    case 'skipSubtask':
      return engine.skipSubtask(taskId, subtaskId, actor);
    case 'cancelSubtask':
      return engine.cancelSubtask(taskId, subtaskId, actor);
  }
}

/** What {@link expectedVerdict} needs besides the task. */
export interface VerdictContext {
  /** Subtasks whose rollback failed in the current rollback (skippable during it). */
  readonly rollbackFailed: ReadonlySet<number>;
  /** The template prohibits rollback. */
  readonly templateProhibits: boolean;
}

/**
 * What SPEC §5 says operation `name` does on `task` (as the wire shows it): `'ok'`, or the code
 * it is refused with.
 */
export function expectedVerdict(
  task: TaskJson,
  name: OperationName,
  subtask: SubtaskJson | undefined,
  context: VerdictContext,
): 'ok' | 20003 | 20004 {
  const invalid = ErrorCode.TASK_STATE_INVALID;
  const inRollback = task.operation === Operation.ROLLBACK;
  const failed = subtask?.status === SubtaskStatus.FAILED;
  switch (name) {
    case 'retryTask':
      return task.status === TaskStatus.FAILED && !inRollback ? 'ok' : invalid;
    case 'retrySubtask':
      return failed && !inRollback ? 'ok' : invalid;
    case 'skipSubtask':
      return failed && (!inRollback || context.rollbackFailed.has(subtask.id)) ? 'ok' : invalid;
    case 'cancelSubtask':
      return subtask?.status === SubtaskStatus.RUNNING ? 'ok' : invalid;
    case 'cancelTask':
      return task.status === TaskStatus.RUNNING ? 'ok' : invalid;
    case 'rollbackTask': {
      if (task.status !== TaskStatus.FAILED) return invalid;
      const prohibited =
        context.templateProhibits ||
        task.context.stringMap.prohibit_rollback === 'true' ||
        task.subtasks.some((s) => s.prohibitRollback && s.startTime !== undefined);
      return prohibited ? ErrorCode.TASK_PROHIBIT_ROLLBACK : 'ok';
    }
  }
}

/**
 * Subtasks of `taskId` whose rollback failed in its current rollback, from the events: a
 * rollback starts the set afresh; a failed rollback adds; a rollback-skip removes.
 */
export function rollbackFailedFrom(events: readonly Recorded[], taskId: number): Set<number> {
  const failed = new Set<number>();
  for (const event of events) {
    if (event.data.taskId !== taskId) continue;
    if (event.name === 'task.operation' && event.data.operation === Operation.ROLLBACK) {
      failed.clear();
    } else if (event.name === 'subtask.rollbackFailed') {
      failed.add(event.data.subtaskId);
    } else if (
      event.name === 'subtask.skipped' &&
      event.data.operation === Operation.ROLLBACK_SKIP
    ) {
      failed.delete(event.data.subtaskId);
    }
  }
  return failed;
}

/** Options of {@link setup}. */
export type SetupOptions = Omit<EngineOptions, 'clock' | 'handlers' | 'logger' | 'store'> & {
  /** Extra handlers to register. */
  readonly handlers?: Readonly<Record<string, Handler>>;
};

/** An engine on a stepped manual clock with a {@link Script}ed handler, recording everything. */
export function setup(options: SetupOptions = {}) {
  const { handlers: extra = {}, ...engineOptions } = options;
  const clock = steppedClock();
  const script = new Script(clock);
  const handlers = new HandlerRegistry().register(STEP, script.handler()).register(NO_ROLLBACK, {
    execute: (ctx) => {
      script.calls.push({
        seq: script.calls.length,
        kind: 'execute',
        label: labelOf(ctx),
        subtaskId: ctx.subtaskId,
        runTime: ctx.runTime,
        idempotencyKey: ctx.idempotencyKey,
        at: clock.now(),
        context: ctx,
      });
    },
  });
  for (const [className, handler] of Object.entries(extra)) handlers.register(className, handler);
  const store = new MemoryStore();
  const logger = memoryLogger();
  const engine = new Engine({
    executor: 'engine-1',
    utcOffsetMinutes: 0,
    ...engineOptions,
    store,
    handlers,
    clock,
    logger,
  });
  const events: Recorded[] = [];
  const status = new Map<number, TaskStatus>();
  for (const name of Object.keys(ALL_EVENTS) as (keyof EngineEvents)[]) {
    engine.on(name, (data: unknown) => {
      const event = { name, at: clock.now(), data } as Recorded;
      if (event.name === 'task.created') status.set(event.data.taskId, TaskStatus.RUNNING);
      if (event.name === 'task.statusChanged') status.set(event.data.taskId, event.data.to);
      events.push(event);
    });
  }

  /** Steps the clock until task `id` is no longer RUNNING; false if it never stops. */
  async function untilSettled(id: number, limitMs?: number): Promise<boolean> {
    return clock.runUntil(() => status.get(id) !== TaskStatus.RUNNING, limitMs);
  }

  /** Submits `tpl` and steps the clock until the task is no longer RUNNING. */
  async function run(tpl: Template, args?: unknown, creator = 'admin') {
    const task = await engine.submit(tpl, args, { creator });
    await untilSettled(task.id);
    return task.id;
  }

  /** Subtask ids of task `id` by label. */
  async function ids(id: number): Promise<Record<string, number>> {
    return Object.fromEntries((await store.listSubtasks(id)).map((s) => [labelOf(s), s.id]));
  }

  /** Statuses of task `id`'s subtasks by label, as `STATUS/OPERATION`. */
  async function states(id: number): Promise<Record<string, string>> {
    return Object.fromEntries(
      (await store.listSubtasks(id)).map((s) => [labelOf(s), `${s.status}/${s.operation}`]),
    );
  }

  /** The task as `STATUS/OPERATION`. */
  async function taskState(id: number): Promise<string> {
    const task = await engine.getTask(id);
    return `${task.status}/${task.operation}`;
  }

  /**
   * Everything observable about task `id`, as one string: its JSON, its audit trail, its
   * records (errors included), and every subtask's saved input and output and logs.
   */
  async function snapshot(id: number): Promise<string> {
    const parts: unknown[] = [await engine.getTask(id), await engine.getAuditTrail(id)];
    for (const subtask of await store.listSubtasks(id)) {
      parts.push(
        subtask,
        await store.getSubtaskContexts(id, subtask.id),
        await store.readLogs(id, subtask.id),
      );
    }
    return JSON.stringify(parts);
  }

  /**
   * Expects `operation` to be refused with `code` and to change nothing: the task, its audit
   * trail, records, contexts and logs byte for byte, and no event emitted, now or after the
   * engine has had a chance to react.
   */
  async function expectRefused(
    id: number,
    operation: () => Promise<unknown>,
    code: number,
  ): Promise<DagopsError> {
    await flush();
    const before = await snapshot(id);
    const eventCount = events.length;
    const error: unknown = await operation().then(
      () => new Error('the operation was not refused'),
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(DagopsError);
    expect((error as DagopsError).code).toBe(code);
    expect(await snapshot(id)).toBe(before);
    await flush();
    expect(await snapshot(id)).toBe(before);
    expect(events.slice(eventCount)).toEqual([]);
    return error as DagopsError;
  }

  return {
    clock,
    script,
    store,
    engine,
    events,
    logger,
    run,
    untilSettled,
    ids,
    states,
    taskState,
    snapshot,
    expectRefused,
  };
}

/** What {@link setup} returns. */
export type Harness = ReturnType<typeof setup>;

/** The audit trail without times, as `operation:actor[:subtaskId]`. */
export function auditLine(entry: { operation: string; actor: string; subtaskId?: number }): string {
  return `${entry.operation}:${entry.actor}${entry.subtaskId === undefined ? '' : `:${entry.subtaskId}`}`;
}

/** Lets the engine react to what just happened. */
export { flush };
