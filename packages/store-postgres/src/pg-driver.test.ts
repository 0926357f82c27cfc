/**
 * The pg driver prepares the statements it runs again and again (parsed and planned once per
 * connection: GET of a task from the store went from ~2,600 to ~5,600 req/s), and no more than
 * MAX_PREPARED distinct ones, so that SQL built with inlined values cannot pile up prepared
 * statements on a connection.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver, MAX_PREPARED } from './pg-driver.js';
import { postgresReachable, TEST_DATABASE_URL } from './test-support/databases.js';

const reachable = await postgresReachable();

describe.skipIf(!reachable)('pg driver on PostgreSQL', () => {
  it('prepares a parameterised statement once per connection, and at most MAX_PREPARED', async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 });
    const driver = createPgDriver(pool);
    onTestFinished(async () => {
      await driver.close();
      await pool.end();
    });
    const prepared = async () =>
      (
        await driver.query<{ statement: string }>(
          'SELECT statement FROM pg_prepared_statements WHERE name LIKE $1',
          ['dagops\\_%'],
        )
      ).rows.map((r) => r.statement);

    const text = 'SELECT $1::int + 1 AS n /* pg-driver.test */';
    for (let i = 0; i < 3; i++) {
      expect((await driver.query<{ n: number }>(text, [i])).rows).toEqual([{ n: i + 1 }]);
    }
    expect((await prepared()).filter((s) => s === text)).toHaveLength(1);

    for (let i = 0; i < MAX_PREPARED + 20; i++) {
      await driver.query(`SELECT $1::int AS v${i} /* pg-driver.test inlined */`, [i]);
    }
    expect((await prepared()).length).toBeLessThanOrEqual(MAX_PREPARED);
    // Past the bound, statements still run (unnamed).
    const last = MAX_PREPARED + 30;
    expect((await driver.query(`SELECT $1::int AS v${last}`, [7])).rows).toEqual([
      { [`v${last}`]: 7 },
    ]);
  });

  it('prepares nothing when told not to (behind a transaction-pooling proxy)', async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 });
    const driver = createPgDriver(pool, { prepareStatements: false });
    onTestFinished(async () => {
      await driver.close();
      await pool.end();
    });
    for (let i = 0; i < 3; i++) await driver.query('SELECT $1::int AS n /* unprepared */', [i]);
    const { rows } = await driver.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM pg_prepared_statements',
      [],
    );
    expect(rows).toEqual([{ n: '0' }]);
  });
});
