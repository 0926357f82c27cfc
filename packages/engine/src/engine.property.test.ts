/**
 * Properties of the runner over random valid templates, random list sizes, random per-subtask
 * outcomes (succeed; fail N times then succeed; always fail; hang past the timeout) and random
 * durations, on a manual clock stepped timer by timer. Each scenario runs twice, under two
 * duration schedules and two engine concurrencies: what must not depend on the schedule is
 * compared, and every run is checked against an oracle computed from the outcomes alone.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { ErrorCode } from './errors.js';
import { expandTemplate } from './expand-template.js';
import { HandlerRegistry, type HandlerContext } from './handler.js';
import { MemoryStore } from './memory-store.js';
import type { AttemptFence, Claim, ClaimRequest, Store, TransitionResult } from './store.js';
import type { SubtaskRecord, TaskRecord } from './task.js';
import type { TaskArguments } from './task-arguments.js';
import type { RetryPolicy, Template, TemplateNode } from './template.js';
import { DEFAULT_TASK_CONCURRENCY } from './template.js';
import { validateTemplate } from './validate-template.js';
import { validScenarioArb } from './test-support/arbitraries.js';
import {
  MAX_STEPS,
  flush,
  memoryLogger,
  overrideStore,
  recordEvents,
  steppedClock,
  type RecordedEvent,
} from './test-support/engine-harness.js';

const CLASSES = ['p.A', 'p.B', 'p.C'] as const;
/** Default retry policies of the handlers; nodes override them field by field. */
const HANDLER_RETRY: Readonly<Record<string, RetryPolicy>> = {
  'p.B': { maxAttempts: 3, initialIntervalSeconds: 2, backoffCoefficient: 1.5 },
};

/** How a failing attempt fails. */
type FailKind = 'E_FLAKY' | 'E_FATAL' | 'E_NR';
/** What a subtask's handler does, attempt after attempt. */
type Outcome =
  | { readonly kind: 'succeed' }
  | { readonly kind: 'flaky'; readonly fails: number; readonly error: FailKind }
  | { readonly kind: 'fail'; readonly error: FailKind }
  | { readonly kind: 'hang'; readonly times: number };

const failKindArb = fc.constantFrom<FailKind>('E_FLAKY', 'E_FLAKY', 'E_FATAL', 'E_NR');
const benignOutcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'succeed' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('flaky' as const),
      fails: fc.integer({ min: 1, max: 2 }),
      error: fc.constant<FailKind>('E_FLAKY'),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const, times: 1 }) },
);
const anyOutcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'succeed' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('flaky' as const),
      fails: fc.integer({ min: 1, max: 4 }),
      error: failKindArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail' as const), error: failKindArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('hang' as const),
      times: fc.constantFrom(1, 2, Number.POSITIVE_INFINITY),
    }),
  },
);

/** Codes a node may list as non-retryable. */
const nonRetryableCodesArb = fc.constantFrom<readonly (string | number)[]>(
  [],
  ['E_FATAL'],
  [ErrorCode.ATTEMPT_TIMEOUT],
  ['E_FATAL', ErrorCode.ATTEMPT_TIMEOUT],
);

interface Scenario {
  readonly template: Template;
  readonly args: TaskArguments | undefined;
  readonly outcomes: readonly Outcome[];
  readonly copies: number;
  readonly runs: readonly { readonly durations: readonly number[]; readonly concurrency: number }[];
}

const scheduleArb = fc.record({
  durations: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 12 }),
  concurrency: fc.integer({ min: 1, max: 6 }),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    scenario: validScenarioArb({ maxNodes: 6, classNames: CLASSES }),
    timeouts: fc.array(fc.integer({ min: 4, max: 20 }), { minLength: 1, maxLength: 4 }),
    codes: fc.array(nonRetryableCodesArb, { minLength: 1, maxLength: 3 }),
    outcomes: fc.oneof(
      fc.array(benignOutcomeArb, { minLength: 1, maxLength: 8 }),
      fc.array(anyOutcomeArb, { minLength: 1, maxLength: 8 }),
    ),
    copies: fc.integer({ min: 1, max: 2 }),
    runs: fc.tuple(scheduleArb, scheduleArb),
  })
  .map(({ scenario, timeouts, codes, outcomes, copies, runs }) => ({
    // Integer timeouts (so that a hang is past the deadline and a plain attempt is not), and
    // non-retryable codes the handlers' errors can actually carry.
    template: {
      ...scenario.template,
      nodes: scenario.template.nodes.map((node, i): TemplateNode => {
        const { retry, ...rest } = node;
        const timeout = timeouts[i % timeouts.length] as number;
        if (!retry) return { ...rest, timeout };
        const nonRetryableCodes = codes[i % codes.length] as readonly (string | number)[];
        return { ...rest, timeout, retry: { ...retry, nonRetryableCodes } };
      }),
    },
    args: scenario.args,
    outcomes,
    copies,
    runs,
  }));

/** One expanded subtask, as the oracle knows it. */
interface PlannedSubtask {
  readonly seriesId: number;
  readonly nodeKey: string;
  readonly parallelIdx: number;
  readonly splitKey: string | undefined;
  readonly timeoutMs: number;
  readonly upstreams: readonly number[];
  readonly ancestors: ReadonlySet<number>;
  readonly outcome: Outcome;
  readonly maxAttempts: number;
  /** Failing attempts before the first success (Infinity: never succeeds). */
  readonly failures: number;
  /** The error code of a failing attempt. */
  readonly code: string | number | undefined;
  /** Whether it exhausts its attempts or fails with a non-retryable error. */
  readonly doomed: boolean;
  /** Attempts it makes if it runs to its end. */
  readonly attempts: number;
  /** Delay before the retry that follows failed attempt n (index n-1), in ms. */
  readonly delays: readonly number[];
}

const pairKey = (nodeKey: string, parallelIdx: number) => JSON.stringify([nodeKey, parallelIdx]);

/** What each subtask must do, from the template and the outcomes only. */
function plan(scenario: Scenario): PlannedSubtask[] {
  const validated = validateTemplate(scenario.template);
  const { subtasks } = expandTemplate(validated, scenario.args, {
    ids: { nextTaskId: () => 1, reserveSubtaskIds: () => 0 },
    creator: 'oracle',
    executor: 'oracle',
    now: 0,
  });
  const nodes = new Map(scenario.template.nodes.map((node) => [node.key, node]));
  const ancestors: Set<number>[] = [];
  return subtasks.map((subtask) => {
    const node = nodes.get(subtask.nodeKey) as TemplateNode;
    const merged: RetryPolicy = { ...HANDLER_RETRY[node.className], ...node.retry };
    const maxAttempts = merged.maxAttempts ?? 1;
    const initial = merged.initialIntervalSeconds ?? 1;
    const coefficient = merged.backoffCoefficient ?? 2;
    const max = merged.maxIntervalSeconds ?? initial * 100;
    const codes = merged.nonRetryableCodes ?? [];
    const outcome = scenario.outcomes[subtask.seriesId % scenario.outcomes.length] as Outcome;
    let failures = 0;
    let code: string | number | undefined;
    if (outcome.kind === 'flaky') [failures, code] = [outcome.fails, outcome.error];
    if (outcome.kind === 'fail') [failures, code] = [Infinity, outcome.error];
    if (outcome.kind === 'hang') [failures, code] = [outcome.times, ErrorCode.ATTEMPT_TIMEOUT];
    const fatal = code === 'E_NR' || (code !== undefined && codes.includes(code));
    const doomed = failures > 0 && (fatal || failures >= maxAttempts);
    const attempts = !doomed ? failures + 1 : fatal ? 1 : maxAttempts;
    const delays = Array.from({ length: maxAttempts }, (_, n) =>
      Math.round(Math.min(initial * coefficient ** n, max) * 1000),
    );
    const mine = new Set<number>();
    for (const up of subtask.upstreams) {
      mine.add(up);
      for (const a of ancestors[up] ?? []) mine.add(a);
    }
    ancestors[subtask.seriesId] = mine;
    return {
      seriesId: subtask.seriesId,
      nodeKey: subtask.nodeKey,
      parallelIdx: subtask.parallelIdx,
      splitKey: node.splitKey,
      timeoutMs: node.timeout * 1000,
      upstreams: subtask.upstreams,
      ancestors: mine,
      outcome,
      maxAttempts,
      failures,
      code,
      doomed,
      attempts,
      delays,
    };
  });
}

/** An accepted store write, in the order the store applied it. */
interface StoreMark {
  readonly kind: 'claim' | 'complete' | 'retry' | 'failed';
  readonly taskId: number;
  readonly subtaskId: number;
  readonly runTime: number;
}

/** The in-memory store, noting every claim and every accepted completion or failure. */
class MarkingStore extends MemoryStore {
  readonly marks: StoreMark[] = [];
  override claimReady(request: ClaimRequest): Claim[] {
    const claims = super.claimReady(request);
    for (const { task, subtask } of claims) {
      const { id: subtaskId, runTime } = subtask;
      this.marks.push({ kind: 'claim', taskId: task.id, subtaskId, runTime });
    }
    return claims;
  }
  override completeAttempt(
    fence: AttemptFence,
    result: Parameters<MemoryStore['completeAttempt']>[1],
  ): TransitionResult {
    const outcome = super.completeAttempt(fence, result);
    if (outcome.accepted) this.marks.push({ kind: 'complete', ...fence });
    return outcome;
  }
  override failAttempt(
    fence: AttemptFence,
    result: Parameters<MemoryStore['failAttempt']>[1],
  ): TransitionResult {
    const outcome = super.failAttempt(fence, result);
    const kind = result.retryAt === undefined ? 'failed' : 'retry';
    if (outcome.accepted) this.marks.push({ kind, ...fence });
    return outcome;
  }
}

/**
 * An asynchronous store: each write is applied when called (as a database would commit it) but
 * answered when `fc.scheduler()` decides, so the engine sees answers in random orders. This is
 * the engine's code path for a store that answers with promises (PostgreSQL).
 */
function scheduledStore(inner: MarkingStore, scheduler: fc.Scheduler): Store {
  const later = <T>(value: T | Promise<T>, label: string): Promise<T> =>
    scheduler.schedule(Promise.resolve(value), label);
  return overrideStore(inner, {
    claimReady: (...args) => later(inner.claimReady(...args), 'claimReady'),
    completeAttempt: (...args) => later(inner.completeAttempt(...args), 'completeAttempt'),
    failAttempt: (...args) => later(inner.failAttempt(...args), 'failAttempt'),
    nextRetryAt: () => later(inner.nextRetryAt(), 'nextRetryAt'),
    appendLogs: (...args) => later(inner.appendLogs(...args), 'appendLogs'),
  });
}

/** What a handler did in one attempt. */
interface HandlerTrace {
  readonly taskId: number;
  readonly seriesId: number;
  readonly runTime: number;
  readonly enteredAt: number;
  readonly hang: boolean;
  abortedAt?: number;
}

interface RunResult {
  readonly events: readonly RecordedEvent[];
  readonly tasks: readonly { record: TaskRecord; subtasks: SubtaskRecord[]; outputs: unknown[] }[];
  readonly traces: readonly HandlerTrace[];
  readonly marks: readonly StoreMark[];
  readonly problems: readonly string[];
  readonly finished: boolean;
  readonly taskIds: readonly number[];
  readonly ids: readonly (readonly number[])[];
}

async function run(
  scenario: Scenario,
  planned: readonly PlannedSubtask[],
  schedule: Scenario['runs'][number],
  scheduler?: fc.Scheduler,
): Promise<RunResult> {
  const clock = steppedClock();
  /** Settles promises, answering every scheduled store call in the scheduler's order. */
  const settle = async () => {
    await flush();
    while (scheduler && scheduler.count() > 0) {
      await scheduler.waitOne();
      await flush();
    }
  };
  /** Steps the clock timer by timer, settling in between, until `done()` or `limitMs`. */
  const runUntil = async (done: () => boolean, limitMs: number) => {
    const limit = clock.now() + limitMs;
    await settle();
    for (let steps = 0; !done(); steps++) {
      const next = clock.nextDue();
      if (next === undefined || next > limit || steps >= MAX_STEPS) return false;
      await clock.advanceTo(next);
      await settle();
    }
    return true;
  };
  const bySeries = new Map(planned.map((p) => [pairKey(p.nodeKey, p.parallelIdx), p]));
  const problems: string[] = [];
  const traces: HandlerTrace[] = [];
  const taskConcurrency = scenario.template.concurrency ?? DEFAULT_TASK_CONCURRENCY;
  const active = new Map<number, number>();
  let activeTotal = 0;
  const duration = (seriesId: number, runTime: number) =>
    schedule.durations[(seriesId * 7 + runTime) % schedule.durations.length] as number;

  async function execute(ctx: HandlerContext): Promise<void> {
    const p = bySeries.get(pairKey(ctx.nodeKey, ctx.parallelIdx));
    if (!p) throw new Error(`unplanned subtask ${ctx.nodeKey}[${ctx.parallelIdx}]`);
    const hang = ctx.runTime <= p.failures && p.outcome.kind === 'hang';
    const trace: HandlerTrace = {
      taskId: ctx.taskId,
      seriesId: p.seriesId,
      runTime: ctx.runTime,
      enteredAt: clock.now(),
      hang,
    };
    traces.push(trace);
    // The attempt is active from entry until its handler returns or its signal aborts.
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      activeTotal--;
      active.set(ctx.taskId, (active.get(ctx.taskId) ?? 0) - 1);
    };
    activeTotal++;
    active.set(ctx.taskId, (active.get(ctx.taskId) ?? 0) + 1);
    if (activeTotal > schedule.concurrency) problems.push(`engine ran ${activeTotal} at once`);
    if ((active.get(ctx.taskId) ?? 0) > taskConcurrency) {
      problems.push(`task ${ctx.taskId} ran ${active.get(ctx.taskId)} at once`);
    }
    ctx.signal.addEventListener('abort', () => {
      trace.abortedAt = clock.now();
      leave();
    });
    try {
      // What the context must hold: its branch element, and a trail of every ancestor.
      if (p.splitKey !== undefined) {
        const element = ctx.get('no such key', p.splitKey);
        const expected = scenario.args?.listMap?.[p.splitKey]?.[p.parallelIdx];
        if (element !== expected) {
          problems.push(`${p.seriesId} read element ${String(element)}, not ${String(expected)}`);
        }
      }
      const trail = ctx.getList('trail') ?? [];
      const seen = [...new Set(trail)].map(Number).sort((a, b) => a - b);
      const expectedTrail = [...p.ancestors].sort((a, b) => a - b);
      if (JSON.stringify(seen) !== JSON.stringify(expectedTrail)) {
        problems.push(`${p.seriesId} saw trail ${JSON.stringify(seen)}`);
      }
      if (hang) {
        await clock.sleep(p.timeoutMs + 1 + duration(p.seriesId, ctx.runTime));
        ctx.set(`late:${p.seriesId}`, 'discarded');
        return;
      }
      await clock.sleep(duration(p.seriesId, ctx.runTime));
      if (ctx.runTime <= p.failures) {
        ctx.set(`junk:${p.seriesId}`, 'discarded');
        const code = p.code as string;
        throw Object.assign(new Error(`attempt ${ctx.runTime} failed`), {
          code,
          ...(code === 'E_NR' ? { nonRetryable: true } : {}),
        });
      }
      ctx.set(`out:${p.seriesId}`, `${p.seriesId}@${ctx.runTime}`);
      ctx.setList('trail', [...trail, String(p.seriesId)]);
    } finally {
      leave();
    }
  }

  const handlers = new HandlerRegistry();
  for (const className of CLASSES) {
    const retry = HANDLER_RETRY[className];
    handlers.register(className, retry ? { execute, retry } : { execute });
  }
  let events: RecordedEvent[] = [];
  const marking = new MarkingStore();
  const engine = new Engine({
    store: scheduler ? scheduledStore(marking, scheduler) : marking,
    handlers,
    clock,
    concurrency: schedule.concurrency,
    executor: 'prop',
    logger: memoryLogger(),
    utcOffsetMinutes: 0,
  });
  events = recordEvents(engine, clock);
  const taskIds: number[] = [];
  const ids: number[][] = [];
  for (let i = 0; i < scenario.copies; i++) {
    const submitted = await engine.submit(scenario.template, scenario.args, { creator: 'prop' });
    taskIds.push(submitted.id);
    ids.push(submitted.subtasks.map((s) => s.id));
  }
  const finishedCount = () => events.filter((e) => e.name === 'task.finished').length;
  const finished = await runUntil(() => finishedCount() === scenario.copies, 30 * 24 * 3600_000);
  // Let every hung handler return, so that late results are reported.
  await runUntil(() => false, 10 * 60_000);
  const tasks = [];
  for (const id of taskIds) {
    const record = (await engine.store.getTask(id)) as TaskRecord;
    const subtasks = await engine.store.listSubtasks(id);
    const outputs = [];
    for (const s of subtasks)
      outputs.push((await engine.store.getSubtaskContexts(id, s.id))?.output);
    tasks.push({ record, subtasks, outputs });
  }
  return { events, tasks, traces, marks: marking.marks, problems, finished, taskIds, ids };
}

/** What the event check knows of one subtask. */
interface SubtaskEvents {
  state: 'pending' | 'ready' | 'running' | 'waiting' | 'done';
  /** The latest attempt started. */
  runTime: number;
  /** Start time of each attempt, by runTime. */
  readonly starts: Map<number, number>;
  /** How each ended attempt ended (its error code; undefined for success), by runTime. */
  readonly ends: Map<number, unknown>;
  failedAt?: { readonly at: number; readonly delay: number };
}

/** Checks one run against the oracle; returns what is wrong. */
function check(
  scenario: Scenario,
  planned: readonly PlannedSubtask[],
  result: RunResult,
  concurrency: number,
  asyncStore: boolean,
): string[] {
  const out: string[] = [...result.problems];
  if (!result.finished) out.push('a task never finished');
  const taskConcurrency = scenario.template.concurrency ?? DEFAULT_TASK_CONCURRENCY;
  const seriesOf = new Map<number, { copy: number; p: PlannedSubtask }>();
  result.ids.forEach((list, copy) =>
    list.forEach((id, i) => seriesOf.set(id, { copy, p: planned[i] as PlannedSubtask })),
  );
  const anyDoomed = planned.some((p) => p.doomed);

  // In the store's own order: each subtask is claimed, retried, claimed again, and ends; it is
  // claimed only once its upstreams completed, never after its task failed, and never beyond
  // the task's concurrency. (A subtask claimed just before a failure may start its handler
  // just after it: it was already RUNNING, and running ones finish.)
  const claimedBeforeFailure = new Set<number>();
  const failedInStore = new Set<number>();
  const completed = new Set<number>();
  const storeRuns = new Map<number, { runTime: number; running: boolean; done: boolean }>();
  const storeRunning = new Map<number, number>();
  let storeRunningTotal = 0;
  for (const mark of result.marks) {
    const info = seriesOf.get(mark.subtaskId);
    const at = `store: #${info?.p.seriesId} ${mark.kind}(runTime ${mark.runTime})`;
    const run = storeRuns.get(mark.subtaskId) ?? { runTime: 0, running: false, done: false };
    storeRuns.set(mark.subtaskId, run);
    const count = storeRunning.get(mark.taskId) ?? 0;
    if (mark.kind === 'claim') {
      if (run.running || run.done || mark.runTime !== run.runTime + 1) out.push(at);
      if (failedInStore.has(mark.taskId)) out.push(`${at} after its task failed`);
      else claimedBeforeFailure.add(mark.subtaskId);
      for (const up of info?.p.upstreams ?? []) {
        if (!completed.has(result.ids[info?.copy ?? -1]?.[up] ?? -1)) {
          out.push(`${at} before upstream #${up} completed`);
        }
      }
      if (count + 1 > taskConcurrency) out.push(`${at}: ${count + 1} running in the task`);
      storeRunning.set(mark.taskId, count + 1);
      if (++storeRunningTotal > concurrency) out.push(`${at}: ${storeRunningTotal} RUNNING`);
      Object.assign(run, { runTime: mark.runTime, running: true });
    } else {
      if (!run.running || mark.runTime !== run.runTime) out.push(at);
      storeRunning.set(mark.taskId, count - 1);
      storeRunningTotal--;
      run.running = false;
      if (mark.kind !== 'retry') run.done = true;
      if (mark.kind === 'complete') completed.add(mark.subtaskId);
      if (mark.kind === 'failed') failedInStore.add(mark.taskId);
    }
  }

  // Per subtask, the events. With a synchronous store they follow the automaton
  //   ready -> started -> (attemptFailed -> started)* -> (succeeded | failed)
  // (lateResult only for an attempt that has ended, by timeout), and a subtask starts only
  // after its upstreams' `succeeded`. An asynchronous store may answer a claim before the writes
  // that allowed it, so `started` may come before the `succeeded` of an upstream, its own
  // `ready` or its previous `attemptFailed` (see the engine test pinning this); then each kind
  // of event is checked on its own, and the order of the writes is checked on the store above.
  const perSubtask = new Map<number, SubtaskEvents>();
  const succeeded = new Set<number>();
  const failedTask = new Set<number>();
  const running = new Map<number, number>();
  let runningTotal = 0;
  for (const event of result.events) {
    if (!('subtaskId' in event.data) || !('runTime' in event.data)) continue;
    const { taskId, subtaskId: id, runTime: r } = event.data;
    const info = seriesOf.get(id);
    if (!info) {
      out.push(`event for unknown subtask ${id}`);
      continue;
    }
    const { p } = info;
    let st = perSubtask.get(id);
    if (!st)
      perSubtask.set(
        id,
        (st = { state: 'pending', runTime: 0, starts: new Map(), ends: new Map() }),
      );
    const where = `#${p.seriesId} ${event.name}(runTime ${r}) in ${st.state}`;
    const expect = (ok: boolean, what = '') => {
      if (!ok) out.push(`${where}${what}`);
    };
    const end = (kind: 'waiting' | 'done', code: unknown) => {
      const startedAt = st.starts.get(r);
      expect(startedAt !== undefined && !st.ends.has(r), ': ends an attempt that is not running');
      st.ends.set(r, code);
      if (!asyncStore) expect(st.state === 'running' && r === st.runTime);
      running.set(taskId, (running.get(taskId) ?? 0) - 1);
      runningTotal--;
      if (p.outcome.kind === 'hang' && r <= p.failures) {
        expect(
          event.at === (startedAt ?? NaN) + p.timeoutMs,
          ': a hung attempt not failed at its deadline',
        );
        expect(code === ErrorCode.ATTEMPT_TIMEOUT, `: a hung attempt failed with ${String(code)}`);
      }
      if (!asyncStore || r === st.runTime) st.state = kind;
    };
    switch (event.name) {
      case 'subtask.ready':
        expect(r === 1 && (asyncStore || st.state === 'pending'));
        if (st.state === 'pending') st.state = 'ready';
        break;
      case 'subtask.started': {
        expect(r === st.runTime + 1 && event.data.attempt === r, ': not the next attempt');
        if (!asyncStore) {
          expect(r === 1 ? st.state === 'ready' : st.state === 'waiting');
          for (const up of p.upstreams) {
            const upId = result.ids[info.copy]?.[up] ?? -1;
            expect(succeeded.has(upId), `: upstream #${up} not SUCCESSFUL`);
          }
          const failedAt = st.failedAt;
          if (r > 1 && failedAt !== undefined) {
            expect(event.at >= failedAt.at + failedAt.delay, ': retry started before its backoff');
          }
        }
        expect(!failedTask.has(taskId) || claimedBeforeFailure.has(id), ': after its task failed');
        running.set(taskId, (running.get(taskId) ?? 0) + 1);
        runningTotal++;
        if (!asyncStore)
          expect((running.get(taskId) ?? 0) <= taskConcurrency, ': over the task concurrency');
        expect(runningTotal <= concurrency, ': over the engine concurrency');
        st.starts.set(r, event.at);
        Object.assign(st, { state: 'running', runTime: r });
        break;
      }
      case 'subtask.attemptFailed': {
        const { attempt, retryDelayMs, error } = event.data;
        expect(attempt === r, `: attempt ${attempt}`);
        expect(retryDelayMs === p.delays[attempt - 1], `: retry delay ${retryDelayMs}`);
        st.failedAt = { at: event.at, delay: retryDelayMs };
        end('waiting', error.code);
        break;
      }
      case 'subtask.succeeded':
        end('done', undefined);
        succeeded.add(id);
        break;
      case 'subtask.failed':
        end('done', event.data.error.code);
        failedTask.add(taskId);
        break;
      case 'subtask.lateResult':
        expect(
          st.starts.has(r) && p.outcome.kind === 'hang' && r <= p.failures,
          ': not a hung attempt',
        );
        if (!asyncStore)
          expect(st.ends.get(r) === ErrorCode.ATTEMPT_TIMEOUT, ': before its attempt ended');
        break;
      case 'subtask.log':
        expect(st.starts.has(r) && !st.ends.has(r), ': outside its attempt');
        break;
      default:
        break;
    }
  }

  // Handler traces: a hung attempt is aborted at its deadline.
  for (const trace of result.traces) {
    const p = planned[trace.seriesId] as PlannedSubtask;
    if (trace.hang && trace.abortedAt !== trace.enteredAt + p.timeoutMs) {
      out.push(
        `#${trace.seriesId} attempt ${trace.runTime}: aborted at ${String(trace.abortedAt)}`,
      );
    }
    if (!trace.hang && trace.abortedAt !== undefined) {
      out.push(`#${trace.seriesId} attempt ${trace.runTime}: aborted though it did not hang`);
    }
  }

  // Final state: a function of the outcomes.
  result.tasks.forEach(({ record, subtasks }) => {
    const expected = anyDoomed ? 'FAILED' : 'SUCCESSFUL';
    if (record.status !== expected)
      out.push(`task ${record.id} ${record.status}, expected ${expected}`);
    if (record.endTime === undefined) out.push(`task ${record.id} has no endTime`);
    subtasks.forEach((s, i) => {
      const p = planned[i] as PlannedSubtask;
      const starts = result.events.filter(
        (e) => e.name === 'subtask.started' && e.data.subtaskId === s.id,
      ).length;
      if (starts > p.maxAttempts) out.push(`#${i} ran ${starts} times, max ${p.maxAttempts}`);
      if (s.status === 'RUNNING' || s.status === 'CANCELING') out.push(`#${i} left ${s.status}`);
      if (s.status === 'FAILED') {
        if (!p.doomed) out.push(`#${i} FAILED but not doomed`);
        if (s.error?.code !== p.code) out.push(`#${i} failed with ${String(s.error?.code)}`);
        if (s.runTime !== p.attempts)
          out.push(`#${i} FAILED after ${s.runTime} runs, expected ${p.attempts}`);
      }
      if (s.status === 'SUCCESSFUL') {
        if (p.doomed) out.push(`#${i} SUCCESSFUL but doomed`);
        if (s.runTime !== p.attempts)
          out.push(`#${i} took ${s.runTime} runs, expected ${p.attempts}`);
      }
      if (!anyDoomed && s.status !== 'SUCCESSFUL') out.push(`#${i} ${s.status} in a clean run`);
    });
  });
  return out;
}

/** Outputs by copy and seriesId, without volatile parts. */
const outputsOf = (result: RunResult) => result.tasks.map((task) => task.outputs);

/** What the runs of a property reached, so that a generator change cannot make it vacuous. */
interface Coverage {
  successful: number;
  failed: number;
  hangs: number;
  retries: number;
  late: number;
}

/** Runs `scenario` under its two schedules (the second on `scheduler`'s async store) and checks. */
async function runTwiceAndCheck(
  scenario: Scenario,
  seen: Coverage,
  scheduler?: fc.Scheduler,
): Promise<void> {
  const planned = plan(scenario);
  const [first, second] = scenario.runs as [Scenario['runs'][0], Scenario['runs'][0]];
  const a = await run(scenario, planned, first);
  const b = await run(scenario, planned, second, scheduler);
  const problems = [
    ...check(scenario, planned, a, first.concurrency, false).map((p) => `A: ${p}`),
    ...check(scenario, planned, b, second.concurrency, !!scheduler).map((p) => `B: ${p}`),
  ];
  const statusA = a.tasks.map((t) => t.record.status);
  const statusB = b.tasks.map((t) => t.record.status);
  if (JSON.stringify(statusA) !== JSON.stringify(statusB)) {
    problems.push(`statuses differ: ${statusA.join()} vs ${statusB.join()}`);
  }
  if (!planned.some((p) => p.doomed)) {
    const outputs = JSON.stringify(outputsOf(a));
    if (outputs !== JSON.stringify(outputsOf(b))) problems.push('outputs differ between runs');
    if (outputs.includes('junk:') || outputs.includes('late:')) {
      problems.push('a failed or late attempt wrote into an output');
    }
  }
  expect(problems.slice(0, 10)).toEqual([]);
  seen[statusA[0] === 'SUCCESSFUL' ? 'successful' : 'failed']++;
  if (planned.some((p) => p.outcome.kind === 'hang')) seen.hangs++;
  if (a.events.some((e) => e.name === 'subtask.attemptFailed')) seen.retries++;
  if (a.events.some((e) => e.name === 'subtask.lateResult')) seen.late++;
}

function expectCoverage(seen: Coverage, atLeast: number): void {
  expect(seen.successful).toBeGreaterThan(atLeast);
  expect(seen.failed).toBeGreaterThan(atLeast);
  expect(seen.hangs).toBeGreaterThan(atLeast);
  expect(seen.retries).toBeGreaterThan(atLeast);
  expect(seen.late).toBeGreaterThan(atLeast);
}

const noCoverage = (): Coverage => ({ successful: 0, failed: 0, hangs: 0, retries: 0, late: 0 });

describe('Engine, over random templates, outcomes and schedules', () => {
  it('keeps every runner rule, and ends the same whatever the schedule', async () => {
    const seen = noCoverage();
    await fc.assert(
      fc.asyncProperty(scenarioArb, (scenario) => runTwiceAndCheck(scenario, seen)),
      { numRuns: 1500 },
    );
    expectCoverage(seen, 50);
  });

  it('keeps them with a store that answers asynchronously, in any order', async () => {
    const seen = noCoverage();
    await fc.assert(
      fc.asyncProperty(scenarioArb, fc.scheduler(), (scenario, scheduler) =>
        runTwiceAndCheck(scenario, seen, scheduler),
      ),
      { numRuns: 500 },
    );
    expectCoverage(seen, 10);
  });
});
