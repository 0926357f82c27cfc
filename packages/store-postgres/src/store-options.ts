import { DagopsError, ErrorCode } from '@dagops/engine';

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /**
   * Schema holding dagops' tables and functions, created when missing; a plain lower-case
   * identifier. Several schemas make several independent stores in one database.
   * @default 'dagops'
   */
  readonly schema?: string;
  /**
   * How long a claim stays leased without a heartbeat, in seconds (measured by the database's
   * clock). An engine whose process dies loses its claims this long after its last heartbeat;
   * they then count as failed attempts. Engines heartbeat every third of it.
   * @default 30
   */
  readonly leaseSeconds?: number;
  /**
   * Apply the migrations the schema lacks when opening. With false, opening refuses a schema
   * that lacks any (the code relies on every one of them). @default true
   */
  readonly migrate?: boolean;
  /** Most ends of attempts and log lines grouped into one transaction. @default 512 */
  readonly maxBatch?: number;
  /**
   * Transactions of grouped hot-path writes one store runs at once: with 2, the engine prepares
   * the next group while the database commits the last. PGlite runs one statement at a time
   * whatever this says. @default 2
   */
  readonly stepsInFlight?: number;
  /**
   * A task of more than twice this many subtasks is saved head first: its row, the counters of
   * all its subtasks, its first `headSubtasks` subtasks and the rest's data in one transaction
   * (after which the submission is acknowledged and the head may start), the rest's rows and
   * edges in a second one, after which they are claimable (see docs/durability.md). 0 saves
   * every task in one transaction. @default 128
   */
  readonly headSubtasks?: number;
  /**
   * Subtasks of the rest of a task saved head first written per transaction (migration 009):
   * each chunk is claimable once written, so engines work on the first ones while the others
   * are written. @default 2048
   */
  readonly restChunkSubtasks?: number;
  /**
   * The shortest time between two work notices (NOTIFY) of this store's hot-path steps, ms.
   * A notifying commit holds the database's notification-queue lock until it is flushed, so
   * with several engines open, notices on every step put all engines' steps in one line; paced,
   * another engine hears of new work at most this late. 0 notifies on every step that makes
   * work. @default 25
   */
  readonly workNoticeMs?: number;
}

/** {@link PostgresStoreOptions} with every default applied. */
export interface ResolvedPostgresStoreOptions {
  readonly schema: string;
  readonly leaseSeconds: number;
  readonly migrate: boolean;
  readonly maxBatch: number;
  readonly stepsInFlight: number;
  readonly headSubtasks: number;
  readonly restChunkSubtasks: number;
  readonly workNoticeMs: number;
}

function invalid(option: string, expected: string, value: unknown): DagopsError {
  return new DagopsError(
    ErrorCode.OPTIONS_INVALID,
    `store option ${option} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    { target: option },
  );
}

/** Applies defaults and checks every option, naming the option and the value received. */
export function resolvePostgresStoreOptions(
  options: PostgresStoreOptions = {},
): ResolvedPostgresStoreOptions {
  const schema = options.schema ?? 'dagops';
  if (typeof schema !== 'string' || !/^[a-z_][a-z0-9_]{0,47}$/.test(schema)) {
    throw invalid('schema', 'a lower-case identifier ([a-z_][a-z0-9_]*, at most 48 chars)', schema);
  }
  const leaseSeconds = options.leaseSeconds ?? 30;
  if (typeof leaseSeconds !== 'number' || !(leaseSeconds >= 0.1 && leaseSeconds <= 86_400)) {
    throw invalid('leaseSeconds', 'a number of seconds within [0.1, 86400]', leaseSeconds);
  }
  const maxBatch = options.maxBatch ?? 512;
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
    throw invalid('maxBatch', 'a positive integer', maxBatch);
  }
  const stepsInFlight = options.stepsInFlight ?? 2;
  if (!Number.isSafeInteger(stepsInFlight) || stepsInFlight < 1 || stepsInFlight > 16) {
    throw invalid('stepsInFlight', 'an integer within [1, 16]', stepsInFlight);
  }
  const headSubtasks = options.headSubtasks ?? 128;
  if (!Number.isSafeInteger(headSubtasks) || headSubtasks < 0 || headSubtasks > 1_000_000) {
    throw invalid('headSubtasks', 'an integer within [0, 1000000]', headSubtasks);
  }
  const restChunkSubtasks = options.restChunkSubtasks ?? 2048;
  if (
    !Number.isSafeInteger(restChunkSubtasks) ||
    restChunkSubtasks < 1 ||
    restChunkSubtasks > 1_000_000
  ) {
    throw invalid('restChunkSubtasks', 'an integer within [1, 1000000]', restChunkSubtasks);
  }
  const workNoticeMs = options.workNoticeMs ?? 25;
  if (typeof workNoticeMs !== 'number' || !(workNoticeMs >= 0 && workNoticeMs <= 1000)) {
    throw invalid('workNoticeMs', 'a number of milliseconds within [0, 1000]', workNoticeMs);
  }
  const migrate = options.migrate ?? true;
  if (typeof migrate !== 'boolean') throw invalid('migrate', 'a boolean', migrate);
  return {
    schema,
    leaseSeconds,
    migrate,
    maxBatch,
    stepsInFlight,
    headSubtasks,
    restChunkSubtasks,
    workNoticeMs,
  };
}
