import type { Clock, TimerHandle } from '../clock.js';

/**
 * One timer that calls `wake` at the earliest time asked for (a retry falling due, a claim to
 * try again): asking for a later time while an earlier one is set changes nothing.
 */
export class WakeTimer {
  private at: number | undefined;
  private timer: TimerHandle;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly wake: () => void,
  ) {}

  /** Makes sure `wake` runs at `at` (clock time) or earlier. */
  wakeAt(at: number): void {
    if (this.stopped || (this.at !== undefined && this.at <= at)) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.at = at;
    this.timer = this.clock.setTimeout(
      () => {
        this.at = undefined;
        this.timer = undefined;
        this.wake();
      },
      Math.max(0, at - this.clock.now()),
    );
  }

  /** Clears the timer; later requests are ignored. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.at = undefined;
  }
}
