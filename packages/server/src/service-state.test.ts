/**
 * One conformance suite for every ServiceState: in memory, in PGlite, and on a PostgreSQL
 * server (DAGOPS_TEST_DATABASE_URL; required when CI=true, skipped loudly otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDriver, createPgliteDriver, type SqlDriver } from '@dagops/store-postgres';
import { MemoryServiceState } from './memory-service-state.js';
import { Permission } from './permissions.js';
import type { ServiceState } from './service-state.js';
import { SqlServiceState } from './sql-service-state.js';
import { canConnect, TEST_DATABASE_URL } from './test-support/e2e.js';

const pgReachable = await canConnect(TEST_DATABASE_URL);
const onPg = pgReachable || process.env['CI'] === 'true';
if (!onPg)
  console.warn(
    `\n*** SKIPPING ServiceState on PostgreSQL: ${TEST_DATABASE_URL} is unreachable ***\n`,
  );

interface Backend {
  readonly name: string;
  readonly enabled: boolean;
  open(): Promise<{ state: ServiceState; close: () => Promise<void> }>;
}

async function sqlBackend(driver: SqlDriver, drop: boolean) {
  const schema = `state_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const state = await SqlServiceState.open(driver, { schema });
  // Opening again applies nothing twice.
  await SqlServiceState.open(driver, { schema });
  return {
    state,
    close: async () => {
      if (drop) await driver.query(`DROP SCHEMA ${schema} CASCADE`);
      await driver.close();
    },
  };
}

const backends: Backend[] = [
  {
    name: 'MemoryServiceState',
    enabled: true,
    open: () =>
      Promise.resolve({ state: new MemoryServiceState(), close: () => Promise.resolve() }),
  },
  {
    name: 'SqlServiceState on PGlite',
    enabled: true,
    open: async () => sqlBackend(await createPgliteDriver(), false),
  },
  {
    name: 'SqlServiceState on PostgreSQL',
    enabled: onPg,
    open: () => sqlBackend(createPgDriver(TEST_DATABASE_URL, { maxConnections: 4 }), true),
  },
];

for (const backend of backends) {
  describe.runIf(backend.enabled)(backend.name, () => {
    let state: ServiceState;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ state, close } = await backend.open());
    }, 30_000);
    afterAll(() => close?.());

    it('keeps users, and replaces one by name', async () => {
      expect(await state.getUser('ann')).toBeUndefined();
      await state.putUser({
        name: 'ann',
        passwordHash: 'h1',
        permissions: [Permission.HOST_MANAGER],
      });
      await state.putUser({ name: 'bob', passwordHash: 'h2', permissions: [] });
      expect(await state.getUser('ann')).toEqual({
        name: 'ann',
        passwordHash: 'h1',
        permissions: ['HOST_MANAGER'],
      });
      await state.putUser({
        name: 'ann',
        passwordHash: 'h3',
        permissions: [Permission.TASK_MANAGER, Permission.HOST_MANAGER],
      });
      expect(await state.getUser('ann')).toEqual({
        name: 'ann',
        passwordHash: 'h3',
        permissions: ['TASK_MANAGER', 'HOST_MANAGER'],
      });
      expect(await state.countUsers()).toBe(2);
    });

    it('registers hosts and names the unknown ones in the order asked', async () => {
      await state.addHosts([1, 2, 3]);
      await state.addHosts([3, 4, 9007199254740991]);
      expect(await state.countHosts()).toBe(5);
      expect((await state.listHostIds()).sort((a, b) => a - b)).toEqual([
        1, 2, 3, 4, 9007199254740991,
      ]);
      expect(await state.unknownHosts([5, 1, 9007199254740991, 7])).toEqual([5, 7]);
      expect(await state.unknownHosts([])).toEqual([]);
    });

    it('claims, replays, refuses and releases idempotency keys', async () => {
      const base = {
        owner: 'ann',
        key: 'k1',
        fingerprint: 'f1',
        now: 1000,
        ttlMs: 10_000,
        pendingTimeoutMs: 500,
      };
      expect(await state.claimIdempotencyKey(base)).toEqual({ kind: 'claimed' });
      expect(await state.claimIdempotencyKey({ ...base, now: 1100 })).toEqual({
        kind: 'inProgress',
      });
      expect(await state.claimIdempotencyKey({ ...base, fingerprint: 'f2', now: 1100 })).toEqual({
        kind: 'mismatch',
      });
      // Another owner has its own keys.
      expect(await state.claimIdempotencyKey({ ...base, owner: 'bob' })).toEqual({
        kind: 'claimed',
      });
      await state.completeIdempotencyKey('ann', 'k1', { status: 200, body: '{"a":1}' });
      expect(await state.claimIdempotencyKey({ ...base, now: 2000 })).toEqual({
        kind: 'replay',
        status: 200,
        body: '{"a":1}',
      });
      // Expired: claimed anew.
      expect(await state.claimIdempotencyKey({ ...base, fingerprint: 'f2', now: 11_000 })).toEqual({
        kind: 'claimed',
      });
      // Abandoned (never answered) past the pending timeout: claimed anew.
      expect(await state.claimIdempotencyKey({ ...base, owner: 'bob', now: 1600 })).toEqual({
        kind: 'claimed',
      });
      // Released: gone.
      await state.releaseIdempotencyKey('bob', 'k1');
      expect(
        await state.claimIdempotencyKey({ ...base, owner: 'bob', fingerprint: 'other', now: 1700 }),
      ).toEqual({
        kind: 'claimed',
      });
      // Releasing an answered key changes nothing.
      await state.completeIdempotencyKey('bob', 'k1', { status: 200, body: 'x' });
      await state.releaseIdempotencyKey('bob', 'k1');
      expect(
        await state.claimIdempotencyKey({ ...base, owner: 'bob', fingerprint: 'other', now: 1800 }),
      ).toEqual({
        kind: 'replay',
        status: 200,
        body: 'x',
      });
      expect(await state.purgeIdempotencyKeys(100_000)).toBe(2);
      expect(await state.claimIdempotencyKey({ ...base, now: 100_001 })).toEqual({
        kind: 'claimed',
      });
    });
  });
}
