/**
 * Measures how late a timeout fires while the engine is busy: a node whose handler never
 * settles (timeout 0.1 s) runs beside a 10k-host batch stop. Prints one JSON line.
 *
 * Usage: tsx bench/timeout-worker.ts
 */
import { Engine, type Template } from '@dagops/engine';
import { batchStopCase, noopHandlers } from './run-shapes.js';

const HUNG = 'bench.Hung';
const TIMEOUT_SECONDS = 0.1;
const handlers = noopHandlers().register(HUNG, { execute: () => new Promise<void>(() => {}) });
const engine = new Engine({ handlers, concurrency: 16, executor: 'bench' });
const hung: Template = {
  name: 'Hung',
  nodes: [{ key: 'hang', className: HUNG, name: 'Hang', timeout: TIMEOUT_SECONDS }],
  edges: [],
};

const latenessMs: number[] = [];
for (let i = 0; i < 5; i++) {
  const busy = batchStopCase(10_000, 16);
  const batch = await engine.submit(busy.template, busy.args, { creator: 'bench' });
  // Wait for the batch by event: rendering its JSON (waitForTask) is the bench's own work and
  // would block the event loop while the timeout is due.
  const batchDone = new Promise<void>((resolve) =>
    engine.on('task.finished', ({ taskId }) => taskId === batch.id && resolve()),
  );
  let started = 0;
  const startedAt = new Promise<void>((resolve) =>
    engine.once('subtask.started', () => {
      started = performance.now();
      resolve();
    }),
  );
  const failedAt = new Promise<number>((resolve) =>
    engine.once('subtask.failed', () => resolve(performance.now())),
  );
  await engine.submit(hung, {}, { creator: 'bench' });
  await startedAt;
  latenessMs.push((await failedAt) - started - TIMEOUT_SECONDS * 1000);
  await batchDone;
}
await engine.close();
console.log(JSON.stringify({ latenessMs }));
