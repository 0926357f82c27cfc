import { afterAll, describe } from 'vitest';
import { describeEngineRuns } from './describe-engine-runs.js';
import { describeStoreConformance } from './describe-store-conformance.js';
import { postgresReachable, postgresStores } from './test-databases.js';

const reachable = await postgresReachable();

describe.skipIf(!reachable)('PostgreSQL server', () => {
  const stores = postgresStores();
  afterAll(() => stores.end());
  describeStoreConformance('PostgresStore on PostgreSQL', stores.open);
  describeEngineRuns('PostgresStore on PostgreSQL', stores.open);
});
