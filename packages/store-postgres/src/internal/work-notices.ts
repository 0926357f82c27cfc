/**
 * Paces the `w` (work) notices of one store's hot-path steps. Every transaction that NOTIFYs
 * holds the database's notification-queue lock until its commit is flushed, so the notifying
 * commits of all engines go one at a time; with several engines open, every step notified.
 * Now a step notifies only when the last notice is at least `everyMs` old; a step kept quiet is
 * followed by one notice at the end of that window (sent once the step has committed, so that
 * what it made READY is visible to whoever wakes). Another engine hears of new work at most
 * `everyMs` late; a busy engine claims by itself anyway.
 */
export class WorkNotices {
  private lastSent = Number.NEGATIVE_INFINITY;
  private trailing: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  /**
   * @param everyMs the shortest time between two notices of this store.
   * @param send sends one notice on its own (a transaction that only notifies).
   * @param now a monotonic clock, ms.
   */
  constructor(
    private readonly everyMs: number,
    private readonly send: () => Promise<unknown>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether the step about to run may notify; if so, it counts as this window's notice. */
  mayNotify(): boolean {
    const at = this.now();
    if (at - this.lastSent < this.everyMs) return false;
    this.lastSent = at;
    return true;
  }

  /** After a step kept quiet has committed: makes sure a notice follows at the window's end. */
  keptQuiet(): void {
    if (this.trailing !== undefined || this.stopped) return;
    const wait = Math.max(0, this.lastSent + this.everyMs - this.now());
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      this.lastSent = this.now();
      // Lost only with the connection: the next step's notice, or the others' claims, follow.
      this.send().catch(() => {});
    }, wait);
  }

  /** Sends the pending notice now, if any, and sends no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.trailing === undefined) return;
    clearTimeout(this.trailing);
    this.trailing = undefined;
    await this.send().catch(() => {});
  }
}
