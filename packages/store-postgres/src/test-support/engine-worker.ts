/**
 * An engine in a process of its own, for the crash and multi-process tests:
 *
 *   node --import tsx engine-worker.ts <pg URL | pglite:DIR> <schema> <taskId> <executor>
 *     [leaseSeconds=1] [concurrency=32] [sleepMs=1]
 *
 * Runs batch-stop handlers that sleep `sleepMs`, until task `taskId` has finished, then exits.
 * Prints, synchronously (a pipe on Linux), one line per event the parent counts:
 * `x <subtaskId> <runTime>` when a handler starts executing, `ack <subtaskId> <runTime>` once
 * the store has accepted the attempt's success, `done <status>` at the end.
 */
import { Engine, HandlerRegistry } from '@dagops/engine';
import { createPgDriver, createPgliteDriver, PostgresStore } from '../index.js';
import { BATCH_STOP_CLASSES } from './databases.js';

const [
  where = '',
  schema = '',
  taskArg = '',
  executor = '',
  lease = '1',
  conc = '32',
  sleep = '1',
] = process.argv.slice(2);
const write = (line: string) => process.stdout.write(`${line}\n`);

const driver = where.startsWith('pglite:')
  ? await createPgliteDriver(where.slice('pglite:'.length))
  : createPgDriver(where);
const store = await PostgresStore.open(driver, { schema, leaseSeconds: Number(lease) });
const sleepMs = Number(sleep);
const handlers = new HandlerRegistry();
for (const className of BATCH_STOP_CLASSES) {
  handlers.register(className, {
    async execute(ctx) {
      write(`x ${ctx.subtaskId} ${ctx.runTime}`);
      if (sleepMs > 0) await new Promise((resolve) => setTimeout(resolve, sleepMs));
    },
  });
}
const engine = new Engine({ store, handlers, executor, concurrency: Number(conc) });
engine.on('subtask.succeeded', ({ subtaskId, runTime }) => write(`ack ${subtaskId} ${runTime}`));
const task = await engine.waitForTask(Number(taskArg));
write(`done ${task.status}`);
await engine.close();
await store.close();
