/**
 * Engines sharing one store, in one process: a handler hung past its lease, two engines racing
 * for the same work, a cancel reaching the engine that runs the subtask, a task finished by one
 * engine and awaited on another. On PostgreSQL (two pools: really concurrent) and on PGlite
 * (two stores on one database).
 */
import { PGlite } from '@electric-sql/pglite';
import {
  Engine,
  ErrorCode,
  HandlerRegistry,
  SubtaskStatus,
  type HandlerContext,
  type Store,
  type Template,
} from '@dagops/engine';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import {
  BATCH_STOP_CLASSES,
  batchStopTemplate,
  dropSchema,
  freshSchema,
  hostIds,
  postgresReachable,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();

/** Opens `count` stores on one fresh schema, closed (and the schema dropped) after the test. */
type OpenStores = (count: number, leaseSeconds: number) => Promise<PostgresStore[]>;

const onPostgres: OpenStores = async (count, leaseSeconds) => {
  const schema = freshSchema();
  const stores: PostgresStore[] = [];
  for (let i = 0; i < count; i++) {
    stores.push(
      await PostgresStore.open(createPgDriver(TEST_DATABASE_URL), { schema, leaseSeconds }),
    );
  }
  onTestFinished(async () => {
    for (const store of stores) await store.close();
    await dropSchema(schema);
  });
  return stores;
};

const onPglite: OpenStores = async (count, leaseSeconds) => {
  const db = await PGlite.create();
  const stores: PostgresStore[] = [];
  for (let i = 0; i < count; i++) {
    stores.push(await PostgresStore.open(await createPgliteDriver(db), { leaseSeconds }));
  }
  onTestFinished(async () => {
    for (const store of stores) await store.close();
    await db.close();
  });
  return stores;
};

const quiet = { error: () => {}, warn: () => {} };

function engineOn(store: Store, handlers: HandlerRegistry, executor: string, concurrency = 8) {
  const engine = new Engine({ store, handlers, executor, concurrency, logger: quiet });
  onTestFinished(() => engine.close());
  return engine;
}

/** A store whose heartbeats do nothing while `paused.value` holds (a stalled engine). */
function stalling(store: PostgresStore, paused: { value: boolean }): Store {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'heartbeat') {
        return (fences: Parameters<PostgresStore['heartbeat']>[0]) =>
          paused.value ? { lost: [], canceled: [] } : target.heartbeat(fences);
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

const oneNode = (retry = true): Template => ({
  name: 'one',
  nodes: [
    {
      key: 'a',
      className: 'test.Step',
      name: 'a',
      timeout: 60,
      ...(retry ? { retry: { maxAttempts: 3, initialIntervalSeconds: 0.01 } } : {}),
    },
  ],
  edges: [],
});

function describeLeases(name: string, open: OpenStores) {
  describe(name, () => {
    it('fires the signal of a handler hung past its lease, and retries the attempt elsewhere', async () => {
      const [storeA, storeB] = (await open(2, 0.3)) as [PostgresStore, PostgresStore];
      const paused = { value: true };
      const reasons: unknown[] = [];
      let firstStarted: () => void = () => {};
      const started = new Promise<void>((resolve) => (firstStarted = resolve));
      const handlers = new HandlerRegistry().register('test.Step', {
        execute: (ctx: HandlerContext) => {
          if (ctx.runTime > 1) return undefined;
          firstStarted();
          return new Promise<void>((_, reject) => {
            ctx.signal.addEventListener('abort', () => {
              reasons.push(ctx.signal.reason);
              reject(ctx.signal.reason as Error);
            });
          });
        },
      });
      const engineA = engineOn(stalling(storeA, paused), handlers, 'engine-a');
      const lost: number[] = [];
      engineA.on('subtask.leaseLost', ({ runTime }) => lost.push(runTime));
      const { id } = await engineA.submit(oneNode(), undefined, { creator: 'test' });
      await started;
      const engineB = engineOn(storeB, handlers, 'engine-b');
      const done = await engineB.waitForTask(id);
      expect(done.status).toBe('SUCCESSFUL');
      expect(done.subtasks[0]).toMatchObject({ status: SubtaskStatus.SUCCESSFUL, runTime: 2 });
      paused.value = false;
      const deadline = Date.now() + 3000;
      while (reasons.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toMatchObject({ code: ErrorCode.ATTEMPT_LEASE_LOST });
      expect(lost).toEqual([1]);
      const subtaskId = done.subtasks[0]?.id ?? -1;
      const logs = (await engineB.getSubtaskLogs(id, subtaskId)).map((l) => l.message);
      expect(
        logs.some((line) => line.startsWith(`attempt 1 failed [${ErrorCode.ATTEMPT_LEASE_LOST}]`)),
      ).toBe(true);
    });

    it('runs each attempt on exactly one engine when two race for the same work', async () => {
      const [storeA, storeB] = (await open(2, 30)) as [PostgresStore, PostgresStore];
      const runs = new Map<string, string[]>();
      const handlers = (executor: string) => {
        const registry = new HandlerRegistry();
        for (const className of BATCH_STOP_CLASSES) {
          registry.register(className, {
            async execute(ctx) {
              const key = `${ctx.subtaskId}:${ctx.runTime}`;
              runs.set(key, [...(runs.get(key) ?? []), executor]);
              await new Promise((resolve) => setImmediate(resolve));
            },
          });
        }
        return registry;
      };
      const engineA = engineOn(storeA, handlers('a'), 'engine-a', 16);
      engineOn(storeB, handlers('b'), 'engine-b', 16);
      const { id } = await engineA.submit(
        batchStopTemplate(32),
        { listMap: { host_ids: hostIds(150) } },
        { creator: 'test' },
      );
      const done = await engineA.waitForTask(id);
      expect(done.status).toBe('SUCCESSFUL');
      expect(runs.size).toBe(450);
      expect([...runs.values()].every((engines) => engines.length === 1)).toBe(true);
      const byEngine = [...runs.values()].flat();
      expect(byEngine.filter((e) => e === 'a').length).toBeGreaterThan(0);
      expect(byEngine.filter((e) => e === 'b').length).toBeGreaterThan(0);
    });

    it('cancels a subtask running on another engine at once, and tells waiters there', async () => {
      const [storeA, storeB] = (await open(2, 30)) as [PostgresStore, PostgresStore];
      let startedOn: (id: number) => void = () => {};
      const started = new Promise<number>((resolve) => (startedOn = resolve));
      const reasons: unknown[] = [];
      const handlers = new HandlerRegistry().register('test.Step', {
        execute: (ctx: HandlerContext) =>
          new Promise<void>((_, reject) => {
            startedOn(ctx.subtaskId);
            ctx.signal.addEventListener('abort', () => {
              reasons.push(ctx.signal.reason);
              reject(ctx.signal.reason as Error);
            });
          }),
      });
      const engineA = engineOn(storeA, handlers, 'engine-a');
      const { id } = await engineA.submit(oneNode(false), undefined, { creator: 'test' });
      const subtaskId = await started;
      const engineB = engineOn(storeB, new HandlerRegistry(), 'engine-b');
      const asked = Date.now();
      await engineB.cancelSubtask(id, subtaskId, 'ops');
      const done = await engineB.waitForTask(id);
      expect(Date.now() - asked).toBeLessThan(2000);
      expect(reasons[0]).toMatchObject({ code: ErrorCode.ATTEMPT_CANCELED });
      expect([done.status, done.operation]).toEqual(['FAILED', 'EXECUTE']);
      expect(done.subtasks[0]).toMatchObject({ status: 'FAILED', operation: 'CANCEL' });
    });
  });
}

describe.skipIf(!reachable)('PostgreSQL server', () =>
  describeLeases('leases on PostgreSQL', onPostgres),
);
describeLeases('leases on PGlite', onPglite);
