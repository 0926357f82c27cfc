/**
 * A submitter that dies between the two transactions of a task saved head first:
 *
 *   node --import tsx submit-worker.ts <pg URL | pglite:DIR> <schema> <hosts> <headSubtasks>
 *
 * Saves a batch stop of `hosts` hosts head first, holds back the second transaction (the
 * rest's rows) for ever, prints `saved <taskId>` once the first has committed, and waits to
 * be killed.
 */
import { createPgDriver, createPgliteDriver, PostgresStore } from '../index.js';
import { batchStopTemplate, holdingQueries, hostIds, insertTask } from './databases.js';

const [where = '', schema = '', hosts = '10', head = '4'] = process.argv.slice(2);

const driver = where.startsWith('pglite:')
  ? await createPgliteDriver(where.slice('pglite:'.length))
  : createPgDriver(where);
const store = await PostgresStore.open(holdingQueries(driver, 'materialize').driver, {
  schema,
  headSubtasks: Number(head),
});
const { task } = await insertTask(store, batchStopTemplate(), {
  listMap: { host_ids: hostIds(Number(hosts)) },
});
process.stdout.write(`saved ${task.id}\n`);
// Alive (and holding the rest back) until killed.
setInterval(() => {}, 60_000);
