/**
 * Helpers for the runner's tests: a manual clock that can be stepped timer by timer with the
 * engine's promise chains settled between timers (so a timeout fires at its deadline and the
 * failure is recorded at that instant), a clock-based sleep for handlers, an event recorder and
 * a logger that keeps what it is told.
 */
import { createManualClock, type Clock } from '../clock.js';
import type { Engine } from '../engine.js';
import type { EngineEvents, Logger } from '../events.js';
import type { Store } from '../store.js';

/** Lets every pending promise chain (and `setImmediate` callback) run. */
export async function flush(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A manual clock that knows when its next timer is due. */
export interface SteppedClock extends Clock {
  /** Due time of the earliest pending timer, if any. */
  nextDue(): number | undefined;
  /**
   * Moves time to `target` one due instant at a time, settling promises after each, so that
   * what a timer callback starts happens at the timer's instant. Throws after
   * {@link MAX_STEPS} steps (a timer that keeps re-arming itself without time moving on).
   */
  advanceTo(target: number): Promise<void>;
  /** {@link advanceTo} `now + ms`. */
  advanceBy(ms: number): Promise<void>;
  /**
   * Steps from timer to timer until `done()` holds; false if it never did (no timer left,
   * `limitMs` of clock time passed, or {@link MAX_STEPS} steps taken).
   */
  runUntil(done: () => boolean, limitMs?: number): Promise<boolean>;
  /** Resolves after `ms` of clock time. */
  sleep(ms: number): Promise<void>;
}

/** Most timer steps one call of a {@link SteppedClock} takes. */
export const MAX_STEPS = 20_000;

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
      let steps = 0;
      for (let next = nextDue(); next !== undefined && next <= target; next = nextDue()) {
        if (++steps > MAX_STEPS) throw new Error(`no progress after ${MAX_STEPS} timer steps`);
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
      for (let steps = 0; !done(); steps++) {
        const next = nextDue();
        if (next === undefined || next > limit || steps >= MAX_STEPS) return false;
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
  [K in keyof EngineEvents]: {
    readonly name: K;
    readonly at: number;
    readonly data: EngineEvents[K][0];
  };
}[keyof EngineEvents];

/** The events of the runner (issue 3); the recorder listens to these. */
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
): Extract<RecordedEvent, { readonly name: K }>[] {
  return events.filter(
    (event): event is Extract<RecordedEvent, { readonly name: K }> => event.name === name,
  );
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

/**
 * A {@link Store} that answers with `overrides` where given and forwards every other call to
 * `inner` (a Proxy, so it keeps up with methods added to the interface).
 */
export function overrideStore(inner: Store, overrides: Partial<Store>): Store {
  return new Proxy(inner, {
    get(target, key) {
      if (Object.hasOwn(overrides, key)) return overrides[key as keyof Store];
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}
