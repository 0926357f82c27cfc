import {
  DagopsError,
  DEFAULT_TASK_CONCURRENCY,
  ErrorCode,
  PROHIBIT_ROLLBACK_KEY,
  type AttemptFence,
  type AuditEntry,
  type Claim,
  type ClaimRequest,
  type ContextDelta,
  type ErrorInfo,
  type ExpandedTask,
  type HeartbeatResult,
  type LogEntry,
  type OperationRequest,
  type ReservedIds,
  type StatusChange,
  type Store,
  type StoreNotice,
  type SubtaskContexts,
  type SubtaskLayout,
  type SubtaskRecord,
  type TaskRecord,
  type TaskSnapshot,
  type TransitionResult,
} from '@dagops/engine';
import {
  AUDIT_ENTRY_SQL,
  LOG_ENTRY_SQL,
  SUBTASK_RECORD_SQL,
  SUBTASK_STATE_SQL,
  TASK_COLUMNS,
  shapeOf,
  shapeOfLayout,
  toClaim,
  toSubtaskRecord,
  toSubtaskShape,
  toTaskRecord,
  type ClaimRow,
  type ShapeRow,
  type SubtaskStateRow,
  type TaskRow,
  type TaskShape,
} from './internal/records.js';
import {
  StepBatcher,
  type FinishItem,
  type StepRequest,
  type StepResponse,
} from './internal/step-batcher.js';
import { IdBlocks, type ReservedBlocks } from './internal/id-blocks.js';
import { arrayParams, encodeSubtasks, SUBTASK_ARRAY_CASTS } from './internal/subtask-arrays.js';
import { encodeLayout, plainArrays } from './internal/layout-encoding.js';
import { WorkNotices } from './internal/work-notices.js';
import { ShapeCache } from './internal/shape-cache.js';
import { shapeOfRest, type SavedRest } from './internal/rest-shape.js';
import { Presence } from './internal/presence.js';
import { applyMigrations, missingMigrations } from './migration.js';
import type { SqlDriver } from './sql-driver.js';
import {
  resolvePostgresStoreOptions,
  type PostgresStoreOptions,
  type ResolvedPostgresStoreOptions,
} from './store-options.js';

/** Turns a refusal raised by the SQL functions (SQLSTATE DG000) into a {@link DagopsError}. */
function translate(error: unknown): unknown {
  const raised = error as { code?: unknown; detail?: unknown; hint?: unknown; message?: unknown };
  if (raised?.code !== 'DG000') return error;
  const hint = typeof raised.hint === 'string' && raised.hint !== '' ? raised.hint : undefined;
  return new DagopsError(Number(raised.detail) as ErrorCode, String(raised.message), {
    ...(hint === undefined ? {} : { target: hint }),
  });
}

const isId = (value: number): boolean => Number.isSafeInteger(value) && value > 0;

/**
 * How long the rest of a task saved head first waits for a claim of its head before being
 * written anyway (no engine claims through this store, or none has room).
 */
const CLAIM_WAIT_MS = 20;

/** With `migrate: false`: refuses a schema that lacks migrations this code relies on. */
async function refuseOlderSchema(driver: SqlDriver, schema: string): Promise<void> {
  const missing = await missingMigrations(driver, schema);
  if (missing.length === 0) return;
  const names = missing.map((m) => `${m.version} (${m.name})`).join(', ');
  throw new DagopsError(
    ErrorCode.OPTIONS_INVALID,
    `store option migrate is false, but schema ${schema} lacks migrations ${names}: open one store with migrate: true to apply them`,
    { target: 'migrate' },
  );
}

function notFound(what: string, target: number): DagopsError {
  return new DagopsError(ErrorCode.TASK_NOT_FOUND, `${what} does not exist`, {
    target: String(target),
  });
}

/**
 * The PostgreSQL {@link Store}: durable state for engines in one or many processes, on a
 * PostgreSQL server (`createPgDriver`) or embedded (`createPgliteDriver`), with one schema and
 * one SQL dialect. Every transition is one SQL function call — one transaction that also makes
 * READY what it unblocks and finishes the task — and concurrent ends of attempts and claims of
 * one engine share a round trip. Claims are leased (expiry from the database clock) and every
 * write about an attempt is fenced by (subtask, runTime, executor). See docs/durability.md.
 *
 * @example
 * const store = await PostgresStore.open(createPgDriver(process.env.DATABASE_URL!));
 * const engine = new Engine({ store, handlers });
 * // …
 * await engine.close();
 * await store.close();
 */
export class PostgresStore implements Store {
  /** How long a claim stays leased without a heartbeat, ms. */
  readonly leaseMs: number;
  /** The resolved options. */
  readonly options: ResolvedPostgresStoreOptions;
  private readonly schema: string;
  /** What never changes of the tasks this engine claims from, most recently used last. */
  private readonly shapes = new ShapeCache();
  /** Shapes being read: the claims of one task that arrive together share one read. */
  private readonly loadingShapes = new Map<number, Promise<TaskShape>>();
  private readonly batcher: StepBatcher;
  private readonly ids = new IdBlocks((tasks, subtasks) =>
    this.call<ReservedBlocks>('reserve_blocks($1, $2)', [tasks, subtasks]),
  );
  private readonly listeners = new Set<(notice: StoreNotice) => void>();
  /** Notices heard and not yet passed on (coalesced per macrotask). */
  private heard = { work: false, retry: false, canceled: false, finished: [] as number[] };
  private dispatchScheduled = false;
  private stopListening: (() => Promise<void>) | undefined;
  /** This store's row in `stores`: whether other engines need to hear of its writes. */
  private readonly presence: Presence;
  private closed = false;
  /** Rests of tasks saved head first that this store is writing (see {@link insertTask}). */
  private readonly materializing = new Set<Promise<void>>();
  /** Resumed once a claim that starts after them has been answered (see {@link materializeSoon}). */
  private afterClaim = new Set<() => void>();
  /** Paces the work notices of this store's steps. */
  private readonly notices: WorkNotices;

  private constructor(
    private readonly driver: SqlDriver,
    options: ResolvedPostgresStoreOptions,
  ) {
    this.options = options;
    this.schema = options.schema;
    this.leaseMs = Math.round(options.leaseSeconds * 1000);
    this.presence = new Presence(driver, options.schema);
    this.notices = new WorkNotices(options.workNoticeMs, () => this.call<null>("notify('w')", []));
    this.batcher = new StepBatcher(
      (request) => this.step(request),
      options.maxBatch,
      options.stepsInFlight,
    );
  }

  /**
   * Opens a store on `driver`: applies the migrations the schema lacks (once, even when several
   * engines start together) and starts listening for other engines' news. The store owns the
   * driver from then on: {@link close} closes it.
   */
  static async open(driver: SqlDriver, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(driver, resolvePostgresStoreOptions(options));
    try {
      if (store.options.migrate) await applyMigrations(driver, store.schema);
      else await refuseOlderSchema(driver, store.schema);
      store.stopListening = await driver.listen(store.schema, (payload) => store.hear(payload));
      await store.presence.start();
    } catch (error) {
      await driver.close().catch(() => {});
      throw error;
    }
    return store;
  }

  /** The schema this store lives in. */
  get schemaName(): string {
    return this.schema;
  }

  /** Ids come from blocks reserved ahead (see {@link IdBlocks}): mostly no round trip. */
  reserveIds(subtaskCount: number): Promise<ReservedIds> {
    return this.ids.reserve(subtaskCount);
  }

  /**
   * Saves the task in one transaction, or head first when it has more than twice
   * `headSubtasks` subtasks: then it resolves once the head and the rest's data are saved (the
   * task is durable and complete, and its first subtasks may start) while the rest's rows are
   * written in a second transaction (see migration 005).
   */
  async insertTask(expanded: ExpandedTask, creator: OperationRequest): Promise<void> {
    await this.save(expanded, creator, undefined);
  }

  /** {@link insertTask} and a claim in its transaction (migration 008). */
  async insertTaskAndClaim(
    expanded: ExpandedTask,
    creator: OperationRequest,
    { executor, limit, now }: ClaimRequest,
  ): Promise<Claim[]> {
    if (limit <= 0) {
      await this.save(expanded, creator, undefined);
      return [];
    }
    const rows = await this.claiming(() =>
      this.save(expanded, creator, [executor, limit, Math.trunc(now)]),
    );
    return this.toClaims(rows);
  }

  /** Saves a task (see {@link insertTask}), claiming with `claim` [executor, limit, now] too. */
  private async save(
    expanded: ExpandedTask,
    creator: OperationRequest,
    claim: readonly [string, number, number] | undefined,
  ): Promise<ClaimRow[]> {
    // A fresh expansion is saved from its layout: its records are not built on the way.
    const { task } = expanded;
    const layout = expanded.layout?.built === false ? expanded.layout : undefined;
    const count = layout ? layout.count : expanded.subtasks.length;
    const concurrency = task.template.concurrency ?? DEFAULT_TASK_CONCURRENCY;
    const prohibitRollback =
      task.template.prohibitRollback === true ||
      task.context.stringMap[PROHIBIT_ROLLBACK_KEY] === 'true';
    const first = layout ? layout.firstId : (expanded.subtasks[0]?.id ?? 0);
    const head = this.options.headSubtasks;
    const headFirst = head > 0 && count > 2 * head;
    const headSize = headFirst ? head : count;
    const {
      head: arrays,
      rest,
      statusCounts,
    } = layout
      ? encodeLayout(layout, headSize)
      : encodeSubtasks(expanded.subtasks, first, headSize);
    const row = JSON.stringify({
      id: task.id,
      name: task.name,
      creator: task.creator,
      executor: task.executor,
      hostId: task.hostId ?? null,
      type: task.type,
      taskDefinitionId: task.taskDefinitionId,
      status: task.status,
      operation: task.operation,
      startTime: task.startTime,
      concurrency,
      prohibitRollback,
    });
    const arrayArgs = SUBTASK_ARRAY_CASTS.map((cast, i) => `$${i + 7}::${cast}`).join(', ');
    const after = 7 + SUBTASK_ARRAY_CASTS.length;
    const params = [
      row,
      JSON.stringify(task.template),
      JSON.stringify(task.context),
      first,
      count,
      statusCounts,
      ...arrayParams(arrays),
      rest === undefined ? null : JSON.stringify(rest),
      creator.actor,
      Math.trunc(creator.now),
    ];
    const saveArgs =
      `$1::jsonb, $2::json, $3::json, $4, $5, $6::int4[], ${arrayArgs}, ` +
      `$${after}::json, $${after + 1}, $${after + 2}`;
    let claimed: ClaimRow[] = [];
    if (claim) {
      const n = after + 3;
      claimed = await this.call<ClaimRow[]>(
        `save_task_and_claim(${saveArgs}, $${n}, $${n + 1}, $${n + 2}, $${n + 3})`,
        [...params, ...claim, this.leaseMs],
      );
    } else await this.call(`save_task(${saveArgs})`, params);
    this.remember(
      layout ? shapeOfLayout({ ...task }, layout) : shapeOf({ ...task }, first, expanded.subtasks),
    );
    // With a claim answered already, the rest need not wait for one.
    if (headFirst) this.materializeSoon(task.id, claim === undefined, layout, headSize);
    return claimed;
  }

  async getTask(taskId: number): Promise<TaskRecord | undefined> {
    if (!isId(taskId)) return undefined;
    const { rows } = await this.driver.query<{ t: TaskRow }>(
      `SELECT row_to_json(t) AS t FROM (SELECT ${TASK_COLUMNS} FROM ${this.schema}.tasks
       WHERE id = $1) t`,
      [taskId],
    );
    const row = rows[0];
    return row ? toTaskRecord(row.t) : undefined;
  }

  async listSubtasks(taskId: number): Promise<SubtaskRecord[]> {
    if (!isId(taskId)) return [];
    const shape = this.shapes.get(taskId);
    if (shape) {
      const states = await this.subtasksWith<SubtaskStateRow[]>(taskId, this.subtaskStatesSql());
      const records = states && fromStates(shape, states);
      if (records) return records;
    }
    return (await this.subtasksWith<SubtaskRecord[]>(taskId, this.subtasksOfTaskSql())) ?? [];
  }

  async readTask(taskId: number): Promise<TaskSnapshot | undefined> {
    if (!isId(taskId)) return undefined;
    const shape = this.shapes.get(taskId);
    if (shape) {
      const row = await this.taskWith<SubtaskStateRow[]>(taskId, this.subtaskStatesSql());
      const subtasks = row && fromStates(shape, row.s);
      if (row && subtasks) return { task: toTaskRecord(row.t), subtasks };
    }
    const row = await this.taskWith<SubtaskRecord[]>(taskId, this.subtasksOfTaskSql());
    return row ? { task: toTaskRecord(row.t), subtasks: row.s } : undefined;
  }

  /** The subtasks of a task as `subtasks` (a subquery on its row `t`) renders them, whole. */
  private async subtasksWith<S>(taskId: number, subtasks: string): Promise<S | undefined> {
    const { rows } = await this.whole(taskId, () =>
      this.driver.query<{ s: S; partial: boolean }>(
        `SELECT ${subtasks} AS s, ${this.partialSql()} AS partial
         FROM ${this.schema}.tasks t WHERE t.id = $1`,
        [taskId],
      ),
    );
    return rows[0]?.s;
  }

  /** A task's row and its subtasks as `subtasks` (a subquery on the row `t`) renders them. */
  private async taskWith<S>(
    taskId: number,
    subtasks: string,
  ): Promise<{ t: TaskRow; s: S } | undefined> {
    const { rows } = await this.whole(taskId, () =>
      this.driver.query<{ t: TaskRow; s: S; partial: boolean }>(
        `SELECT row_to_json(t) AS t, ${subtasks} AS s, ${this.partialSql()} AS partial
         FROM (SELECT ${TASK_COLUMNS}, first_subtask_id, subtask_count FROM ${this.schema}.tasks
               WHERE id = $1) t`,
        [taskId],
      ),
    );
    return rows[0];
  }

  async getSubtaskContexts(
    taskId: number,
    subtaskId: number,
  ): Promise<SubtaskContexts | undefined> {
    if (!isId(taskId) || !isId(subtaskId)) return undefined;
    const read = () =>
      this.driver.query<{ input: ContextDelta | null; output: ContextDelta | null }>(
        `SELECT input, output FROM ${this.schema}.subtasks WHERE id = $2 AND task_id = $1`,
        [taskId, subtaskId],
      );
    let row = (await read()).rows[0];
    // A subtask of a task saved head first may not be written yet.
    if (!row && (await this.call<boolean>('materialize($1, true)', [taskId]))) {
      row = (await read()).rows[0];
    }
    if (!row) return undefined;
    return {
      ...(row.input === null ? {} : { input: row.input }),
      ...(row.output === null ? {} : { output: row.output }),
    };
  }

  async claimReady({ executor, limit, now }: ClaimRequest): Promise<Claim[]> {
    if (limit <= 0) return [];
    const rows = await this.claiming(() => this.batcher.claim(executor, limit, Math.trunc(now)));
    return this.toClaims(rows);
  }

  /**
   * Runs `claim`, then resumes the rests that were waiting for a claim to start after their
   * task was saved (see {@link materializeSoon}).
   */
  private async claiming<T>(claim: () => Promise<T>): Promise<T> {
    const waiting = this.afterClaim;
    this.afterClaim = new Set();
    try {
      return await claim();
    } finally {
      for (const resume of waiting) resume();
    }
  }

  completeAttempt(
    fence: AttemptFence,
    result: { readonly input: ContextDelta; readonly output: ContextDelta; readonly now: number },
  ): Promise<TransitionResult> {
    return this.batcher.finish({
      ...this.fenceItem(fence),
      k: 'c',
      in: result.input,
      out: result.output,
      now: Math.trunc(result.now),
    });
  }

  failAttempt(
    fence: AttemptFence,
    result: {
      readonly input: ContextDelta | undefined;
      readonly error: ErrorInfo;
      readonly retryAt?: number;
      readonly now: number;
    },
  ): Promise<TransitionResult> {
    const item: FinishItem = {
      ...this.fenceItem(fence),
      k: 'f',
      ...(result.input === undefined ? {} : { in: result.input }),
      err: result.error,
      ...(result.retryAt === undefined ? {} : { ra: Math.ceil(result.retryAt) }),
      now: Math.trunc(result.now),
    };
    return this.batcher.finish(item);
  }

  retryTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate('retry_task($1, $2, $3)', taskId, undefined, request);
  }

  retrySubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate('retry_subtask($1, $4, $2, $3)', taskId, subtaskId, request);
  }

  skipSubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate('skip_subtask($1, $4, $2, $3)', taskId, subtaskId, request);
  }

  cancelSubtask(taskId: number, subtaskId: number, request: OperationRequest) {
    return this.operate('cancel_subtask($1, $4, $2, $3)', taskId, subtaskId, request);
  }

  cancelTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate('cancel_task($1, $2, $3)', taskId, undefined, request);
  }

  rollbackTask(taskId: number, request: OperationRequest): Promise<StatusChange[]> {
    return this.operate('rollback_task($1, $2, $3)', taskId, undefined, request);
  }

  async listAudit(taskId: number): Promise<AuditEntry[]> {
    if (!isId(taskId)) return [];
    const { rows } = await this.driver.query<{ a: AuditEntry[] }>(
      `SELECT coalesce(jsonb_agg(${AUDIT_ENTRY_SQL} ORDER BY a.id), '[]') AS a
       FROM ${this.schema}.audit a WHERE a.task_id = $1`,
      [taskId],
    );
    return rows[0]?.a ?? [];
  }

  async nextRetryAt(): Promise<number | undefined> {
    const { rows } = await this.driver.query<{ at: number | null }>(
      `SELECT min(retry_at)::float8 AS at FROM ${this.schema}.subtasks
       WHERE retry_at IS NOT NULL AND status = 'READY'`,
    );
    return rows[0]?.at ?? undefined;
  }

  appendLogs(entries: readonly LogEntry[]): Promise<void> {
    return this.batcher.appendLogs(
      entries
        .filter((entry) => isId(entry.taskId) && isId(entry.subtaskId))
        .map((entry) => ({
          t: entry.taskId,
          s: entry.subtaskId,
          r: entry.runTime,
          time: Math.trunc(entry.time),
          m: entry.message,
        })),
    );
  }

  async readLogs(taskId: number, subtaskId: number): Promise<LogEntry[]> {
    if (!isId(taskId) || !isId(subtaskId)) return [];
    const { rows } = await this.driver.query<{ l: LogEntry[] }>(
      `SELECT coalesce(jsonb_agg(${LOG_ENTRY_SQL} ORDER BY l.id), '[]') AS l
       FROM ${this.schema}.logs l WHERE l.subtask_id = $2 AND l.task_id = $1`,
      [taskId, subtaskId],
    );
    return rows[0]?.l ?? [];
  }

  async heartbeat(fences: readonly AttemptFence[]): Promise<HeartbeatResult> {
    if (fences.length === 0) return { lost: [], canceled: [] };
    const found = await this.call<{ lost: number[]; canceled: number[] }>(
      'heartbeat($1::jsonb, $2)',
      [
        JSON.stringify(fences.map((f) => ({ s: f.subtaskId, r: f.runTime, e: f.executor }))),
        this.leaseMs,
      ],
    );
    const bySubtask = new Map(fences.map((fence) => [fence.subtaskId, fence]));
    const pick = (ids: number[]) =>
      ids.map((id) => bySubtask.get(id)).filter((f): f is AttemptFence => f !== undefined);
    return { lost: pick(found.lost), canceled: pick(found.canceled) };
  }

  async reapExpired({ executor, limit }: ClaimRequest): Promise<Claim[]> {
    if (limit <= 0) return [];
    const rows = await this.call<ClaimRow[]>('reap($1, $2, $3)', [executor, limit, this.leaseMs]);
    // The rests of tasks whose submitter died between its two transactions. The claims above
    // are re-fenced to this engine already: should this fail, they are still returned.
    const written = await this.call<number>('materialize_left()', []).catch(() => 0);
    if (written > 0) this.hear('w');
    return this.toClaims(rows);
  }

  subscribe(listener: (notice: StoreNotice) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Waits for pending writes, stops listening and closes the driver. Close the engines using
   * the store first.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.materializing);
    await this.batcher.idle();
    await this.notices.stop();
    this.listeners.clear();
    await this.presence.stop().catch(() => {});
    await this.stopListening?.().catch(() => {});
    await this.driver.close();
  }

  /** One round trip for a batch of the engine's hot-path requests. */
  private async step({ logs, items, claims, now }: StepRequest): Promise<StepResponse> {
    const quiet = !this.notices.mayNotify();
    const response = await this.call<StepResponse>(
      'step($1::jsonb, $2::jsonb, $3::jsonb, $4, $5)',
      [
        logs.length === 0 ? null : JSON.stringify(logs),
        items.length === 0 ? null : JSON.stringify(items),
        claims.length === 0 ? null : JSON.stringify(claims),
        now,
        this.leaseMs,
      ],
      quiet,
    );
    if (quiet) this.notices.keptQuiet();
    return response;
  }

  /**
   * What changes of the subtasks of the task row `t`, as a JSON array of state rows in id order
   * (a subquery): with the task's shape kept, the records are built here from the two.
   */
  private subtaskStatesSql(): string {
    return `(SELECT coalesce(json_agg(${SUBTASK_STATE_SQL} ORDER BY x.id), '[]')
      FROM ${this.schema}.subtasks x
      WHERE x.id BETWEEN t.first_subtask_id AND t.first_subtask_id + t.subtask_count - 1)`;
  }

  /** The subtasks of the task row `t` as a JSON array of records, in id order (a subquery). */
  private subtasksOfTaskSql(): string {
    return `(SELECT coalesce(jsonb_agg(${SUBTASK_RECORD_SQL} ORDER BY x.id), '[]')
      FROM ${this.schema}.subtasks x
      WHERE x.id BETWEEN t.first_subtask_id AND t.first_subtask_id + t.subtask_count - 1)`;
  }

  /**
   * Calls one of the schema's SQL functions; its jsonb result is the answer. With `quiet`, the
   * call sends no work notice (see {@link WorkNotices}).
   */
  private async call<T>(invocation: string, params: readonly unknown[], quiet = false): Promise<T> {
    try {
      // Names the writer to the schema's notify(), in the call's own transaction; no name when
      // several engines listen here, so that they hear of each other's writes.
      const writer = this.listeners.size > 1 ? '' : this.presence.id;
      const n = params.length;
      const { rows } = await this.driver.query<{ r: T }>(
        `SELECT ${this.schema}.${invocation} AS r
         FROM (SELECT set_config('dagops.store', $${n + 1}, true),
                      set_config('dagops.quiet', $${n + 2}, true)) AS writer`,
        [...params, writer, quiet ? 'w' : ''],
      );
      return (rows[0] as { r: T }).r;
    } catch (error) {
      throw translate(error);
    }
  }

  private async operate(
    invocation: string,
    taskId: number,
    subtaskId: number | undefined,
    { actor, now }: OperationRequest,
  ): Promise<StatusChange[]> {
    if (!isId(taskId)) throw notFound(`task ${taskId}`, taskId);
    if (subtaskId !== undefined && !isId(subtaskId)) {
      throw new DagopsError(
        ErrorCode.TASK_NOT_FOUND,
        `subtask ${subtaskId} is not part of task ${taskId}`,
        { target: String(subtaskId) },
      );
    }
    const params: unknown[] = [taskId, actor, Math.trunc(now)];
    if (subtaskId !== undefined) params.push(subtaskId);
    return this.call<StatusChange[]>(invocation, params);
  }

  private fenceItem(fence: AttemptFence) {
    return { t: fence.taskId, s: fence.subtaskId, r: fence.runTime, e: fence.executor };
  }

  /** Claims as records, from the shapes of their tasks (read once per task and kept). */
  private async toClaims(rows: readonly ClaimRow[]): Promise<Claim[]> {
    if (rows.length === 0) return [];
    const claims: Claim[] = [];
    for (const row of rows) {
      const shape = this.shapes.get(row[1]) ?? (await this.shapeOf(row[1]));
      claims.push(toClaim(row, shape));
    }
    return claims;
  }

  private shapeOf(taskId: number): Promise<TaskShape> {
    let loading = this.loadingShapes.get(taskId);
    if (!loading) {
      loading = this.loadShape(taskId).finally(() => this.loadingShapes.delete(taskId));
      this.loadingShapes.set(taskId, loading);
    }
    return loading;
  }

  /**
   * The shape of a task, read once. While its rest is being written (saved head first, by
   * another engine), decoded from the rest as saved. This read used to write the whole rest
   * first, holding the task's lock against every engine's steps for as long as that took
   * (~650 ms at 10,000 hosts), then read back every row.
   */
  private async loadShape(taskId: number): Promise<TaskShape> {
    const { rows } = await this.driver.query<{
      t: TaskRow & { first_subtask_id: number; subtask_count: number };
      rest: SavedRest | null;
      s: ShapeRow[] | null;
    }>(
      `SELECT row_to_json(t) AS t, r.rest,
         CASE WHEN r.task_id IS NULL THEN ${this.schema}.task_shape($1) END AS s
       FROM (SELECT ${TASK_COLUMNS}, first_subtask_id, subtask_count FROM ${this.schema}.tasks
             WHERE id = $1) t
       LEFT JOIN ${this.schema}.task_rest r ON r.task_id = t.id`,
      [taskId],
    );
    const row = rows[0];
    if (!row) throw notFound(`task ${taskId}`, taskId);
    const task = toTaskRecord(row.t);
    const { first_subtask_id: first, subtask_count: count } = row.t;
    if (row.rest !== null) return this.remember(shapeOfRest(task, first, count, row.rest));
    const subtasks = (row.s ?? []).map((shape) => toSubtaskShape(taskId, shape));
    return this.remember(shapeOf(task, first, subtasks));
  }

  /**
   * Resolves once the rests of the tasks this store saved head first are written. Until then a
   * claim may return only subtasks of a task's head: the rest become claimable when written.
   */
  async restsWritten(): Promise<void> {
    while (this.materializing.size > 0) await Promise.all(this.materializing);
  }

  /** Whether the task row `t` was saved head first and its rest is not written yet (SQL). */
  private partialSql(): string {
    return `EXISTS (SELECT 1 FROM ${this.schema}.task_rest r WHERE r.task_id = t.id)`;
  }

  /**
   * Runs `read`, a read of a task's subtasks that also says whether the task is `partial`; when
   * it is, writes the rest (or waits for the engine writing it) and reads again.
   */
  private async whole<R extends { partial: boolean }>(
    taskId: number,
    read: () => Promise<{ rows: R[] }>,
  ): Promise<{ rows: R[] }> {
    const first = await read();
    if (!first.rows[0]?.partial) return first;
    await this.call<boolean>('materialize($1, true)', [taskId]);
    return read();
  }

  /**
   * Writes the rest of a task saved head first, in the background, once the next claim (the
   * submitting engine's, for the head) has been answered, or after {@link CLAIM_WAIT_MS} when
   * none comes: PGlite runs one statement at a time, and a claim queued behind the rest would
   * wait for all of it. Without `waitForClaim` (the head was claimed in the save's
   * transaction), on the next turn of the event loop, once the claimed head has started. Saved
   * from its `layout`, the rest is written `restChunkSubtasks` at a time (migration 009), each
   * chunk claimable once written; otherwise in one transaction. Should it fail, the next reaper
   * pass of any store writes it.
   */
  private materializeSoon(
    taskId: number,
    waitForClaim: boolean,
    layout: SubtaskLayout | undefined,
    written: number,
  ): void {
    const run = new Promise<void>((resolve) => {
      if (!waitForClaim) {
        // After what the save claimed has started: encoding a chunk takes a few milliseconds.
        setImmediate(resolve);
        return;
      }
      const resume = () => {
        clearTimeout(timer);
        resolve();
      };
      // A store that submits and never claims keeps nothing waiting.
      const timer = setTimeout(() => {
        this.afterClaim.delete(resume);
        resolve();
      }, CLAIM_WAIT_MS);
      this.afterClaim.add(resume);
    })
      .then(() =>
        layout
          ? this.writeRest(taskId, layout, written)
          : this.call<boolean>('materialize($1, false)', [taskId]).then((wrote) => {
              // What the rest made READY: this store does not hear its own notices.
              if (wrote) this.hear('w');
            }),
      )
      .catch(() => {
        // Left to the reapers (reapExpired): the task's rest is saved, only not yet written.
      })
      .finally(() => this.materializing.delete(run));
    this.materializing.add(run);
  }

  /**
   * Writes the rest of a task from its layout, a chunk a transaction, from subtask `written`
   * (from 0) on; stops early when another store (a reaper, an operation) writes it instead.
   */
  private async writeRest(taskId: number, layout: SubtaskLayout, written: number): Promise<void> {
    const chunk = this.options.restChunkSubtasks;
    const arrayArgs = SUBTASK_ARRAY_CASTS.map((cast, i) => `$${i + 4}::${cast}`).join(', ');
    for (let from = written; from < layout.count; from += chunk) {
      const to = Math.min(from + chunk, layout.count);
      const wrote = await this.call<boolean>(`write_rest($1, $2, $3, ${arrayArgs})`, [
        taskId,
        from + 1,
        to,
        ...arrayParams(plainArrays(layout, from, to)),
      ]);
      if (!wrote) return;
      // What the chunk made READY: this store does not hear its own notices.
      this.hear('w');
    }
  }

  private remember(shape: TaskShape): TaskShape {
    return this.shapes.set(shape);
  }

  /** A NOTIFY on the schema's channel: 'w' work, 'r' retry, 'c' cancel, 't<id>' finished. */
  private hear(payload: string): void {
    if (payload === 'w') this.heard.work = true;
    else if (payload === 'r') this.heard.retry = true;
    else if (payload === 'c') this.heard.canceled = true;
    else if (payload.startsWith('t')) this.heard.finished.push(Number(payload.slice(1)));
    if (this.listeners.size === 0) {
      this.heard = { work: false, retry: false, canceled: false, finished: [] };
      return;
    }
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    setImmediate(() => this.dispatch());
  }

  private dispatch(): void {
    this.dispatchScheduled = false;
    const heard = this.heard;
    this.heard = { work: false, retry: false, canceled: false, finished: [] };
    const notices: StoreNotice[] = heard.finished.map((taskId) => ({
      kind: 'taskFinished',
      taskId,
    }));
    if (heard.canceled) notices.push({ kind: 'canceled' });
    if (heard.retry) notices.push({ kind: 'retry' });
    if (heard.work) notices.push({ kind: 'work' });
    for (const listener of this.listeners) {
      for (const notice of notices) {
        try {
          listener(notice);
        } catch {
          // A listener's failure is its own; the others still hear.
        }
      }
    }
  }
}

/**
 * The records of a task's subtasks from its kept shape and their states, in id order; undefined
 * when the states do not match the shape (a shape kept from a task of other subtasks).
 */
function fromStates(
  shape: TaskShape,
  states: readonly SubtaskStateRow[],
): SubtaskRecord[] | undefined {
  if (states.length !== shape.count) return undefined;
  const records = new Array<SubtaskRecord>(states.length);
  for (let i = 0; i < states.length; i++) {
    const subtask = shape.subtask(i);
    if (subtask === undefined) return undefined;
    records[i] = toSubtaskRecord(subtask, states[i] as SubtaskStateRow);
  }
  return records;
}
