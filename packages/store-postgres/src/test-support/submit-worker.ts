/**
 * A submitter that dies before the rest of a task saved head first is written:
 *
 *   node --import tsx submit-worker.ts <pg URL | pglite:DIR> <schema> <hosts> <headSubtasks>
 *     [restChunkSubtasks chunksWritten]
 *
 * Saves a batch stop of `hosts` hosts head first, lets `chunksWritten` chunks of its rest
 * (default 0) through and holds back the rest's rows (whole or in chunks) for ever, prints
 * `saved <taskId>` once those transactions have committed, and waits to be killed.
 */
import { createPgDriver, createPgliteDriver, PostgresStore } from '../index.js';
import { batchStopTemplate, holdingQueries, hostIds, insertTask } from './databases.js';

const [where = '', schema = '', hosts = '10', head = '4', chunk = '', through = '0'] =
  process.argv.slice(2);

const driver = where.startsWith('pglite:')
  ? await createPgliteDriver(where.slice('pglite:'.length))
  : createPgDriver(where);
// The rest whole (materialize) or a chunk at a time (write_rest): past the first `through`
// chunks, nothing gets through.
const held = holdingQueries(
  holdingQueries(driver, 'materialize').driver,
  '.write_rest(',
  Number(through),
);
const store = await PostgresStore.open(held.driver, {
  schema,
  headSubtasks: Number(head),
  ...(chunk === '' ? {} : { restChunkSubtasks: Number(chunk) }),
});
const { task } = await insertTask(store, batchStopTemplate(), {
  listMap: { host_ids: hostIds(Number(hosts)) },
});
// The chunks let through are written once their transactions commit: the next is held.
while (Number(through) > 0 && held.held() === 0) await new Promise((r) => setTimeout(r, 5));
process.stdout.write(`saved ${task.id}\n`);
// Alive (and holding the rest back) until killed.
setInterval(() => {}, 60_000);
