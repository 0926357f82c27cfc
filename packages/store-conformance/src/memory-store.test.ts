import { MemoryStore } from '@dagops/engine';
import { describeStoreConformance } from './describe-store-conformance.js';

describeStoreConformance('MemoryStore', () =>
  Promise.resolve({ store: new MemoryStore(), close: () => Promise.resolve() }),
);
