import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { HandlerRegistry } from './handler.js';
import type { Template } from './template.js';

const INSTANT = 'test.Instant';

describe('the engine and the event loop', () => {
  it('lets timers run during a long run of handlers that settle at once', async () => {
    const hosts = Array.from({ length: 20_000 }, (_, i) => String(i + 1));
    const template: Template = {
      name: 'Instant',
      concurrency: 16,
      nodes: [{ key: 'step', className: INSTANT, name: 'Step', timeout: 60, splitKey: 'host_ids' }],
      edges: [],
    };
    const engine = new Engine({
      handlers: new HandlerRegistry().register(INSTANT, { execute: async () => {} }),
      concurrency: 16,
    });
    let succeeded = 0;
    engine.on('subtask.succeeded', () => succeeded++);
    const finished = new Promise<void>((resolve) => engine.once('task.finished', () => resolve()));
    await engine.submit(template, { listMap: { host_ids: hosts } }, { creator: 'test' });
    // Without yielding, the lanes chain microtasks until the task ends and this timer waits.
    const succeededWhenTimerFired = await new Promise<number>((resolve) =>
      setTimeout(() => resolve(succeeded), 0),
    );
    await finished;
    expect(succeeded).toBe(hosts.length);
    expect(succeededWhenTimerFired).toBeLessThan(hosts.length);
    await engine.close();
  });
});
