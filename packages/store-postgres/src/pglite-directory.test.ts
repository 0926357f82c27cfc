/**
 * PGlite keeps its data in a directory: an engine process killed with SIGKILL in the middle of
 * a batch stop, then restarted on the same directory, finishes it, and nothing acknowledged is
 * lost (what a single process can show without a server).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SubtaskStatus, TaskStatus } from '@dagops/engine';
import { expect, it, onTestFinished } from 'vitest';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { batchStopTemplate, hostIds, insertTask } from './test-support/databases.js';
import { kill9, startWorker, until } from './test-support/processes.js';

const HOSTS = 300;

it('resumes a batch stop on a PGlite directory after its engine process is killed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dagops-pglite-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const where = `pglite:${dir}`;
  let store = await PostgresStore.open(await createPgliteDriver(dir));
  const { task } = await insertTask(store, batchStopTemplate(16), {
    listMap: { host_ids: hostIds(HOSTS) },
  });
  await store.close();

  const first = startWorker(where, 'dagops', task.id, 'engine-1', { concurrency: 16 });
  await until(() => first.acks.length >= HOSTS + 50, 60_000, 'the stops to be under way');
  await kill9(first);
  const second = startWorker(where, 'dagops', task.id, 'engine-2', { concurrency: 16 });
  expect(await second.exited).toBe(0);

  store = await PostgresStore.open(await createPgliteDriver(dir));
  onTestFinished(() => store.close());
  expect((await store.getTask(task.id))?.status).toBe(TaskStatus.SUCCESSFUL);
  const subtasks = await store.listSubtasks(task.id);
  expect(subtasks.every((s) => s.status === SubtaskStatus.SUCCESSFUL)).toBe(true);
  const final = new Map(subtasks.map((s) => [s.id, s.runTime]));
  for (const [id, runTime] of first.acks) expect(final.get(id)).toBe(runTime);
  const executions = [...first.executions, ...second.executions].map(([id, rt]) => `${id}:${rt}`);
  expect(new Set(executions).size).toBe(executions.length);
  console.log(
    `PGlite directory: kill -9 after ${first.acks.length} acknowledged successes; ${executions.length - 3 * HOSTS} attempt(s) re-executed`,
  );
});
