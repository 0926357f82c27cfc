import { resolve } from 'node:path';
import type { ServerLogOptions } from './server-options.js';

/** Which host agent the service drives. */
export const AgentKind = {
  /** Real processes on this machine (`LocalProcessAgent`): the demo fleet. */
  LOCAL: 'local',
  /** An in-memory fleet (`SimulatedAgent`): for benchmarks with many hosts. */
  SIMULATED: 'simulated',
} as const;
/** One of the {@link AgentKind} values. */
export type AgentKind = (typeof AgentKind)[keyof typeof AgentKind];

/** Everything the service process is configured with (see {@link configFromEnv}). */
export interface ServiceConfig {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Address to listen on. */
  readonly host: string;
  /** PGlite's data (when no `databaseUrl`) and the local agent's state, absolute. */
  readonly dataDir: string;
  /** PostgreSQL server; PGlite in `dataDir` when undefined. */
  readonly databaseUrl: string | undefined;
  /** Connections of the pool to `databaseUrl`. */
  readonly databasePoolSize: number;
  /**
   * Prepare repeated statements by name on `databaseUrl`'s connections; off behind a proxy that
   * pools per transaction without tracking prepared statements (PgBouncer before 1.21).
   */
  readonly databasePrepare: boolean;
  /** Schema of the engine's store; the service's own tables go in `<schema>_server`. */
  readonly schema: string;
  /** Demo hosts 1..N registered (and, with the local agent, their processes started). */
  readonly demoHosts: number;
  readonly agent: AgentKind;
  /** Time a local agent process has to exit after SIGTERM, ms. */
  readonly stopGracePeriodMs: number;
  /** The first admin's name. */
  readonly adminUser: string;
  /** The first admin's password; generated (and printed once) when undefined. */
  readonly adminPassword: string | undefined;
  readonly maxBatchHosts: number;
  readonly bodyLimitBytes: number;
  readonly logLevel: NonNullable<ServerLogOptions['level']>;
  /** Most subtasks running at once on this engine. */
  readonly engineConcurrency: number;
  /** Longest a graceful shutdown may take before the process exits anyway, ms. */
  readonly shutdownTimeoutMs: number;
  /** SUCCESSFUL tasks kept in memory for GET; 0 for none. */
  readonly taskCacheSize: number;
}

/** An environment variable with a value the service cannot use. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** The variable's name. */
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      name,
      `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const text = read(env, name);
  if (text === undefined) return fallback;
  if (!(values as readonly string[]).includes(text)) {
    throw new ConfigError(
      name,
      `${name} must be one of ${values.join(', ')}, got ${JSON.stringify(text)}`,
    );
  }
  return text as T;
}

/**
 * The service's configuration from environment variables, with defaults. Every bad value is
 * refused with a {@link ConfigError} naming the variable and the value it got.
 *
 * | variable | default |
 * |---|---|
 * | `PORT` | 8080 |
 * | `HOST` | 127.0.0.1 |
 * | `DAGOPS_DATA_DIR` | `./.dagops` (from the working directory) |
 * | `DATABASE_URL` | none: PGlite in `<DAGOPS_DATA_DIR>/pgdata` |
 * | `DAGOPS_DEMO_HOSTS` | 3 |
 * | `DAGOPS_ADMIN_USER` / `DAGOPS_ADMIN_PASSWORD` | `admin` / generated |
 *
 * and `DAGOPS_AGENT`, `DAGOPS_DB_SCHEMA`, `DAGOPS_DB_POOL_SIZE`, `DAGOPS_DB_PREPARE`,
 * `DAGOPS_MAX_BATCH_HOSTS`,
 * `DAGOPS_BODY_LIMIT_BYTES`, `DAGOPS_LOG_LEVEL`, `DAGOPS_ENGINE_CONCURRENCY`,
 * `DAGOPS_STOP_GRACE_MS`, `DAGOPS_SHUTDOWN_TIMEOUT_MS`, `DAGOPS_TASK_CACHE_SIZE` (see
 * docs/service.md).
 */
export function configFromEnv(env: Env, cwd = process.cwd()): ServiceConfig {
  const databaseUrl = read(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    // Never echo the URL: it may hold a password.
    throw new ConfigError(
      'DATABASE_URL',
      'DATABASE_URL must be a postgres:// or postgresql:// URL (value not shown: it may hold a password)',
    );
  }
  const schema = read(env, 'DAGOPS_DB_SCHEMA') ?? 'dagops';
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(schema)) {
    throw new ConfigError(
      'DAGOPS_DB_SCHEMA',
      `DAGOPS_DB_SCHEMA must be a lower-case identifier of at most 41 characters, got ${JSON.stringify(schema)}`,
    );
  }
  const adminUser = read(env, 'DAGOPS_ADMIN_USER') ?? 'admin';
  if (adminUser.length > 64 || adminUser.includes(':') || /[\s\p{Cc}]/u.test(adminUser)) {
    throw new ConfigError(
      'DAGOPS_ADMIN_USER',
      `DAGOPS_ADMIN_USER must be at most 64 characters without ':', spaces or control characters, got ${JSON.stringify(adminUser)}`,
    );
  }
  const adminPassword = read(env, 'DAGOPS_ADMIN_PASSWORD');
  if (adminPassword !== undefined && adminPassword.length < 8) {
    throw new ConfigError(
      'DAGOPS_ADMIN_PASSWORD',
      'DAGOPS_ADMIN_PASSWORD must be at least 8 characters (value not shown)',
    );
  }
  const host = read(env, 'HOST') ?? '127.0.0.1';
  return {
    port: integer(env, 'PORT', 8080, 0, 65535),
    host,
    dataDir: resolve(cwd, read(env, 'DAGOPS_DATA_DIR') ?? '.dagops'),
    databaseUrl,
    databasePoolSize: integer(env, 'DAGOPS_DB_POOL_SIZE', 16, 1, 1000),
    databasePrepare: oneOf(env, 'DAGOPS_DB_PREPARE', ['on', 'off'] as const, 'on') === 'on',
    schema,
    demoHosts: integer(env, 'DAGOPS_DEMO_HOSTS', 3, 0, 1_000_000),
    agent: oneOf(env, 'DAGOPS_AGENT', Object.values(AgentKind), AgentKind.LOCAL),
    stopGracePeriodMs: integer(env, 'DAGOPS_STOP_GRACE_MS', 10_000, 0, 600_000),
    adminUser,
    adminPassword,
    maxBatchHosts: integer(env, 'DAGOPS_MAX_BATCH_HOSTS', 10_000, 1, 1_000_000),
    bodyLimitBytes: integer(env, 'DAGOPS_BODY_LIMIT_BYTES', 1_048_576, 1024, 1 << 30),
    logLevel: oneOf(env, 'DAGOPS_LOG_LEVEL', LOG_LEVELS, 'info'),
    engineConcurrency: integer(env, 'DAGOPS_ENGINE_CONCURRENCY', 32, 1, 10_000),
    shutdownTimeoutMs: integer(env, 'DAGOPS_SHUTDOWN_TIMEOUT_MS', 30_000, 1, 3_600_000),
    taskCacheSize: integer(env, 'DAGOPS_TASK_CACHE_SIZE', 10_000, 0, 10_000_000),
  };
}
