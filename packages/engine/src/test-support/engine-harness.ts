/**
 * Helpers for the runner's tests: a manual clock that can be stepped timer by timer with the
 * engine's promise chains settled between timers (so a timeout fires at its deadline and the
 * failure is recorded at that instant), a clock-based sleep for handlers, an event recorder and
 * a logger that keeps what it is told.
 */
import { createManualClock, type Clock } from '../clock.js';
import type { Engine } from '../engine.js';
import type { EngineEvents, Logger } from '../events.js';

/** Lets every pending promise chain (and `setImmediate` callback) run. */
export async function flush(rounds = 8): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A manual clock that knows when its next timer is due. */
export interface SteppedClock extends Clock {
  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined;
  /**
   * Moves time to `target` one due instant at a time, settling promises after each, so that
   * what a timer callback starts happens at the timer's instant.
   */
  advanceTo(target: number): Promise<void>;
  /** {@link advanceTo} `now + ms`. */
  advanceBy(ms: number): Promise<void>;
  /** Steps from timer to timer until `done()` holds or no timer is left; false if it never held. */
  runUntil(done: () => boolean, limitMs?: number): Promise<boolean>;
  /** Resolves after `ms` of clock time. */
  sleep(ms: number): Promise<void>;
}

/** A {@link SteppedClock} over `createManualClock(start)`. */
export function steppedClock(start?: number): SteppedClock {
  const clock = createManualClock(start);
  const due = new Map<unknown, number>();
  const nextDue = () => {
    let best: number | undefined;
    for (const at of due.values()) if (best === undefined || at < best) best = at;
    return best;
  };
  const self: SteppedClock = {
    now: () => clock.now(),
    setTimeout(callback, delayMs) {
      const handle: unknown = clock.setTimeout(() => {
        due.delete(handle);
        callback();
      }, delayMs);
      due.set(handle, clock.now() + Math.max(0, delayMs));
      return handle;
    },
    clearTimeout(handle) {
      due.delete(handle);
      clock.clearTimeout(handle);
    },
    nextDue,
    async advanceTo(target) {
      await flush();
      for (let next = nextDue(); next !== undefined && next <= target; next = nextDue()) {
        clock.advance(Math.max(0, next - clock.now()));
        await flush();
      }
      if (target > clock.now()) clock.advance(target - clock.now());
      await flush();
    },
    advanceBy(ms) {
      return self.advanceTo(clock.now() + ms);
    },
    async runUntil(done, limitMs = 10 * 24 * 3600 * 1000) {
      const limit = clock.now() + limitMs;
      await flush();
      while (!done()) {
        const next = nextDue();
        if (next === undefined || next > limit) return false;
        clock.advance(Math.max(0, next - clock.now()));
        await flush();
      }
      return true;
    },
    sleep(ms) {
      return new Promise<void>((resolve) => self.setTimeout(resolve, ms));
    },
  };
  return self;
}

/** One recorded event: its name, payload and the clock time it was seen at. */
export type RecordedEvent = {
  [K in keyof EngineEvents]: { readonly name: K; readonly at: number; readonly data: EngineEvents[K][0] };
}[keyof EngineEvents];

const EVENT_NAMES: readonly (keyof EngineEvents)[] = [
  'task.created',
  'task.statusChanged',
  'task.finished',
  'subtask.ready',
  'subtask.started',
  'subtask.log',
  'subtask.attemptFailed',
  'subtask.succeeded',
  'subtask.failed',
  'subtask.lateResult',
  'subtask.statusChanged',
];

/** Records every event `engine` emits, in order, with `clock.now()`. */
export function recordEvents(engine: Engine, clock: Clock): RecordedEvent[] {
  const events: RecordedEvent[] = [];
  for (const name of EVENT_NAMES) {
    engine.on(name, (data: unknown) => {
      events.push({ name, at: clock.now(), data } as RecordedEvent);
    });
  }
  return events;
}

/** Events of one kind, with their payload typed. */
export function eventsNamed<K extends keyof EngineEvents>(
  events: readonly RecordedEvent[],
  name: K,
): { readonly at: number; readonly data: EngineEvents[K][0] }[] {
  return events.filter((event) => event.name === name) as unknown as {
    readonly at: number;
    readonly data: EngineEvents[K][0];
  }[];
}

/** A {@link Logger} that keeps every call. */
export function memoryLogger(): Logger & {
  readonly lines: { level: 'error' | 'warn'; message: string; details?: Record<string, unknown> }[];
} {
  const lines: {
    level: 'error' | 'warn';
    message: string;
    details?: Record<string, unknown>;
  }[] = [];
  return {
    lines,
    error: (message, details) =>
      lines.push({ level: 'error', message, ...(details ? { details } : {}) }),
    warn: (message, details) =>
      lines.push({ level: 'warn', message, ...(details ? { details } : {}) }),
  };
}
