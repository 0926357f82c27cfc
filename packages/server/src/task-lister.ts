import type { Store, TaskRecord, TaskStatus } from '@dagops/engine';
import type { SqlDriver } from '@dagops/store-postgres';

/** Which tasks to list: filters (all optional) and a page. Newest first. */
export interface TaskQuery {
  /** Only tasks in this status. */
  readonly status?: TaskStatus;
  /** Only tasks whose name contains this text, ignoring case. */
  readonly name?: string;
  /** Tasks to skip. */
  readonly offset: number;
  /** Most tasks returned. */
  readonly limit: number;
}

/** One page of tasks, and how many match in all. */
export interface TaskPage {
  readonly total: number;
  readonly tasks: readonly TaskRecord[];
}

/**
 * Lists tasks. The engine's `Store` has no listing yet (see the package README, "Limits"), so
 * the service brings its own: {@link MemoryTaskLister} over the ids it submitted, and
 * {@link PostgresTaskLister} over the PostgreSQL store's `tasks` table.
 */
export interface TaskLister {
  listTasks(query: TaskQuery): Promise<TaskPage>;
  /** Told of every task the service submits (a lister that reads the store ignores it). */
  noteSubmitted(taskId: number): void;
}

/** Lists the tasks submitted through this service, reading each from the store. */
export class MemoryTaskLister implements TaskLister {
  private readonly ids: number[] = [];

  constructor(private readonly store: Store) {}

  noteSubmitted(taskId: number): void {
    this.ids.push(taskId);
  }

  async listTasks(query: TaskQuery): Promise<TaskPage> {
    const needle = query.name?.toLowerCase();
    const matching: TaskRecord[] = [];
    for (let i = this.ids.length - 1; i >= 0; i--) {
      const task = await this.store.getTask(this.ids[i] as number);
      if (!task) continue;
      if (query.status !== undefined && task.status !== query.status) continue;
      if (needle !== undefined && !task.name.toLowerCase().includes(needle)) continue;
      matching.push(task);
    }
    return {
      total: matching.length,
      tasks: matching.slice(query.offset, query.offset + query.limit),
    };
  }
}

/**
 * Lists tasks of a `PostgresStore` by reading its `tasks` table (columns `id`, `name`,
 * `status`) in the store's schema, then each task through the store. A stopgap until the
 * `Store` interface has a listing of its own.
 */
export class PostgresTaskLister implements TaskLister {
  constructor(
    private readonly driver: SqlDriver,
    private readonly storeSchema: string,
    private readonly store: Store,
  ) {}

  noteSubmitted(): void {}

  async listTasks(query: TaskQuery): Promise<TaskPage> {
    const { rows } = await this.driver.query<{ id: string; total: number }>(
      `SELECT id::text AS id, (count(*) OVER ())::int4 AS total FROM ${this.storeSchema}.tasks
       WHERE ($1::text IS NULL OR status = $1)
         AND ($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)
       ORDER BY id DESC LIMIT $3 OFFSET $4`,
      [query.status ?? null, query.name ?? null, query.limit, query.offset],
    );
    let total = Number(rows[0]?.total ?? 0);
    if (rows.length === 0 && query.offset > 0) {
      // A page past the end has no row to carry the count.
      const counted = await this.driver.query<{ total: number }>(
        `SELECT count(*)::int4 AS total FROM ${this.storeSchema}.tasks
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)`,
        [query.status ?? null, query.name ?? null],
      );
      total = Number(counted.rows[0]?.total ?? 0);
    }
    const tasks = await Promise.all(rows.map((row) => this.store.getTask(Number(row.id))));
    return { total, tasks: tasks.filter((task): task is TaskRecord => task !== undefined) };
  }
}
