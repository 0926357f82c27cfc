import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from './clock.js';
import { DagopsError, ErrorCode } from './errors.js';
import { consoleLogger, type Logger } from './events.js';
import { HandlerRegistry } from './handler.js';
import { describeValue } from './internal/describe-value.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './store.js';

/** Options of an {@link Engine}. */
export interface EngineOptions {
  /** Where state lives. @default a new MemoryStore */
  readonly store?: Store;
  /** Handlers by className. @default a registry with only the WaitNode barrier */
  readonly handlers?: HandlerRegistry;
  /** Time source for timestamps, timeouts and backoff. @default systemClock */
  readonly clock?: Clock;
  /** This engine's identity, recorded as `executor`. @default `${hostname}:${pid}:${random}` */
  readonly executor?: string;
  /** Most subtasks RUNNING at once on this engine, across all tasks. @default 32 */
  readonly concurrency?: number;
  /** Where survivable problems are reported. @default consoleLogger */
  readonly logger?: Logger;
  /** UTC offset of the timestamps in task JSON, minutes east. @default this process's offset */
  readonly utcOffsetMinutes?: number;
}

/** {@link EngineOptions} with every default applied. */
export interface ResolvedEngineOptions {
  readonly store: Store;
  readonly handlers: HandlerRegistry;
  readonly clock: Clock;
  readonly executor: string;
  readonly concurrency: number;
  readonly logger: Logger;
  readonly utcOffsetMinutes: number | undefined;
}

/** Default of {@link EngineOptions.concurrency}. */
export const DEFAULT_ENGINE_CONCURRENCY = 32;

function invalid(option: string, expected: string, value: unknown): DagopsError {
  return new DagopsError(
    ErrorCode.OPTIONS_INVALID,
    `engine option ${option} must be ${expected}, got ${describeValue(value)}`,
    { target: option },
  );
}

/** Applies defaults and checks every option, naming the option and the value received. */
export function resolveEngineOptions(options: EngineOptions = {}): ResolvedEngineOptions {
  const concurrency = options.concurrency ?? DEFAULT_ENGINE_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw invalid('concurrency', 'a positive integer', concurrency);
  }
  const executor =
    options.executor ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  if (typeof executor !== 'string' || executor.length === 0) {
    throw invalid('executor', 'a non-empty string', executor);
  }
  const offset = options.utcOffsetMinutes;
  if (offset !== undefined && (!Number.isInteger(offset) || Math.abs(offset) > 18 * 60)) {
    throw invalid('utcOffsetMinutes', 'an integer within ±1080', offset);
  }
  if (options.handlers !== undefined && !(options.handlers instanceof HandlerRegistry)) {
    throw invalid('handlers', 'a HandlerRegistry', options.handlers);
  }
  return {
    store: options.store ?? new MemoryStore(),
    handlers: options.handlers ?? new HandlerRegistry(),
    clock: options.clock ?? systemClock,
    executor,
    concurrency,
    logger: options.logger ?? consoleLogger,
    utcOffsetMinutes: offset,
  };
}
