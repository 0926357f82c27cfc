import { hostname } from 'node:os';
import { DagopsError, ErrorCode, type Engine } from '@dagops/engine';
import type { HostAgent } from '@dagops/definitions';
import type { AuthenticatorOptions } from './authenticator.js';
import type { ServiceState } from './service-state.js';
import { MemoryTaskLister, type TaskLister } from './task-lister.js';

/** Where request logs go (a pino destination: anything with `write(line)`). */
export interface LogDestination {
  write(line: string): unknown;
}

/** Options of the request log. */
export interface ServerLogOptions {
  /** pino level. @default 'info' */
  readonly level?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** @default stdout */
  readonly stream?: LogDestination;
}

/** Options of {@link buildServer}. */
export interface ServerOptions {
  /** The engine that runs the tasks; its handlers work through `agent`. */
  readonly engine: Engine;
  /** The hosts' agent: the process list and the synchronous process stop go through it. */
  readonly agent: HostAgent;
  /** Users, host registry, idempotency keys. */
  readonly state: ServiceState;
  /** Lists tasks. @default a MemoryTaskLister over the tasks this server submits */
  readonly lister?: TaskLister;
  /** Most hosts in one batch stop. @default 10_000 */
  readonly maxBatchHosts?: number;
  /** Largest request body, bytes; larger ones get 413. @default 1_048_576 */
  readonly bodyLimitBytes?: number;
  /** `server` in every envelope. @default os.hostname() */
  readonly serverName?: string;
  /** UTC offset of envelope timestamps, minutes east. @default this process's offset */
  readonly utcOffsetMinutes?: number;
  /** Credential cache of the Basic authentication. */
  readonly auth?: AuthenticatorOptions;
  /** How long an idempotency key's answer is kept, ms. @default 86_400_000 (24 h) */
  readonly idempotencyTtlMs?: number;
  /** A key claimed this long ago and never answered (a crash) may be used again, ms. @default 60_000 */
  readonly idempotencyPendingTimeoutMs?: number;
  /** The request log; `false` for none. @default info level to stdout */
  readonly logger?: ServerLogOptions | false;
  /** SUCCESSFUL tasks kept in memory for `GET /api/v2/tasks/instances/{id}`; 0 for none. @default 10_000 */
  readonly taskCacheSize?: number;
}

/** {@link ServerOptions} with every default applied. */
export interface ResolvedServerOptions {
  readonly engine: Engine;
  readonly agent: HostAgent;
  readonly state: ServiceState;
  readonly lister: TaskLister;
  readonly maxBatchHosts: number;
  readonly bodyLimitBytes: number;
  readonly serverName: string;
  readonly utcOffsetMinutes: number | undefined;
  readonly auth: AuthenticatorOptions;
  readonly idempotencyTtlMs: number;
  readonly idempotencyPendingTimeoutMs: number;
  readonly logger: ServerLogOptions | false;
  readonly taskCacheSize: number;
}

/** Default of {@link ServerOptions.maxBatchHosts}. */
export const DEFAULT_MAX_BATCH_HOSTS = 10_000;
/** Default of {@link ServerOptions.bodyLimitBytes}. */
export const DEFAULT_BODY_LIMIT_BYTES = 1_048_576;

function invalid(option: string, expected: string, value: unknown): DagopsError {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new DagopsError(
    ErrorCode.OPTIONS_INVALID,
    `server option ${option} must be ${expected}, got ${shown}`,
    { target: option },
  );
}

function positiveInteger(option: string, value: unknown, fallback: number): number {
  const resolved = value ?? fallback;
  if (typeof resolved !== 'number' || !Number.isSafeInteger(resolved) || resolved < 1) {
    throw invalid(option, 'a positive integer', value);
  }
  return resolved;
}

function nonNegativeInteger(option: string, value: unknown, fallback: number): number {
  const resolved = value ?? fallback;
  if (typeof resolved !== 'number' || !Number.isSafeInteger(resolved) || resolved < 0) {
    throw invalid(option, 'a non-negative integer', value);
  }
  return resolved;
}

/** Applies defaults and checks every option, naming the option and the value it got. */
export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  const { engine, agent, state } = options;
  if (typeof engine?.submit !== 'function') throw invalid('engine', 'an Engine', engine);
  if (typeof agent?.listProcesses !== 'function') throw invalid('agent', 'a HostAgent', agent);
  if (typeof state?.getUser !== 'function') throw invalid('state', 'a ServiceState', state);
  const serverName = options.serverName ?? hostname();
  if (typeof serverName !== 'string' || serverName.length === 0) {
    throw invalid('serverName', 'a non-empty string', options.serverName);
  }
  const offset = options.utcOffsetMinutes;
  if (offset !== undefined && (!Number.isInteger(offset) || Math.abs(offset) > 18 * 60)) {
    throw invalid('utcOffsetMinutes', 'an integer within ±1080', offset);
  }
  return {
    engine,
    agent,
    state,
    lister: options.lister ?? new MemoryTaskLister(engine.store),
    maxBatchHosts: positiveInteger('maxBatchHosts', options.maxBatchHosts, DEFAULT_MAX_BATCH_HOSTS),
    bodyLimitBytes: positiveInteger(
      'bodyLimitBytes',
      options.bodyLimitBytes,
      DEFAULT_BODY_LIMIT_BYTES,
    ),
    serverName,
    utcOffsetMinutes: offset,
    auth: options.auth ?? {},
    idempotencyTtlMs: positiveInteger(
      'idempotencyTtlMs',
      options.idempotencyTtlMs,
      24 * 60 * 60 * 1000,
    ),
    idempotencyPendingTimeoutMs: positiveInteger(
      'idempotencyPendingTimeoutMs',
      options.idempotencyPendingTimeoutMs,
      60_000,
    ),
    logger: options.logger ?? {},
    taskCacheSize: nonNegativeInteger('taskCacheSize', options.taskCacheSize, 10_000),
  };
}
