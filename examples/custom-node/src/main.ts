/**
 * A user-defined task node running inside a template: `com.example.CheckDiskTask` reads its
 * host from its branch, writes an output that a downstream node reads, logs, honours its
 * AbortSignal, and retries a flaky first attempt.
 *
 * Run: node dist/main.js
 */
import { Engine, HandlerRegistry, type Handler, type Template } from '@dagops/engine';

const attemptsByHost = new Map<string, number>();

/** The custom node: checks a host's free disk, failing once per host to show retries. */
const checkDisk: Handler = {
  retry: { maxAttempts: 3, initialIntervalSeconds: 0.05 },
  async execute(ctx) {
    const host = ctx.get('host_id', 'host_ids') ?? 'unknown';
    const attempt = (attemptsByHost.get(host) ?? 0) + 1;
    attemptsByHost.set(host, attempt);
    ctx.log(`checking disk on host ${host} (attempt ${attempt}, key ${ctx.idempotencyKey})`);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 10);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(ctx.signal.reason as Error);
      });
    });
    if (attempt === 1)
      throw Object.assign(new Error(`host ${host} did not answer`), { code: 'EAGAIN' });
    ctx.setList('checked_hosts', [host]);
  },
};

/** Reads what every branch of the custom node wrote. */
const report: Handler = {
  execute(ctx) {
    ctx.log(`checked: ${(ctx.getList('checked_hosts') ?? []).join(', ')}`);
  },
};

const template: Template = {
  name: 'Check disks',
  nodes: [
    {
      key: 'check',
      className: 'com.example.CheckDiskTask',
      name: 'Check disk',
      timeout: 5,
      splitKey: 'host_ids',
    },
    { key: 'report', className: 'com.example.ReportTask', name: 'Report', timeout: 5 },
  ],
  edges: [{ from: 'check', to: 'report' }],
};

const handlers = new HandlerRegistry()
  .register('com.example.CheckDiskTask', checkDisk)
  .register('com.example.ReportTask', report);
const engine = new Engine({ handlers });
engine.on('subtask.attemptFailed', ({ subtaskId, error, retryDelayMs }) =>
  console.log(`subtask ${subtaskId}: ${error.message}; retrying in ${retryDelayMs} ms`),
);

const submitted = await engine.submit(
  template,
  { listMap: { host_ids: ['1001', '1002', '1003'] } },
  { creator: 'admin' },
);
const done = await engine.waitForTask(submitted.id);
console.log(`task ${done.id} ${done.status}`);
for (const subtask of done.subtasks) {
  const logs = await engine.getSubtaskLogs(done.id, subtask.id);
  console.log(
    `  ${subtask.name} [${subtask.parallelIdx}] ${subtask.status} runTime=${subtask.runTime}`,
  );
  for (const line of logs) console.log(`    ${line.message}`);
}
await engine.close();
if (done.status !== 'SUCCESSFUL') process.exit(1);
