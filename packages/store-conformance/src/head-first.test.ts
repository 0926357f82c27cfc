/**
 * The whole conformance suite and the engine runs again, with every task of more than two
 * subtasks saved head first (headSubtasks: 1): the first subtask in the task's transaction,
 * the rest in a second one (migration 005), on PGlite and on the PostgreSQL server. The suite
 * expects a task's READY subtasks claimable once insertTask resolves, so each insertTask (and
 * insertTaskAndClaim) here also waits for the rest to be written (restsWritten); what a claim
 * sees before that is tested in store-postgres (head-first.test.ts).
 */
import type { Store } from '@dagops/engine';
import type { PostgresStore } from '@dagops/store-postgres';
import { afterAll, describe } from 'vitest';
import { describeEngineRuns } from './describe-engine-runs.js';
import {
  describeStoreConformance,
  type OpenStore,
  type StoreUnderTest,
} from './describe-store-conformance.js';
import { pgliteStores, postgresReachable, postgresStores } from './test-databases.js';

const reachable = await postgresReachable();

/** `open`, its stores' insertTask resolving once the task's rest is written too. */
function writingRests(open: OpenStore): OpenStore {
  const wrap = (store: Store): Store =>
    new Proxy(store, {
      get(target, key) {
        const value: unknown = Reflect.get(target, key, target);
        if (key === 'insertTask') {
          return async (...args: Parameters<Store['insertTask']>) => {
            await target.insertTask(...args);
            await (target as PostgresStore).restsWritten();
          };
        }
        // Its claim sees the head only (that is the point); what follows sees all.
        if (key === 'insertTaskAndClaim') {
          return async (...args: Parameters<PostgresStore['insertTaskAndClaim']>) => {
            const claims = await (target as PostgresStore).insertTaskAndClaim(...args);
            await (target as PostgresStore).restsWritten();
            return claims;
          };
        }
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
  return async (options) => {
    const handle = await open(options);
    const wrapped: StoreUnderTest = {
      ...handle,
      store: wrap(handle.store),
      ...(handle.another && { another: async () => wrap(await handle.another!()) }),
      ...(handle.reopen && { reopen: async () => wrap(await handle.reopen!()) }),
    };
    return wrapped;
  };
}

describe('PGlite, saved head first', () => {
  const stores = pgliteStores({ headSubtasks: 1 });
  afterAll(() => stores.end());
  describeStoreConformance('PostgresStore on PGlite, head first', writingRests(stores.open));
  describeEngineRuns('PostgresStore on PGlite, head first', writingRests(stores.open));
});

describe.skipIf(!reachable)('PostgreSQL server, saved head first', () => {
  const stores = postgresStores({ headSubtasks: 1 });
  afterAll(() => stores.end());
  describeStoreConformance('PostgresStore on PostgreSQL, head first', writingRests(stores.open));
  describeEngineRuns('PostgresStore on PostgreSQL, head first', writingRests(stores.open));
});
