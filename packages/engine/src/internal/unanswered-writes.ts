import type { AttemptFence, Claim } from '../store.js';

/**
 * Writes an asynchronous store has not answered yet, by subtask id. What they make claimable
 * (a retry, a downstream) may be claimed by another lane before their events are emitted; such
 * a claim waits for them, so that every subtask's events stay in order.
 */
export class UnansweredWrites {
  private readonly pending = new Map<number, Promise<unknown>>();

  /** Whether any write is unanswered (the hot path checks this before anything else). */
  get any(): boolean {
    return this.pending.size > 0;
  }

  /** Awaits a store write, registered until the caller has emitted its events. */
  async writing<T>(fence: AttemptFence, write: Promise<T>): Promise<T> {
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.pending.set(fence.subtaskId, settled);
    try {
      return await write;
    } finally {
      // The caller emits right after this resumes; claims waiting on `settled` resume later.
      if (this.pending.get(fence.subtaskId) === settled) this.pending.delete(fence.subtaskId);
    }
  }

  /** Waits for unanswered writes about a claimed subtask or its upstreams. */
  async before(subtask: Claim['subtask']): Promise<void> {
    const waits: Promise<unknown>[] = [];
    const own = this.pending.get(subtask.id);
    if (own) waits.push(own);
    for (const id of subtask.upstreams) {
      const upstream = this.pending.get(id);
      if (upstream) waits.push(upstream);
    }
    if (waits.length > 0) {
      await Promise.all(waits);
      // Let the writers' continuations (which emit) run first.
      await Promise.resolve();
    }
  }
}
