import pg from 'pg';
import type { SqlDriver, SqlQueryable, SqlResult } from './sql-driver.js';

/** Options of {@link createPgDriver}. */
export interface PgDriverOptions {
  /** Most connections of the pool the driver creates (not of a pool it is handed). @default 8 */
  readonly maxConnections?: number;
  /**
   * Prepare the statements the store runs again and again by name, once per connection (parsed
   * and planned once). Turn it off behind a proxy that pools connections per transaction and
   * does not track prepared statements (PgBouncer in transaction mode before 1.21).
   * @default true
   */
  readonly prepareStatements?: boolean;
  /** Where a lost LISTEN connection is reported before it reconnects. @default console.warn */
  readonly onListenError?: (error: unknown) => void;
}

/** Milliseconds between attempts to re-establish a lost LISTEN connection. */
const RELISTEN_MS = 1000;

/** Most distinct statements prepared by name (per connection, by the server); others are not. */
export const MAX_PREPARED = 256;
const preparedNames = new Map<string, string>();

/**
 * The name under which `text` is prepared: a statement the store runs again and again is parsed
 * and planned once per connection instead of at every call. Statements beyond
 * {@link MAX_PREPARED} distinct texts (a caller building SQL with values inlined) stay unnamed,
 * so that no connection accumulates prepared statements without bound.
 */
function preparedName(text: string): string | undefined {
  let name = preparedNames.get(text);
  if (name === undefined && preparedNames.size < MAX_PREPARED) {
    name = `dagops_${preparedNames.size}`;
    preparedNames.set(text, name);
  }
  return name;
}

function queryable(client: pg.Pool | pg.PoolClient, prepare: boolean): SqlQueryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
      const values = params as unknown[] | undefined;
      const name = values === undefined || !prepare ? undefined : preparedName(text);
      const result =
        name === undefined || values === undefined
          ? await client.query(text, values)
          : await client.query({ name, text, values });
      return { rows: result.rows as R[] };
    },
    async exec(text: string): Promise<void> {
      await client.query(text);
    },
  };
}

/**
 * A {@link SqlDriver} on a PostgreSQL server through `pg`: a pool for queries and transactions,
 * and one dedicated connection for LISTEN (re-established when it drops; listeners then hear a
 * `'w'` so that nothing missed meanwhile is left waiting).
 *
 * @example
 * const store = await PostgresStore.open(createPgDriver('postgres://postgres@127.0.0.1:5432/app'));
 */
export function createPgDriver(
  connection: string | pg.Pool,
  options: PgDriverOptions = {},
): SqlDriver {
  const owned = typeof connection === 'string';
  const prepare = options.prepareStatements ?? true;
  const pool =
    typeof connection === 'string'
      ? new pg.Pool({ connectionString: connection, max: options.maxConnections ?? 8 })
      : connection;
  // An idle client that errors (the server went away) must not crash the process.
  if (owned) pool.on('error', () => {});
  const warn = options.onListenError ?? ((error: unknown) => console.warn('dagops LISTEN', error));
  const channels = new Map<string, Set<(payload: string) => void>>();
  let listener: pg.Client | undefined;
  let connecting: Promise<pg.Client> | undefined;
  let closed = false;

  const connectListener = (): Promise<pg.Client> => {
    connecting ??= (async () => {
      const client = new pg.Client(pool.options);
      client.on('notification', (message) => {
        for (const callback of channels.get(message.channel) ?? []) {
          callback(message.payload ?? '');
        }
      });
      client.on('error', (error) => {
        warn(error);
        if (listener === client) relisten();
      });
      await client.connect();
      for (const channel of channels.keys()) await client.query(`LISTEN ${channel}`);
      listener = client;
      return client;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const relisten = () => {
    const old = listener;
    listener = undefined;
    void old?.end().catch(() => {});
    if (closed) return;
    setTimeout(() => {
      if (closed || channels.size === 0) return;
      connectListener().then(
        () => {
          // Notifications sent while the connection was down are lost: look for work anyway.
          for (const callbacks of channels.values())
            for (const callback of callbacks) callback('w');
        },
        (error: unknown) => {
          warn(error);
          relisten();
        },
      );
    }, RELISTEN_MS).unref();
  };

  return {
    ...queryable(pool, prepare),
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(queryable(client, prepare));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channel, onNotify) {
      let callbacks = channels.get(channel);
      const fresh = !callbacks;
      if (!callbacks) channels.set(channel, (callbacks = new Set()));
      callbacks.add(onNotify);
      const client = listener ?? (await connectListener());
      if (fresh && listener === client) await client.query(`LISTEN ${channel}`);
      return async () => {
        callbacks.delete(onNotify);
        if (callbacks.size > 0) return;
        channels.delete(channel);
        await listener?.query(`UNLISTEN ${channel}`).catch(() => {});
      };
    },
    async close() {
      closed = true;
      const client = listener;
      listener = undefined;
      await client?.end().catch(() => {});
      if (owned) await pool.end();
    },
  };
}
