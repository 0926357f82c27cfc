import { applyWrites, type ContextDelta } from '../context.js';
import type { Clock } from '../clock.js';
import { timeoutErrorInfo, toErrorInfo, type ErrorInfo } from '../error-info.js';
import { DagopsError, ErrorCode } from '../errors.js';
import type { Handler, HandlerContext } from '../handler.js';
import type { Claim } from '../store.js';
import type { DeadlineEntry, DeadlineList, Deadlines } from './deadlines.js';
import type { LiveEntry } from './live-attempts.js';

/** How an attempt ended, as far as its handler is concerned. */
export type AttemptOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly error: ErrorInfo;
      readonly timedOut?: true;
      readonly canceled?: true;
      /** The engine lost the attempt's lease: another may run it; nothing is written. */
      readonly leaseLost?: true;
    };

/** Which of the handler's functions an attempt runs. */
export type AttemptKind = 'execute' | 'rollback';

/** What an attempt needs from the engine that runs it. */
export interface AttemptHost {
  readonly clock: Clock;
  /** Where attempts wait for their timeout. */
  readonly deadlines: Deadlines;
  /** The handler settled after the attempt had ended; its result is discarded. */
  attemptSettledLate(attempt: Attempt, outcome: AttemptOutcome): void;
  /** The handler logged a line. */
  attemptLogged(attempt: Attempt, message: string): void;
}

const OK: AttemptOutcome = Object.freeze({ ok: true });

type Resolve = (outcome: AttemptOutcome) => void;
let captured: Resolve | undefined;
/** A Promise executor that closes over nothing: one closure less per attempt. */
const capture = (resolve: Resolve): void => {
  captured = resolve;
};

/** `map[key]` when it is the map's own: a key like `constructor` must not find Object.prototype's. */
function own<T>(map: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
}

/**
 * One execution of one subtask, and the {@link HandlerContext} its handler sees. It bounds the
 * handler by the node's timeout: at the deadline the attempt fails with a timeout error and the
 * signal is aborted, whatever the handler does; a result arriving later goes to
 * {@link AttemptHost.attemptSettledLate}. The `AbortSignal` is created only when a handler
 * reads it (reading `.signal` costs ~2.6 µs; PERF-NOTES). Writes after the end are ignored.
 * One object per attempt, no per-attempt closures beyond the promise plumbing and no timer of
 * its own (it waits in the engine's {@link Deadlines}): this is the engine's hot path.
 */
export class Attempt implements HandlerContext, DeadlineEntry, LiveEntry {
  readonly taskId: number;
  readonly subtaskId: number;
  readonly runTime: number;
  /** The engine that claimed it: with the three ids above, the attempt is its own fence. */
  readonly executor: string;
  readonly nodeKey: string;
  readonly parallelIdx: number;
  /** Pending log writes, chained so that lines are stored in order. */
  logWrites: Promise<void> | undefined;
  /** Set by {@link cancel}: settles when the handler's `cancel` has returned (or timed out). */
  cancelHook: Promise<void> | undefined;
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private strings: Map<string, string> | undefined;
  private lists: Map<string, readonly string[]> | undefined;
  private resolve: Resolve | undefined;
  deadline = 0;
  deadlineSeq = 0;
  deadlineList: DeadlineList | undefined;
  prevDeadline: DeadlineEntry | undefined;
  nextDeadline: DeadlineEntry | undefined;
  liveSlot = -1;

  constructor(
    private readonly host: AttemptHost,
    readonly claim: Claim,
    readonly input: ContextDelta,
    readonly handler: Handler,
  ) {
    const { subtask } = claim;
    this.taskId = subtask.taskId;
    this.subtaskId = subtask.id;
    this.runTime = subtask.runTime;
    this.executor = subtask.executor ?? '';
    this.nodeKey = subtask.nodeKey;
    this.parallelIdx = subtask.parallelIdx;
  }

  get idempotencyKey(): string {
    return `${this.taskId}:${this.subtaskId}:${this.runTime}`;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /**
   * Runs the handler's `execute` (or `rollback`); resolves at its end, at the deadline (the
   * node's timeout after `now`), or at a cancel, whichever comes first. A handler without
   * `rollback` has nothing to undo.
   */
  run(kind: AttemptKind = 'execute', now = this.host.clock.now()): Promise<AttemptOutcome> {
    const outcome = new Promise<AttemptOutcome>(capture);
    this.resolve = captured;
    captured = undefined;
    this.host.deadlines.add(this, this.claim.subtask.timeout * 1000, now);
    try {
      const result: unknown =
        kind === 'execute' ? this.handler.execute(this) : this.handler.rollback?.(this);
      // Inside the try: a thenable whose `then` throws fails the attempt too.
      if (
        result !== null &&
        typeof (result as { then?: unknown } | undefined)?.then === 'function'
      ) {
        (result as PromiseLike<unknown>).then(
          () => this.settle(OK),
          (thrown: unknown) => this.settle({ ok: false, error: toErrorInfo(thrown) }),
        );
        return outcome;
      }
    } catch (thrown) {
      this.settle({ ok: false, error: toErrorInfo(thrown) });
      return outcome;
    }
    this.settle(OK);
    return outcome;
  }

  /**
   * Ends a running attempt as canceled: aborts the signal with a cancel reason, then calls the
   * handler's `cancel` (bounded by the node's timeout; what it throws is ignored). The handler's
   * own result, when it comes, is late.
   */
  cancel(): void {
    if (!this.resolve) return;
    const message = 'the attempt was canceled';
    this.abort(new DagopsError(ErrorCode.ATTEMPT_CANCELED, message));
    this.host.deadlines.remove(this);
    this.cancelHook = this.callCancelHook();
    this.finish({
      ok: false,
      canceled: true,
      error: { name: 'CanceledError', message, code: ErrorCode.ATTEMPT_CANCELED },
    });
  }

  /**
   * Ends a running attempt whose lease the engine lost (another engine may run the subtask
   * again): aborts the signal with a lease-lost reason. The handler's result is late.
   */
  loseLease(): void {
    if (!this.resolve) return;
    const message = 'the attempt lost its lease: another engine may run the subtask again';
    this.abort(new DagopsError(ErrorCode.ATTEMPT_LEASE_LOST, message));
    this.host.deadlines.remove(this);
    this.finish({
      ok: false,
      leaseLost: true,
      error: { name: 'LeaseLostError', message, code: ErrorCode.ATTEMPT_LEASE_LOST },
    });
  }

  private callCancelHook(): Promise<void> {
    const { handler } = this;
    if (!handler.cancel) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.host.clock.setTimeout(resolve, this.claim.subtask.timeout * 1000);
      const done = () => {
        this.host.clock.clearTimeout(timer);
        resolve();
      };
      try {
        Promise.resolve(handler.cancel?.(this)).then(done, done);
      } catch {
        done();
      }
    });
  }

  /** Aborts the signal (now, or when it is first read) with `reason`. */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  /** The input with this attempt's writes applied. */
  output(): ContextDelta {
    return applyWrites(this.input, this.strings, this.lists);
  }

  get(key: string, listKey?: string): string | undefined {
    if (listKey !== undefined && this.parallelIdx >= 0) {
      const element = this.getList(listKey)?.[this.parallelIdx];
      if (element !== undefined) return element;
    }
    return (
      this.strings?.get(key) ??
      own(this.input.stringMap, key) ??
      own(this.claim.task.context.stringMap, key)
    );
  }

  getList(key: string): readonly string[] | undefined {
    return (
      this.lists?.get(key) ??
      own(this.input.listMap, key) ??
      own(this.claim.task.context.listMap, key)
    );
  }

  set(key: string, value: string): void {
    if (typeof key !== 'string' || typeof value !== 'string') {
      throw new DagopsError(
        ErrorCode.TASK_CONTEXT_ERROR,
        `context values are strings: set(${JSON.stringify(key)}, ${typeof value}) refused`,
        { target: String(key), nonRetryable: true },
      );
    }
    if (this.resolve) (this.strings ??= new Map<string, string>()).set(key, value);
  }

  setList(key: string, values: readonly string[]): void {
    if (!Array.isArray(values) || values.some((value) => typeof value !== 'string')) {
      throw new DagopsError(
        ErrorCode.TASK_CONTEXT_ERROR,
        `context lists hold strings: setList(${JSON.stringify(key)}, …) refused`,
        { target: String(key), nonRetryable: true },
      );
    }
    if (this.resolve)
      (this.lists ??= new Map<string, readonly string[]>()).set(key, values.slice());
  }

  log(message: string): void {
    this.host.attemptLogged(this, String(message));
  }

  /** The deadline has passed: the attempt fails with a timeout error (see {@link Deadlines}). */
  expire(): void {
    if (!this.resolve) return;
    const error = timeoutErrorInfo(this.claim.subtask.timeout);
    this.abort(new DagopsError(ErrorCode.ATTEMPT_TIMEOUT, error.message));
    this.finish({ ok: false, error, timedOut: true });
  }

  private settle(outcome: AttemptOutcome): void {
    if (!this.resolve) {
      this.host.attemptSettledLate(this, outcome);
      return;
    }
    this.host.deadlines.remove(this);
    this.finish(outcome);
  }

  private finish(outcome: AttemptOutcome): void {
    const resolve = this.resolve as (outcome: AttemptOutcome) => void;
    this.resolve = undefined;
    resolve(outcome);
  }
}
