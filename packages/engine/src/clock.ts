/** Opaque handle of a timer set through a {@link Clock}. */
export type TimerHandle = unknown;

/**
 * Time as the engine sees it. Inject a {@link ManualClock} to make timeouts and backoff
 * deterministic in tests.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `callback` after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer; unknown or fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
  /**
   * Milliseconds on the timers' own time base, which never jumps (a monotonic clock), for the
   * deadlines of attempts: a wall clock set forward must not time them out early. When absent,
   * deadlines use {@link Clock.now} (right for a clock whose timers follow `now`, as a
   * {@link ManualClock}'s do).
   */
  monotonicNow?(): number;
}

/** The real clock: `Date.now`, the global timers, and `performance.now` for deadlines. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonicNow: () => performance.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A clock that only moves when told to; timers fire in due order during {@link advance}. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void;
  /** Moves time forward to the next timer and fires it; false when no timer is set. */
  advanceToNextTimer(): boolean;
  /** Number of timers set and not yet fired or cleared. */
  pendingTimers(): number;
}

interface ManualTimer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/**
 * Creates a {@link ManualClock} starting at `start` epoch milliseconds.
 *
 * @example
 * const clock = createManualClock();
 * clock.setTimeout(() => console.log('fired'), 1000);
 * clock.advance(1000); // prints 'fired'
 */
export function createManualClock(start = Date.UTC(2021, 8, 3, 6, 27, 59, 687)): ManualClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, ManualTimer>();
  const nextDue = (): ManualTimer | undefined => {
    let best: ManualTimer | undefined;
    for (const timer of timers.values()) {
      if (!best || timer.at < best.at || (timer.at === best.at && timer.seq < best.seq))
        best = timer;
    }
    return best;
  };
  const fire = (timer: ManualTimer) => {
    timers.delete(timer.seq);
    now = Math.max(now, timer.at);
    timer.callback();
  };
  return {
    now: () => now,
    setTimeout(callback, delayMs) {
      const timer = { at: now + Math.max(0, delayMs), seq: seq++, callback };
      timers.set(timer.seq, timer);
      return timer.seq;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const target = now + ms;
      for (let timer = nextDue(); timer && timer.at <= target; timer = nextDue()) fire(timer);
      now = target;
    },
    advanceToNextTimer() {
      const timer = nextDue();
      if (!timer) return false;
      fire(timer);
      return true;
    },
    pendingTimers: () => timers.size,
  };
}
