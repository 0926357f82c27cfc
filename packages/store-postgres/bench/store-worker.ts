/**
 * One engine process of `pnpm bench:store`:
 *
 *   tsx bench/store-worker.ts <pg URL | pglite:DIR> <schema> <role: submit|join> <hosts>
 *     <engineConcurrency> <taskConcurrency> [headSubtasks] [workNoticeMs] (empty: the default)
 *     [warmHosts=2]
 *
 * Opens the store and an engine with no-op batch-stop handlers, runs a task of `warmHosts`
 * hosts to warm up (2: a small one; the measured size: as an engine that has run one before),
 * prints `ready`, and waits for a line on stdin: `go` (the `submit` worker then submits the
 * batch stop and prints `task <id>`) or `go <id>` (a joining worker). Exits once the task has
 * finished, printing one JSON line: {status, submitAt, firstStartAt, ended, finishedAt,
 * executions, cpuMs} (epoch ms with sub-ms precision; firstStartAt is this engine's first start
 * of that task; ended, [taskId, at] for each task whose last transition this engine made after
 * `go`, at its `task.finished` event; finishedAt, when `waitForTask` answered, which reads the
 * whole task after it ended; cpuMs, this process's CPU from `go` to finishedAt).
 */
import { createInterface } from 'node:readline';
import { AgentClassName, batchStopAgentTemplate } from '@dagops/definitions';
import { Engine, HandlerRegistry, type Template } from '@dagops/engine';
import { createPgDriver, createPgliteDriver, PostgresStore } from '../src/index.js';

const [
  where = '',
  schema = '',
  role = 'submit',
  hostsArg = '1000',
  engineConc = '64',
  taskConc = '64',
  head = '',
  notice = '',
  warmHosts = '2',
] = process.argv.slice(2);
const clock = () => performance.timeOrigin + performance.now();
const template: Template = { ...batchStopAgentTemplate, concurrency: Number(taskConc) };

const driver = where.startsWith('pglite:')
  ? await createPgliteDriver(where.slice('pglite:'.length))
  : createPgDriver(where, { maxConnections: 4 });
// Connections opened now, as in a long-running engine, not on the first claim.
await Promise.all(Array.from({ length: 3 }, () => driver.query('SELECT 1')));
const store = await PostgresStore.open(driver, {
  schema,
  ...(head === '' ? {} : { headSubtasks: Number(head) }),
  ...(notice === '' ? {} : { workNoticeMs: Number(notice) }),
});
const handlers = new HandlerRegistry();
for (const className of [
  AgentClassName.PREPARE_STOP,
  AgentClassName.STOP_ALL,
  AgentClassName.FINISH,
]) {
  handlers.register(className, { execute() {} });
}
const engine = new Engine({ store, handlers, concurrency: Number(engineConc) });
let executions = 0;
/** First start per task: the measured task is known only once submitted (or announced). */
const firstStarts = new Map<number, number>();
engine.on('subtask.started', ({ taskId }) => {
  executions++;
  if (!firstStarts.has(taskId)) firstStarts.set(taskId, clock());
});
// Warm up as a long-running engine is: validators compiled, SQL functions and plans cached
// (and with warmHosts of the measured size, the heap grown and the large paths compiled).
const warm = await engine.submit(
  template,
  { listMap: { host_ids: Array.from({ length: Number(warmHosts) }, (_, i) => String(i + 1)) } },
  { creator: 'warm-up' },
);
await engine.waitForTask(warm.id);
executions = 0;
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
const go = await new Promise<string>((resolve) => lines.once('line', resolve));
const cpuAtGo = process.cpuUsage();
/** Tasks this engine finished (its step made their last transition), and when it learned it. */
const ended: [number, number][] = [];
engine.on('task.finished', ({ taskId: id }) => ended.push([id, clock()]));
let submitAt: number | undefined;
let taskId = Number(go.split(' ')[1]); // a joining engine is told the task's id
if (role === 'submit') {
  submitAt = clock();
  const hosts = Array.from({ length: Number(hostsArg) }, (_, i) => String(1001 + i));
  const task = await engine.submit(
    template,
    { listMap: { host_ids: hosts } },
    { creator: 'bench' },
  );
  taskId = task.id;
  process.stdout.write(`task ${taskId}\n`);
}
const done = await engine.waitForTask(taskId);
const finishedAt = clock();
const cpu = process.cpuUsage(cpuAtGo);
const cpuMs = (cpu.user + cpu.system) / 1000;
const firstStartAt = firstStarts.get(taskId);
lines.close();
await engine.close();
await store.close();
process.stdout.write(
  `${JSON.stringify({ status: done.status, submitAt, firstStartAt, ended, finishedAt, executions, cpuMs })}\n`,
);
