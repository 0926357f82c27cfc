/**
 * An engine on this store ends an attempt and claims its next subtask in one transaction: a
 * lane asks for the next as soon as it has handed over a success (see the engine's
 * dispatcher), and the step batcher sends the two together, the end first. On PGlite: what is
 * shown here is one process's.
 */
import { PGlite } from '@electric-sql/pglite';
import { Engine, HandlerRegistry, type Template } from '@dagops/engine';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPgliteDriver } from './pglite-driver.js';
import { PostgresStore } from './postgres-store.js';
import { countingQueries } from './test-support/databases.js';

const STEP = 'test.Step';

/** A chain of `n` single subtasks: each one's end releases the next. */
function chain(n: number): Template {
  const keys = Array.from({ length: n }, (_, i) => `s${i}`);
  return {
    name: 'chain',
    nodes: keys.map((key) => ({ key, className: STEP, name: key, timeout: 60 })),
    edges: keys.slice(1).map((key, i) => ({ from: keys[i] as string, to: key })),
  };
}

describe('one transaction per subtask', () => {
  it('runs a chain of 12 in 12 steps: each ends one subtask and claims the next', async () => {
    const db = await PGlite.create();
    const { driver, count } = countingQueries(await createPgliteDriver(db), '.step(');
    const store = await PostgresStore.open(driver);
    const handlers = new HandlerRegistry();
    const order: string[] = [];
    handlers.register(STEP, { execute: (ctx) => void order.push(ctx.nodeKey) });
    const engine = new Engine({ store, handlers, concurrency: 1 });
    onTestFinished(async () => {
      await engine.close();
      await store.close();
      await db.close();
    });
    // Past the engine's looks for work when it starts (steps that find nothing to claim).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = count();
    const task = await engine.submit(chain(12), undefined, { creator: 'test' });
    const done = await engine.waitForTask(task.id);
    expect(done.status).toBe('SUCCESSFUL');
    expect(order).toEqual(Array.from({ length: 12 }, (_, i) => `s${i}`));
    // The first subtask is claimed in the save's transaction; each of the 12 ends goes in a
    // step with the claim of the next (the last one's claim finds nothing). Asked one after
    // the other, an end and its claim would take two steps: 23 or more.
    expect(count() - before).toBe(12);
    const subtasks = await store.listSubtasks(task.id);
    expect(subtasks.every((s) => s.status === 'SUCCESSFUL' && s.runTime === 1)).toBe(true);
  });
});
