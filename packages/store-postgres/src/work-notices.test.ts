/**
 * Work notices paced by the writing store (migration 007, store option workNoticeMs): on the
 * PostgreSQL server, a raw LISTEN counts the NOTIFYs a store sends while it runs a chain of
 * subtasks step by step, each step making the next subtask READY. Unpaced, every such step
 * notifies; paced, one notice per window, and the last one follows the last step.
 */
import { type Template } from '@dagops/engine';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgDriver } from './pg-driver.js';
import { PostgresStore } from './postgres-store.js';
import {
  dropSchema,
  freshSchema,
  insertTask,
  postgresReachable,
  TEST_DATABASE_URL,
} from './test-support/databases.js';

const reachable = await postgresReachable();
const LENGTH = 6;

/** n0 → n1 → … → n5. */
const chain: Template = {
  name: 'chain',
  nodes: Array.from({ length: LENGTH }, (_, i) => ({
    key: `n${i}`,
    className: 'com.example.Step',
    name: `step ${i}`,
    timeout: 60,
  })),
  edges: Array.from({ length: LENGTH - 1 }, (_, i) => ({ from: `n${i}`, to: `n${i + 1}` })),
};

/** Runs the chain through `store` (claim, complete, …); the work notices sent meanwhile. */
async function workNotices(workNoticeMs: number): Promise<{ during: number; after: number }> {
  const schema = freshSchema('dagops_notice');
  const store = await PostgresStore.open(createPgDriver(TEST_DATABASE_URL), {
    schema,
    workNoticeMs,
  });
  // Another store open: notify() says nothing when the writer is alone (migration 003).
  const other = await PostgresStore.open(createPgDriver(TEST_DATABASE_URL), { schema });
  const listener = new pg.Client({ connectionString: TEST_DATABASE_URL });
  onTestFinished(async () => {
    await listener.end();
    await store.close();
    await other.close();
    await dropSchema(schema);
  });
  await listener.connect();
  const payloads: string[] = [];
  listener.on('notification', (n) => payloads.push(n.payload ?? ''));
  await listener.query(`LISTEN ${schema}`);

  await insertTask(store, chain, {});
  const started = Date.now();
  for (let i = 0; i < LENGTH; i++) {
    const [claim] = await store.claimReady({ executor: 'e1', limit: 10, now: Date.now() });
    expect(claim?.subtask.nodeKey).toBe(`n${i}`);
    const fence = {
      taskId: claim!.task.id,
      subtaskId: claim!.subtask.id,
      runTime: 1,
      executor: 'e1',
    };
    await store.completeAttempt(fence, { input: {}, output: {}, now: Date.now() });
  }
  // Paced, the steps took less than one window: what follows is the window's trailing notice.
  if (workNoticeMs > 0) expect(Date.now() - started).toBeLessThan(workNoticeMs);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const during = payloads.filter((p) => p === 'w').length;
  await new Promise((resolve) => setTimeout(resolve, workNoticeMs + 200));
  return { during, after: payloads.filter((p) => p === 'w').length };
}

describe.skipIf(!reachable)('work notices on PostgreSQL', () => {
  it('unpaced (workNoticeMs 0), every step that makes work notifies', async () => {
    const { during, after } = await workNotices(0);
    // The submission, then n1 … n5 made READY.
    expect(during).toBeGreaterThanOrEqual(LENGTH);
    expect(after).toBe(during);
  });

  it('paced, one notice per window, and one after the last quiet step', async () => {
    const { during, after } = await workNotices(1000);
    // The submission and the first step's; the quiet steps' notice comes at the window's end.
    expect(during).toBeLessThanOrEqual(2);
    expect(after).toBe(during + 1);
  });
});
