/**
 * The reference of `pnpm bench:store`: graphile-worker processing `jobs` no-op jobs on the same
 * database, with the same concurrency, in a schema of its own.
 *
 *   tsx bench/reference-worker.ts <pg URL> <schema> <jobs> <concurrency>
 *
 * Adds the jobs in bulk, then times a worker from its start until the jobs table is empty
 * (every completion committed, as dagops' end-to-end time counts). graphile-worker runs with
 * its local queue (batched fetching) and batched completion, its own advice for throughput.
 * Prints one JSON line: {jobs, ms}.
 */
import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';

const [url = '', schema = '', jobsArg = '3002', concArg = '128'] = process.argv.slice(2);
const jobs = Number(jobsArg);
const concurrency = Number(concArg);
// Silent: a log line per job would be what is measured.
const logger = new Logger(() => () => {});
const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
await utils.migrate();
for (let added = 0; added < jobs; added += 5000) {
  const batch = Math.min(5000, jobs - added);
  await utils.addJobs(Array.from({ length: batch }, () => ({ identifier: 'noop', payload: {} })));
}
await utils.release();

const client = new pg.Client({ connectionString: url });
await client.connect();
const remaining = async () =>
  Number(
    (await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}._private_jobs`)).rows[0]
      ?.n,
  );
const started = performance.now();
const runner = await run({
  connectionString: url,
  schema,
  concurrency,
  noHandleSignals: true,
  pollInterval: 1000,
  logger,
  taskList: { noop: async () => {} },
  preset: {
    worker: {
      localQueue: { size: Math.max(concurrency * 2, 100) },
      completeJobBatchDelay: 0,
    },
  },
});
while ((await remaining()) > 0) await new Promise((resolve) => setTimeout(resolve, 2));
const ms = performance.now() - started;
await runner.stop();
await client.query(`DROP SCHEMA ${schema} CASCADE`);
await client.end();
process.stdout.write(`${JSON.stringify({ jobs, ms })}\n`);
