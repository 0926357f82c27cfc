/**
 * `pnpm bench:read`: reading a large task's subtasks (`readTask`, what `Engine.getTask` and
 * `waitForTask` return and the HTTP service renders) on PostgreSQL, by a store that keeps the
 * task's shape (it saved the task, or claims from it: it reads what changes of each subtask
 * and builds the records from the shape) against one that does not (it reads whole records as
 * JSON). A batch stop of HOSTS hosts (default 10,000: 30,002 subtasks) is saved, its rest
 * written; then the two read it in turn, RUNS times each (default 7). Prints the medians and
 * their ratio; the last line is a JSON object. Environment: HOSTS, RUNS,
 * DAGOPS_TEST_DATABASE_URL.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPgDriver, PostgresStore } from '../src/index.js';
import { batchStopTemplate, hostIds, insertTask } from '../src/test-support/databases.js';
import { integerFromEnv } from '../../../scripts/bench-env.js';

const URL_ = process.env['DAGOPS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const HOSTS = integerFromEnv('HOSTS', 10_000);
const RUNS = integerFromEnv('RUNS', 7);
const schema = `dagops_read_${randomBytes(4).toString('hex')}`;

const keeper = await PostgresStore.open(createPgDriver(URL_), { schema });
const stranger = await PostgresStore.open(createPgDriver(URL_), { schema });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? NaN;
try {
  const { task } = await insertTask(keeper, batchStopTemplate(), {
    listMap: { host_ids: hostIds(HOSTS) },
  });
  await keeper.restsWritten();
  const timed = async (store: PostgresStore) => {
    const start = performance.now();
    const read = await store.readTask(task.id);
    const ms = performance.now() - start;
    if (read?.subtasks.length !== 3 * HOSTS + 2) throw new Error('the read missed subtasks');
    return ms;
  };
  // Once each first: statements prepared, caches warm.
  await timed(keeper);
  await timed(stranger);
  const withShape: number[] = [];
  const whole: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    withShape.push(await timed(keeper));
    whole.push(await timed(stranger));
  }
  const result = {
    subtasks: 3 * HOSTS + 2,
    runs: RUNS,
    withShapeMs: median(withShape),
    wholeRecordsMs: median(whole),
    ratio: median(withShape) / median(whole),
  };
  console.log(
    `readTask of a ${HOSTS.toLocaleString('en-US')}-host batch stop (${result.subtasks.toLocaleString('en-US')} subtasks), medians of ${RUNS}, alternating: with the shape kept ${result.withShapeMs.toFixed(1)} ms, whole records ${result.wholeRecordsMs.toFixed(1)} ms (${result.ratio.toFixed(2)}×)`,
  );
  console.log(JSON.stringify(result));
} finally {
  await keeper.close();
  await stranger.close();
  const client = new pg.Client({ connectionString: URL_ });
  await client.connect();
  await client.query(`DROP SCHEMA ${schema} CASCADE`);
  await client.end();
}
