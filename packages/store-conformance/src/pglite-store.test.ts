import { afterAll } from 'vitest';
import { describeEngineRuns } from './describe-engine-runs.js';
import { describeStoreConformance } from './describe-store-conformance.js';
import { pgliteStores } from './test-databases.js';

const stores = pgliteStores();
afterAll(() => stores.end());

describeStoreConformance('PostgresStore on PGlite', stores.open);
describeEngineRuns('PostgresStore on PGlite', stores.open);
