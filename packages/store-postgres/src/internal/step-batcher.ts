import type { StatusChange, TransitionResult } from '@dagops/engine';
import type { ClaimRow } from './records.js';

/** The end of one attempt, as the `finish` SQL function takes it. */
export interface FinishItem {
  /** Task id. */
  readonly t: number;
  /** Subtask id. */
  readonly s: number;
  /** runTime. */
  readonly r: number;
  /** Executor. */
  readonly e: string;
  /** Completed or failed. */
  readonly k: 'c' | 'f';
  readonly in?: unknown;
  readonly out?: unknown;
  readonly err?: unknown;
  /** Retry at (epoch ms). */
  readonly ra?: number;
  readonly now: number;
}

/** A log line, as the `append_logs` SQL function takes it. */
export interface LogLine {
  readonly t: number;
  readonly s: number;
  readonly r: number;
  readonly time: number;
  readonly m: string;
}

/** What one round trip is asked for. */
export interface StepRequest {
  readonly logs: readonly LogLine[];
  readonly items: readonly FinishItem[];
  /** Claims, one entry per executor. */
  readonly claims: readonly { readonly e: string; readonly n: number }[];
  readonly now: number;
}

/** What one round trip answers: per accepted item its changes; claims per request entry. */
export interface StepResponse {
  readonly finished: readonly (readonly [number, readonly StatusChange[]])[];
  readonly claims: readonly (readonly ClaimRow[])[];
}

interface Waiter<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: unknown) => void;
}

interface ClaimWaiter extends Waiter<ClaimRow[]> {
  readonly executor: string;
  readonly limit: number;
  readonly now: number;
  /** Ends of attempts asked for before this claim (counted from the batcher's start). */
  readonly after: number;
}

const REFUSED: TransitionResult = Object.freeze({ accepted: false, changes: Object.freeze([]) });

/**
 * Groups what the engine's lanes ask for at about the same time — log lines, ends of attempts,
 * claims — into one call of the `step` SQL function: one transaction, one round trip. At most
 * `maxInFlight` steps run at a time; what arrives meanwhile goes into the next (group commit
 * without a timer: the busier the engine, the bigger the groups). Each end of attempt is still
 * fenced and answered on its own. The function ends attempts before it claims, and a claim goes
 * in no step before one holding every end asked for ahead of it: a lane that hands over a
 * success and asks for its next subtask at once has both in one transaction, the end first.
 */
export class StepBatcher {
  private logs: LogLine[] = [];
  private logWaiters: Waiter<void>[] = [];
  private items: FinishItem[] = [];
  private itemWaiters: Waiter<TransitionResult>[] = [];
  private claims: ClaimWaiter[] = [];
  /** Ends of attempts asked for so far, and taken into steps so far. */
  private itemsAsked = 0;
  private itemsTaken = 0;
  /** Steps under way (at most `maxInFlight`). */
  private running = 0;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly step: (request: StepRequest) => Promise<StepResponse>,
    private readonly maxBatch: number,
    private readonly maxInFlight = 1,
  ) {}

  appendLogs(lines: readonly LogLine[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.logs.push(...lines);
      this.logWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  finish(item: FinishItem): Promise<TransitionResult> {
    return new Promise<TransitionResult>((resolve, reject) => {
      this.items.push(item);
      this.itemsAsked++;
      this.itemWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  claim(executor: string, limit: number, now: number): Promise<ClaimRow[]> {
    return new Promise<ClaimRow[]>((resolve, reject) => {
      this.claims.push({ executor, limit, now, after: this.itemsAsked, resolve, reject });
      this.kick();
    });
  }

  /** Resolves once everything asked for so far has been answered. */
  idle(): Promise<void> {
    if (this.running === 0 && !this.scheduled) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.running >= this.maxInFlight || this.scheduled) return;
    this.scheduled = true;
    // After the current macrotask: what the other lanes ask for in it joins this step.
    setImmediate(() => {
      this.scheduled = false;
      if (!this.pending()) {
        this.settleIdle();
        return;
      }
      this.running++;
      void this.flush().finally(() => {
        this.running--;
        if (this.pending()) this.kick();
        else this.settleIdle();
      });
      if (this.pending()) this.kick();
    });
  }

  private pending(): boolean {
    return this.logs.length > 0 || this.items.length > 0 || this.claims.length > 0;
  }

  private settleIdle(): void {
    if (this.running > 0 || this.scheduled) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private async flush(): Promise<void> {
    const logs = this.logs;
    const logWaiters = this.logWaiters;
    this.logs = [];
    this.logWaiters = [];
    const items = this.items.slice(0, this.maxBatch);
    const itemWaiters = this.itemWaiters.slice(0, this.maxBatch);
    this.items = this.items.slice(items.length);
    this.itemWaiters = this.itemWaiters.slice(items.length);
    this.itemsTaken += items.length;
    // A claim never goes before an end asked for ahead of it (a lane claims its next subtask
    // right after handing over the end of its last: the end must be written first, or the
    // engine would hold more claims than its concurrency). Past maxBatch, both wait.
    let go = this.claims.length;
    while (go > 0 && (this.claims[go - 1] as ClaimWaiter).after > this.itemsTaken) go--;
    const claims = this.claims.slice(0, go);
    this.claims = this.claims.slice(go);
    const byExecutor = new Map<string, number>();
    let now = 0;
    for (const claim of claims) {
      byExecutor.set(claim.executor, (byExecutor.get(claim.executor) ?? 0) + claim.limit);
      now = Math.max(now, claim.now);
    }
    const requested = [...byExecutor].map(([e, n]) => ({ e, n }));
    let response: StepResponse;
    try {
      response = await this.step({ logs, items, claims: requested, now });
    } catch (error) {
      for (const waiter of [...logWaiters, ...itemWaiters, ...claims]) waiter.reject(error);
      return;
    }
    for (const waiter of logWaiters) waiter.resolve();
    const results = new Array<StatusChange[] | undefined>(items.length);
    for (const [index, changes] of response.finished) {
      const known = results[index];
      if (known) known.push(...changes);
      else results[index] = [...changes];
    }
    itemWaiters.forEach((waiter, index) => {
      const changes = results[index];
      waiter.resolve(changes ? { accepted: true, changes } : REFUSED);
    });
    const taken = new Map<string, { rows: readonly ClaimRow[]; next: number }>();
    requested.forEach(({ e }, index) =>
      taken.set(e, { rows: response.claims[index] ?? [], next: 0 }),
    );
    for (const claim of claims) {
      const pool = taken.get(claim.executor) as { rows: readonly ClaimRow[]; next: number };
      const mine = pool.rows.slice(pool.next, pool.next + claim.limit);
      pool.next += mine.length;
      claim.resolve(mine);
    }
  }
}
