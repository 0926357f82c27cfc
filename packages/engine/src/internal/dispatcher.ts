import PQueue from 'p-queue';
import { EMPTY_DELTA, mergeUpstreamOutputs, type ContextDelta } from '../context.js';
import type { ResolvedEngineOptions } from '../engine-options.js';
import { toErrorInfo, type ErrorInfo } from '../error-info.js';
import { DagopsError, ErrorCode } from '../errors.js';
import type { EngineEvents, SubtaskRef } from '../events.js';
import type { Handler } from '../handler.js';
import { canRetry, resolveRetryPolicy, retryDelayMs } from '../retry-policy.js';
import { Operation, SubtaskStatus } from '../status.js';
import type {
  AttemptFence,
  Claim,
  ClaimRequest,
  LogEntry,
  MaybePromise,
  StatusChange,
  StoreNotice,
  TransitionResult,
} from '../store.js';
import type { Template, TemplateNode } from '../template.js';
import { Attempt, type AttemptHost, type AttemptOutcome } from './attempt.js';
import { Deadlines } from './deadlines.js';
import { LiveAttempts } from './live-attempts.js';
import { UnansweredWrites } from './unanswered-writes.js';
import { WakeTimer } from './wake-timer.js';
import { LeaseKeeper, leases } from './lease-keeper.js';

/** Most busy time, in ms, between two chances for timers and I/O to run (see yieldToEventLoop). */
const YIELD_EVERY_MS = 5;

/** What the dispatcher needs from the engine that owns it. */
export interface DispatcherHost {
  /** Emits an engine event (listeners cannot throw into the caller). */
  emit<K extends keyof EngineEvents>(event: K, ...args: EngineEvents[K]): void;
  /** Number of listeners of an event: payloads are built only when someone listens. */
  listenerCount(event: keyof EngineEvents): number;
  /** The store made these changes: turn them into events and follow-ups. */
  applied(changes: readonly StatusChange[]): void;
}

/**
 * Runs the work of one engine: claims READY subtasks from the store into lanes, runs each
 * attempt (or rollback) with its timeout, records the outcome through the store with the
 * attempt's fence, applies the retry policy, and wakes up for retries that fall due.
 */
export class Dispatcher {
  private readonly queue: PQueue;
  private readonly nodeIndex = new WeakMap<Template, Map<string, TemplateNode>>();
  /** Attempts executing on this engine now. */
  private inFlight = 0;
  /** Lanes alive: p-queue jobs that each run claimed subtasks one after another. */
  private lanes = 0;
  private claiming = false;
  private claimAgain = false;
  private closed = false;
  private readonly wakeTimer: WakeTimer;
  /** A retry fell due while every slot was busy: the next attempt to end looks for retries. */
  private retryWaitsForSlot = false;
  private readonly attemptHost: AttemptHost;
  /** Writes of an asynchronous store not answered yet: later claims keep events in order. */
  private readonly unanswered = new UnansweredWrites();
  /** When the lanes last let the event loop run (real time, `performance.now()`). */
  private lastYield = performance.now();
  private yielding: Promise<void> | undefined;
  /** Attempts running in this process: what a cancel or a lost lease reaches. */
  private readonly live = new LiveAttempts<Attempt>();
  /** Keeps this engine's leases alive, on a store that leases claims (none otherwise). */
  private readonly leases: LeaseKeeper | undefined;

  constructor(
    private readonly options: ResolvedEngineOptions,
    private readonly host: DispatcherHost,
  ) {
    this.queue = new PQueue({ concurrency: options.concurrency });
    this.wakeTimer = new WakeTimer(options.clock, () => this.lookForRetries());
    this.attemptHost = {
      clock: options.clock,
      deadlines: new Deadlines(options.clock),
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
    const { store } = options;
    if (leases(store)) {
      this.leases = new LeaseKeeper(store, options, {
        leaseLost: (fence) => this.leaseLost(fence),
        canceled: (fence) => this.cancelLocal(fence.subtaskId),
        reaped: (claim) => this.failReaped(claim),
        lookForWork: () => this.lookForRetries(),
      });
    }
  }

  /** News from a store shared with other engines. */
  noticed(notice: StoreNotice): void {
    if (notice.kind === 'work') this.pump();
    else if (notice.kind === 'retry') this.lookForRetries();
    else if (notice.kind === 'canceled') this.leases?.beatNow();
  }

  private get executor(): string {
    return this.options.executor;
  }

  /** Attempts executing on this engine now. */
  get running(): number {
    return this.inFlight;
  }

  /** Cancels the attempt of `subtaskId` if it runs in this process. */
  cancelLocal(subtaskId: number): void {
    this.live.find(subtaskId)?.cancel();
  }

  /** Stops claiming and resolves once every running attempt has ended. */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeTimer.stop();
    await this.queue.onIdle();
    this.leases?.close();
  }

  /**
   * Starts a lane for every free slot that READY work can fill. A lane is one p-queue job (the
   * queue's concurrency is the engine's limit) that runs claimed subtasks one after another
   * until none is left: p-queue bounds what runs, and its cost (~3 µs an item, PERF-NOTES) is
   * paid per lane, not per subtask. `now`: the clock, when the caller has just read it.
   */
  pump(now?: number): void {
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
      claimed = store.claimReady({ executor: this.executor, limit: free, now: now ?? clock.now() });
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

  /**
   * Lets the caller make this dispatcher's next claim itself (the engine saving a task and
   * claiming in one transaction): the request to make, or undefined when this dispatcher is
   * closed, full or already claiming. Until {@link endClaim}, it makes no claim of its own
   * (pumps asked for meanwhile run after it, as during any claim).
   */
  beginClaim(now: number): ClaimRequest | undefined {
    if (this.closed || this.claiming) return undefined;
    const free = this.options.concurrency - this.lanes;
    if (free <= 0) return undefined;
    this.claiming = true;
    return { executor: this.executor, limit: free, now };
  }

  /** Ends a claim begun with {@link beginClaim}: runs what it claimed (nothing when it failed). */
  endClaim(request: ClaimRequest, claims: readonly Claim[]): void {
    this.claiming = false;
    this.startLanes(claims, request.limit);
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
    // The clock, read once a turn: on a synchronous store, the end of one attempt, the claim of
    // the next and its start are one synchronous stretch. Undefined once anything was awaited.
    let now: number | undefined;
    // The next claim, when asked for before the end of the last attempt was answered: on a
    // store that answers later (a round trip), a lane asks for its next subtask as soon as it
    // has handed over a success, so that a store grouping what arrives together
    // (PostgresStore) ends one attempt and claims the next in one transaction.
    let next: Claim | undefined | Promise<Claim | undefined> | null = null;
    const claimEarly = () => {
      if (next === null) next = this.claimNext(undefined);
    };
    try {
      while (claim) {
        this.inFlight++;
        next = null;
        const attempt = this.begin(claim);
        if (attempt) {
          try {
            const outcome = await attempt.run('execute', now);
            now = this.options.clock.now();
            const ending = this.end(attempt, outcome, now, claimEarly);
            if (ending) {
              await ending;
              now = undefined;
            }
          } catch (thrown) {
            // Only a clock that throws gets here: end() logs its own failures.
            this.live.remove(attempt);
            this.bookkeepingFailed(claim, thrown);
            now = undefined;
          }
        } else {
          await this.runAttempt(claim, claimEarly);
          now = undefined;
        }
        this.inFlight--;
        if (this.retryWaitsForSlot) {
          this.retryWaitsForSlot = false;
          this.lookForRetries();
        }
        if (performance.now() - this.lastYield >= YIELD_EVERY_MS) {
          await this.yieldToEventLoop();
          now = undefined;
        }
        const taken = next !== null ? next : this.claimNext(now);
        if (taken instanceof Promise) {
          claim = await taken;
          now = undefined;
        } else {
          claim = taken;
        }
        // Work this lane does not take (a completion may unblock many) goes to other lanes.
        if (this.lanes < this.options.concurrency) this.pump(now);
      }
    } finally {
      this.lanes--;
    }
  }

  /**
   * Lets timers and I/O run. Lanes whose handlers settle at once chain microtasks without end,
   * which would starve the event loop (timeouts would fire late, an embedding server would not
   * answer); every lane passes through one shared setImmediate at least every
   * {@link YIELD_EVERY_MS} of busy time, so the microtask queue drains.
   */
  private yieldToEventLoop(): Promise<void> {
    this.yielding ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.yielding = undefined;
        this.lastYield = performance.now();
        resolve();
      }),
    );
    return this.yielding;
  }

  private claimNext(now: number | undefined): Claim | undefined | Promise<Claim | undefined> {
    if (this.closed) return undefined;
    const { store, clock } = this.options;
    try {
      const claimed = store.claimReady({
        executor: this.executor,
        limit: 1,
        now: now ?? clock.now(),
      });
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
    this.wakeTimer.wakeAt(clock.now() + 1000);
  }

  /** `handedOver`: see {@link end}. */
  private async runAttempt(claim: Claim, handedOver?: () => void): Promise<void> {
    const { task, subtask } = claim;
    const lease = this.leases?.hold(claim);
    try {
      if (this.unanswered.any) await this.unanswered.before(subtask);
      this.emitStarted(claim);
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
      this.live.add(attempt);
      const outcome = await attempt.run();
      await this.end(attempt, outcome, this.options.clock.now(), handedOver);
    } catch (thrown) {
      this.bookkeepingFailed(claim, thrown);
    } finally {
      if (lease) this.leases?.release(lease);
    }
  }

  /**
   * Starts the attempt of `claim` when nothing has to be awaited first: no lease to hold, no
   * write to wait for, no merge, a handler, not a rollback. That is the path of almost every
   * subtask, and it runs without an async frame of its own; the rest goes to
   * {@link runAttempt}.
   */
  private begin(claim: Claim): Attempt | undefined {
    const { subtask, input } = claim;
    if (
      this.leases ||
      this.unanswered.any ||
      input === undefined ||
      subtask.operation === Operation.ROLLBACK
    ) {
      return undefined;
    }
    const handler = this.options.handlers.get(subtask.className);
    if (!handler) return undefined;
    this.emitStarted(claim);
    const attempt = new Attempt(this.attemptHost, claim, input, handler);
    this.live.add(attempt);
    return attempt;
  }

  private emitStarted(claim: Claim): void {
    if (this.host.listenerCount('subtask.started') === 0) return;
    const { task, subtask } = claim;
    this.host.emit('subtask.started', {
      taskId: task.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      attempt: claim.attempt,
      executor: this.executor,
    });
  }

  /**
   * Records how an attempt ended. A success on a store that answers synchronously (the
   * in-memory one) is recorded here without an await; anything else returns the promise of
   * {@link endLater}. Never rejects: bookkeeping failures are logged. `handedOver` is called
   * when a success has been handed to the store and its answer is to come later (the lane then
   * asks for its next subtask at once: after the end, never before it).
   */
  private end(
    attempt: Attempt,
    outcome: AttemptOutcome,
    now: number,
    handedOver?: () => void,
  ): Promise<void> | undefined {
    this.live.remove(attempt);
    if (!outcome.ok || attempt.logWrites) return this.endLater(attempt, outcome, undefined);
    try {
      const result = this.complete(attempt, now);
      if (result instanceof Promise) {
        const later = this.endLater(attempt, outcome, result);
        handedOver?.();
        return later;
      }
      this.succeeded(attempt, result);
    } catch (thrown) {
      this.bookkeepingFailed(attempt.claim, thrown);
    }
    return undefined;
  }

  private async endLater(
    attempt: Attempt,
    outcome: AttemptOutcome,
    pending: Promise<TransitionResult> | undefined,
  ): Promise<void> {
    try {
      if (outcome.ok) {
        if (!pending) {
          if (attempt.logWrites) await attempt.logWrites;
          const result = this.complete(attempt, this.options.clock.now());
          if (!(result instanceof Promise)) {
            this.succeeded(attempt, result);
            return;
          }
          pending = result;
        }
        this.succeeded(attempt, await this.unanswered.writing(attempt, pending));
      } else if (!outcome.leaseLost) {
        if (attempt.cancelHook) await attempt.cancelHook;
        await this.persistFailure(
          attempt.claim,
          attempt.input,
          outcome.error,
          attempt.handler,
          attempt,
        );
      }
    } catch (thrown) {
      this.bookkeepingFailed(attempt.claim, thrown);
    }
  }

  /** Writes a successful attempt's result; the attempt is its own fence. */
  private complete(attempt: Attempt, now: number): MaybePromise<TransitionResult> {
    return this.options.store.completeAttempt(attempt, {
      input: attempt.input,
      output: attempt.output(),
      now,
    });
  }

  private bookkeepingFailed({ task, subtask }: Claim, thrown: unknown): void {
    this.options.logger.error('attempt bookkeeping failed', {
      taskId: task.id,
      subtaskId: subtask.id,
      error: toErrorInfo(thrown),
    });
  }

  /** The lease of an attempt of this engine is lost: it ends now and writes nothing. */
  private leaseLost(fence: AttemptFence): void {
    const attempt = this.live.find(fence.subtaskId);
    if (attempt?.runTime !== fence.runTime) return;
    attempt.loseLease();
    const { taskId, subtaskId, runTime } = fence;
    this.host.emit('subtask.leaseLost', { taskId, subtaskId, runTime });
  }

  /**
   * Fails an attempt whose lease expired (its engine died or stalled), now fenced to this
   * engine: retried by policy like any failed attempt; a rollback's or a cancel's is final.
   */
  private async failReaped(claim: Claim): Promise<void> {
    const { subtask } = claim;
    // This engine's own attempt, when it stalled past its lease: it ends here too.
    const local = this.live.find(subtask.id);
    if (local?.runTime === subtask.runTime) this.leaseLost(local);
    const message = `the lease of ${subtask.executor ?? 'its engine'} expired before the attempt ended`;
    const handler = this.options.handlers.get(subtask.className);
    try {
      if (subtask.status === SubtaskStatus.CANCELING) {
        const error = { name: 'CanceledError', message, code: ErrorCode.ATTEMPT_CANCELED };
        await this.persistFailure(claim, undefined, error, handler, undefined);
      } else if (subtask.operation === Operation.ROLLBACK) {
        const fence = this.fenceOf(claim);
        const ref = { taskId: fence.taskId, subtaskId: fence.subtaskId, runTime: fence.runTime };
        const error = { name: 'LeaseLostError', message, code: ErrorCode.ATTEMPT_LEASE_LOST };
        await this.writeLog(ref, `rollback failed [${error.code}]: ${message}`);
        const now = this.options.clock.now();
        const result = await this.unanswered.writing(
          fence,
          Promise.resolve(this.options.store.failAttempt(fence, { input: undefined, error, now })),
        );
        if (result.accepted) this.host.emit('subtask.rollbackFailed', { ...ref, error });
        this.host.applied(result.changes);
      } else {
        const error = { name: 'LeaseLostError', message, code: ErrorCode.ATTEMPT_LEASE_LOST };
        await this.persistFailure(claim, undefined, error, handler, undefined);
      }
    } catch (thrown) {
      this.options.logger.error('failing an expired attempt failed', {
        taskId: subtask.taskId,
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
    if (this.host.listenerCount('subtask.succeeded') > 0) {
      const { taskId, subtaskId, runTime } = ref;
      this.host.emit('subtask.succeeded', { taskId, subtaskId, runTime });
    }
    this.host.applied(result.changes);
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
    const result =
      pending instanceof Promise ? await this.unanswered.writing(fence, pending) : pending;
    const ref = { taskId: task.id, subtaskId: subtask.id, runTime: fence.runTime };
    if (!result.accepted) {
      this.reportLate(ref, { ok: false, error });
    } else if (retry) {
      this.host.emit('subtask.attemptFailed', {
        ...ref,
        attempt: claim.attempt,
        error,
        retryDelayMs: delay,
      });
      this.wakeTimer.wakeAt(now + delay);
    } else if (canceled) {
      this.host.emit('subtask.canceled', ref);
    } else {
      this.host.emit('subtask.failed', { ...ref, error });
    }
    this.host.applied(result.changes);
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
    this.host.emit('subtask.rollbackStarted', ref);
    const input = claim.output ?? claim.input ?? EMPTY_DELTA;
    let outcome: AttemptOutcome = { ok: true };
    let attempt: Attempt | undefined;
    if (handler?.rollback) {
      attempt = new Attempt(this.attemptHost, claim, input, handler);
      this.live.add(attempt);
      outcome = await attempt.run('rollback');
      this.live.remove(attempt);
      if (!outcome.ok && outcome.leaseLost) return;
      if (attempt.cancelHook) await attempt.cancelHook;
      if (attempt.logWrites) await attempt.logWrites;
    }
    const now = clock.now();
    let result: TransitionResult;
    if (outcome.ok) {
      result = await store.completeAttempt(fence, { input, output: input, now });
      if (result.accepted) this.host.emit('subtask.rollbackSucceeded', ref);
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
      if (result.accepted) this.host.emit('subtask.rollbackFailed', { ...ref, error });
    }
    if (!result.accepted) this.reportLate(ref, outcome);
    this.host.applied(result.changes);
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
    this.host.emit('subtask.log', entry);
    return this.options.store.appendLogs([entry]);
  }

  private reportLate({ taskId, subtaskId, runTime }: SubtaskRef, late: AttemptOutcome): void {
    this.host.emit('subtask.lateResult', {
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

  /** Claims what is due, then makes sure the engine wakes up for the next retry. */
  lookForRetries(): void {
    this.pump();
    void this.options.store.nextRetryAt().then((next) => {
      if (next === undefined) return;
      // A retry already due waits for a free slot; re-arming for it now would spin on
      // zero-delay timers until then, so the attempt that frees a slot looks again.
      if (next <= this.options.clock.now() && this.inFlight >= this.options.concurrency) {
        this.retryWaitsForSlot = true;
        return;
      }
      this.wakeTimer.wakeAt(next);
    });
  }
}
