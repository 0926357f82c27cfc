import type { ResolvedEngineOptions } from '../engine-options.js';
import { toErrorInfo } from '../error-info.js';
import type { AttemptFence, Claim, HeartbeatResult, Store } from '../store.js';

/** Most expired attempts one reaper pass takes over. */
const REAP_LIMIT = 100;

/** What the lease keeper needs from the dispatcher. */
export interface LeaseKeeperHost {
  /** The lease of a held attempt is lost: abort it and discard its result. */
  leaseLost(fence: AttemptFence): void;
  /** Another engine canceled a held attempt. */
  canceled(fence: AttemptFence): void;
  /** An attempt whose lease expired was taken over by this engine: fail it. */
  reaped(claim: Claim): Promise<void>;
  /** A pass of the reaper: look for work too, in case a notice was missed. */
  lookForWork(): void;
}

/** A {@link Store} that leases its claims. */
type LeasingStore = Store & Required<Pick<Store, 'heartbeat' | 'leaseMs'>>;

/** Whether `store` leases its claims (and so needs heartbeats). */
export function leases(store: Store): store is LeasingStore {
  return typeof store.heartbeat === 'function' && typeof store.leaseMs === 'number';
}

/**
 * Keeps the leases of this engine's attempts alive on a store that leases claims: a heartbeat
 * every third of the lease extends them all in one call, and reports attempts whose lease is
 * lost (aborted by the dispatcher) or that another engine canceled. When heartbeats fail for a
 * whole lease, the attempts are given up as lost: other engines take them over by then. A
 * reaper pass every half lease takes over attempts of engines that died (expired leases) and
 * fails them, so that they are retried by policy.
 */
export class LeaseKeeper {
  private readonly held = new Map<number, AttemptFence>();
  private beatTimer: unknown;
  private reapTimer: unknown;
  private beating: Promise<void> | undefined;
  private lastBeat: number;
  private closed = false;

  constructor(
    private readonly store: LeasingStore,
    private readonly options: ResolvedEngineOptions,
    private readonly host: LeaseKeeperHost,
  ) {
    this.lastBeat = options.clock.now();
    this.scheduleBeat();
    if (store.reapExpired) this.scheduleReap(0);
  }

  /** Starts keeping the lease of `claim`'s attempt; returns its fence. */
  hold({ task, subtask }: Claim): AttemptFence {
    const fence: AttemptFence = {
      taskId: task.id,
      subtaskId: subtask.id,
      runTime: subtask.runTime,
      executor: this.options.executor,
    };
    this.held.set(subtask.id, fence);
    return fence;
  }

  /** Stops keeping the lease of an attempt that has ended (its write was answered). */
  release(fence: AttemptFence): void {
    if (this.held.get(fence.subtaskId) === fence) this.held.delete(fence.subtaskId);
  }

  /** Heartbeats now (another engine canceled something: learn which at once). */
  beatNow(): void {
    if (this.closed || this.beating) return;
    this.beating = this.beat().finally(() => {
      this.beating = undefined;
    });
  }

  close(): void {
    this.closed = true;
    const { clock } = this.options;
    if (this.beatTimer !== undefined) clock.clearTimeout(this.beatTimer);
    if (this.reapTimer !== undefined) clock.clearTimeout(this.reapTimer);
  }

  private scheduleBeat(): void {
    if (this.closed) return;
    this.beatTimer = this.options.clock.setTimeout(
      () => {
        this.beatTimer = undefined;
        this.beatNow();
        void (this.beating ?? Promise.resolve()).then(() => this.scheduleBeat());
      },
      Math.max(1, Math.floor(this.store.leaseMs / 3)),
    );
  }

  private async beat(): Promise<void> {
    const { clock, logger } = this.options;
    const fences = [...this.held.values()];
    if (fences.length === 0) {
      this.lastBeat = clock.now();
      return;
    }
    let result: HeartbeatResult;
    try {
      result = await this.store.heartbeat(fences);
    } catch (error) {
      logger.warn('heartbeat failed', { attempts: fences.length, error: toErrorInfo(error) });
      // Not extended for a whole lease: other engines may take them over now.
      if (clock.now() - this.lastBeat >= this.store.leaseMs) {
        for (const fence of fences) this.lose(fence);
      }
      return;
    }
    this.lastBeat = clock.now();
    for (const fence of result.lost) this.lose(fence);
    for (const fence of result.canceled) this.host.canceled(fence);
  }

  private lose(fence: AttemptFence): void {
    if (this.held.get(fence.subtaskId) !== fence) return;
    this.held.delete(fence.subtaskId);
    this.host.leaseLost(fence);
  }

  private scheduleReap(delay: number): void {
    if (this.closed) return;
    this.reapTimer = this.options.clock.setTimeout(() => {
      this.reapTimer = undefined;
      void this.reap().then(
        (full) => this.scheduleReap(full ? 0 : Math.max(1, Math.floor(this.store.leaseMs / 2))),
        () => this.scheduleReap(Math.max(1, Math.floor(this.store.leaseMs / 2))),
      );
    }, delay);
  }

  /** One reaper pass; true when it found a full batch (more may be waiting). */
  private async reap(): Promise<boolean> {
    if (this.closed) return false;
    const { clock, executor, logger } = this.options;
    this.host.lookForWork();
    let claims: Claim[];
    try {
      claims = await (this.store.reapExpired as NonNullable<Store['reapExpired']>)({
        executor,
        limit: REAP_LIMIT,
        now: clock.now(),
      });
    } catch (error) {
      logger.warn('reaping expired leases failed', { error: toErrorInfo(error) });
      return false;
    }
    await Promise.all(claims.map((claim) => this.host.reaped(claim)));
    return claims.length === REAP_LIMIT;
  }
}
