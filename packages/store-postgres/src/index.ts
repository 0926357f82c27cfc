export { PostgresStore } from './postgres-store.js';
export { resolvePostgresStoreOptions } from './store-options.js';
export type { PostgresStoreOptions, ResolvedPostgresStoreOptions } from './store-options.js';
export type { SqlDriver, SqlQueryable, SqlResult } from './sql-driver.js';
export { createPgDriver } from './pg-driver.js';
export type { PgDriverOptions } from './pg-driver.js';
export { createPgliteDriver } from './pglite-driver.js';
export { applyMigrations, MIGRATIONS } from './migration.js';
export type { Migration } from './migration.js';
