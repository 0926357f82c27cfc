import { applyMigrations, type Migration, type SqlDriver } from '@dagops/store-postgres';
import { isPermission } from './permissions.js';
import type {
  IdempotencyClaim,
  IdempotencyKeyRequest,
  ServiceState,
  UserRecord,
} from './service-state.js';

/**
 * The service's tables, in a schema of their own beside the engine store's. Migrations are
 * applied once, in order, by `@dagops/store-postgres`'s `applyMigrations` (its advisory lock
 * makes services starting together apply each once); never edit a released one.
 */
export const SERVER_MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'users, hosts, idempotency keys',
    sql: (S: string) => `
CREATE TABLE ${S}.users (
  name text PRIMARY KEY,
  password_hash text NOT NULL,
  permissions text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ${S}.hosts (
  id int8 PRIMARY KEY CHECK (id > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
-- One row per (caller, key). status and body are NULL while the request runs.
CREATE TABLE ${S}.idempotency_keys (
  owner text NOT NULL,
  key text NOT NULL,
  fingerprint text NOT NULL,
  claimed_at int8 NOT NULL,
  expires_at int8 NOT NULL,
  status int4,
  body text,
  PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_expiry ON ${S}.idempotency_keys (expires_at);
`,
  },
]);

/** Options of {@link SqlServiceState.open}. */
export interface SqlServiceStateOptions {
  /** Schema of the service's tables; a plain lower-case identifier. @default 'dagops_server' */
  readonly schema?: string;
  /** Apply the migrations the schema lacks. @default true */
  readonly migrate?: boolean;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,47}$/;

/**
 * A {@link ServiceState} in PostgreSQL, through the same `SqlDriver` as the engine's
 * `PostgresStore` (a PostgreSQL server via `pg`, or PGlite), in its own schema. It does not own
 * the driver: close the store (which closes the driver) after closing this.
 */
export class SqlServiceState implements ServiceState {
  private constructor(
    private readonly driver: SqlDriver,
    private readonly schema: string,
  ) {}

  /** Opens the state on `driver`, applying the migrations the schema lacks. */
  static async open(
    driver: SqlDriver,
    options: SqlServiceStateOptions = {},
  ): Promise<SqlServiceState> {
    const schema = options.schema ?? 'dagops_server';
    if (typeof schema !== 'string' || !SCHEMA.test(schema)) {
      throw new RangeError(
        `SqlServiceState option schema must be a lower-case identifier, got ${JSON.stringify(schema)}`,
      );
    }
    if (options.migrate ?? true) await applyMigrations(driver, schema, SERVER_MIGRATIONS);
    return new SqlServiceState(driver, schema);
  }

  /** The schema of the service's tables. */
  get schemaName(): string {
    return this.schema;
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const { rows } = await this.driver.query<{
      name: string;
      password_hash: string;
      permissions: string[];
    }>(`SELECT name, password_hash, permissions FROM ${this.schema}.users WHERE name = $1`, [name]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      name: row.name,
      passwordHash: row.password_hash,
      permissions: row.permissions.filter(isPermission),
    };
  }

  async putUser(user: UserRecord): Promise<void> {
    await this.driver.query(
      `INSERT INTO ${this.schema}.users (name, password_hash, permissions) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash,
         permissions = EXCLUDED.permissions, updated_at = now()`,
      [user.name, user.passwordHash, [...user.permissions]],
    );
  }

  async countUsers(): Promise<number> {
    const { rows } = await this.driver.query<{ n: number }>(
      `SELECT count(*)::int4 AS n FROM ${this.schema}.users`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async addHosts(hostIds: readonly number[]): Promise<void> {
    // In slices: one statement per 10,000 ids keeps each parameter small.
    for (let i = 0; i < hostIds.length; i += 10_000) {
      await this.driver.query(
        `INSERT INTO ${this.schema}.hosts (id) SELECT unnest($1::int8[]) ON CONFLICT DO NOTHING`,
        [hostIds.slice(i, i + 10_000)],
      );
    }
  }

  async unknownHosts(hostIds: readonly number[]): Promise<number[]> {
    if (hostIds.length === 0) return [];
    const { rows } = await this.driver.query<{ id: string }>(
      `SELECT h.id::text AS id FROM ${this.schema}.hosts h WHERE h.id = ANY($1::int8[])`,
      [[...hostIds]],
    );
    const known = new Set(rows.map((row) => Number(row.id)));
    return hostIds.filter((id) => !known.has(id));
  }

  async countHosts(): Promise<number> {
    const { rows } = await this.driver.query<{ n: number }>(
      `SELECT count(*)::int4 AS n FROM ${this.schema}.hosts`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async listHostIds(): Promise<number[]> {
    const { rows } = await this.driver.query<{ id: string }>(
      `SELECT id::text AS id FROM ${this.schema}.hosts ORDER BY id`,
    );
    return rows.map((row) => Number(row.id));
  }

  async claimIdempotencyKey(request: IdempotencyKeyRequest): Promise<IdempotencyClaim> {
    const S = this.schema;
    // One statement: the INSERT claims a new, expired or abandoned key; the SELECT sees the
    // row as it was before (a CTE's writes are invisible to its own query).
    const { rows } = await this.driver.query<{
      claimed: number;
      fingerprint: string | null;
      status: number | null;
      body: string | null;
    }>(
      `WITH claim AS (
         INSERT INTO ${S}.idempotency_keys AS k (owner, key, fingerprint, claimed_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
           claimed_at = EXCLUDED.claimed_at, expires_at = EXCLUDED.expires_at,
           status = NULL, body = NULL
         WHERE k.expires_at <= $4 OR (k.status IS NULL AND k.claimed_at <= $6)
         RETURNING 1
       )
       SELECT (SELECT count(*)::int4 FROM claim) AS claimed, k.fingerprint, k.status, k.body
       FROM (SELECT 1) one
       LEFT JOIN ${S}.idempotency_keys k ON k.owner = $1 AND k.key = $2`,
      [
        request.owner,
        request.key,
        request.fingerprint,
        request.now,
        request.now + request.ttlMs,
        request.now - request.pendingTimeoutMs,
      ],
    );
    const row = rows[0];
    if (!row || Number(row.claimed) === 1) return { kind: 'claimed' };
    // Not claimed, yet no row in this statement's snapshot: a concurrent claim just won.
    if (row.fingerprint === null) return { kind: 'inProgress' };
    if (row.fingerprint !== request.fingerprint) return { kind: 'mismatch' };
    if (row.status === null || row.body === null) return { kind: 'inProgress' };
    return { kind: 'replay', status: Number(row.status), body: row.body };
  }

  async completeIdempotencyKey(
    owner: string,
    key: string,
    response: { readonly status: number; readonly body: string },
  ): Promise<void> {
    await this.driver.query(
      `UPDATE ${this.schema}.idempotency_keys SET status = $3, body = $4
       WHERE owner = $1 AND key = $2`,
      [owner, key, response.status, response.body],
    );
  }

  async releaseIdempotencyKey(owner: string, key: string): Promise<void> {
    await this.driver.query(
      `DELETE FROM ${this.schema}.idempotency_keys
       WHERE owner = $1 AND key = $2 AND status IS NULL`,
      [owner, key],
    );
  }

  async purgeIdempotencyKeys(now: number): Promise<number> {
    const { rows } = await this.driver.query<{ n: number }>(
      `WITH gone AS (DELETE FROM ${this.schema}.idempotency_keys WHERE expires_at <= $1 RETURNING 1)
       SELECT count(*)::int4 AS n FROM gone`,
      [now],
    );
    return Number(rows[0]?.n ?? 0);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
