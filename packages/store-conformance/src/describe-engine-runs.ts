/**
 * Engine runs on a store under test, compared with the same runs on the in-memory reference
 * store: batch stops (plain, with retries, failing then rolled back) and a cancel must end in
 * the same state, subtask by subtask.
 */
import {
  Engine,
  HandlerRegistry,
  MemoryStore,
  WAIT_NODE_CLASS_NAME,
  type HandlerContext,
  type Store,
  type Template,
  type TaskJson,
} from '@dagops/engine';
import { AgentClassName, batchStopAgentTemplate } from '@dagops/definitions';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { OpenStore } from './describe-store-conformance.js';

/** Batch stop (seed 002), the shipped template, with `extra` fields over it. */
export function batchStopTemplate(extra: Partial<Template> = {}): Template {
  return { ...batchStopAgentTemplate, ...extra };
}

/** `count` host ids, as OCP passes them. */
export function hostIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String(1001 + i));
}

/** Decides, per call, whether a handler call fails. */
type FailWhen = (kind: 'execute' | 'rollback', ctx: HandlerContext) => boolean;

/** Handlers for every class of the batch stop, writing a little context, failing on demand. */
function handlers(failWhen: FailWhen, hang: (ctx: HandlerContext) => boolean): HandlerRegistry {
  const registry = new HandlerRegistry();
  const act = (kind: 'execute' | 'rollback') => async (ctx: HandlerContext) => {
    await new Promise((resolve) => setImmediate(resolve));
    if (kind === 'execute' && hang(ctx)) {
      await new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error));
      });
    }
    if (failWhen(kind, ctx)) throw new Error(`${kind} of ${ctx.nodeKey} fails`);
    if (kind === 'execute' && ctx.parallelIdx >= 0) ctx.set(`done_${ctx.nodeKey}`, 'yes');
  };
  for (const className of [
    AgentClassName.PREPARE_STOP,
    AgentClassName.STOP_ALL,
    AgentClassName.FINISH,
    WAIT_NODE_CLASS_NAME,
  ]) {
    registry.register(className, { execute: act('execute'), rollback: act('rollback') });
  }
  return registry;
}

/** What must be the same on every store: each subtask's status, operation and runTime. */
function outcome(task: TaskJson) {
  return {
    status: task.status,
    operation: task.operation,
    subtasks: Object.fromEntries(
      task.subtasks.map((s) => [
        s.parallelIdx < 0 ? s.name + s.seriesId : `${s.name}[${s.parallelIdx}]`,
        `${s.status} ${s.operation} ${s.runTime}`,
      ]),
    ),
  };
}

interface Scenario {
  readonly template: Template;
  readonly hosts: number;
  readonly failWhen?: FailWhen;
  /** Whether an execution hangs until its signal is aborted. */
  readonly hangs?: (ctx: HandlerContext) => boolean;
  /** While the task runs: e.g. cancel the subtask that hangs (its id is given). */
  readonly during?: (engine: Engine, taskId: number, hung: Promise<number>) => Promise<void>;
  /** Once the task has ended: an operation (rollback, skip…); then the task is waited for again. */
  readonly then?: (engine: Engine, task: TaskJson) => Promise<void>;
}

async function run(store: Store, scenario: Scenario): Promise<ReturnType<typeof outcome>> {
  let hungId: (id: number) => void = () => {};
  const hung = new Promise<number>((resolve) => (hungId = resolve));
  const hangs = scenario.hangs ?? (() => false);
  const engine = new Engine({
    store,
    handlers: handlers(scenario.failWhen ?? (() => false), (ctx) => {
      const yes = hangs(ctx);
      if (yes) hungId(ctx.subtaskId);
      return yes;
    }),
    concurrency: 8,
    logger: { error: () => {}, warn: () => {} },
  });
  onTestFinished(() => engine.close());
  const submitted = await engine.submit(
    scenario.template,
    { listMap: { host_ids: hostIds(scenario.hosts) } },
    { creator: 'admin' },
  );
  await scenario.during?.(engine, submitted.id, hung);
  let task = await engine.waitForTask(submitted.id);
  if (scenario.then) {
    await scenario.then(engine, task);
    task = await engine.waitForTask(submitted.id);
  }
  return outcome(task);
}

const withRetries = (template: Template): Template => ({
  ...template,
  nodes: template.nodes.map((node) => ({
    ...node,
    retry: { maxAttempts: 3, initialIntervalSeconds: 0.01 },
  })),
});

const SCENARIOS: readonly [string, Scenario][] = [
  ['a batch stop of 40 hosts', { template: batchStopTemplate({ concurrency: 6 }), hosts: 40 }],
  [
    'a batch stop whose prepares fail once and are retried',
    {
      template: withRetries(batchStopTemplate()),
      hosts: 12,
      failWhen: (kind, ctx) =>
        kind === 'execute' &&
        ctx.nodeKey === 'prepare' &&
        ctx.parallelIdx % 3 === 0 &&
        ctx.runTime === 1,
    },
  ],
  [
    'a batch stop that fails at its second barrier and is rolled back',
    {
      template: batchStopTemplate({ concurrency: 4 }),
      hosts: 8,
      failWhen: (kind, ctx) => kind === 'execute' && ctx.nodeKey === 'waitStopped',
      then: async (engine, task) => {
        expect(task.status).toBe('FAILED');
        await engine.rollbackTask(task.id, 'ops');
      },
    },
  ],
  [
    'a batch stop whose rollback fails once, then is skipped and finished',
    {
      template: batchStopTemplate({ concurrency: 3 }),
      hosts: 4,
      failWhen: (kind, ctx) =>
        (kind === 'execute' && ctx.nodeKey === 'waitStopped') ||
        (kind === 'rollback' && ctx.nodeKey === 'waitPrepared'),
      then: async (engine, task) => {
        await engine.rollbackTask(task.id, 'ops');
        const failed = await engine.waitForTask(task.id);
        expect([failed.status, failed.operation]).toEqual(['FAILED', 'ROLLBACK']);
        const wait1 = failed.subtasks.find((s) => s.status === 'FAILED');
        if (!wait1) throw new Error('no failed rollback');
        await engine.skipSubtask(task.id, wait1.id, 'ops');
      },
    },
  ],
  [
    'a batch stop whose hung subtask is canceled',
    {
      template: batchStopTemplate(),
      hosts: 3,
      hangs: (ctx) => ctx.nodeKey === 'stopAll' && ctx.parallelIdx === 1,
      during: async (engine, taskId, hung) => {
        await engine.cancelSubtask(taskId, await hung, 'ops');
      },
    },
  ],
];

/** Registers engine runs on the stores `open` makes, each compared with the in-memory store. */
export function describeEngineRuns(name: string, open: OpenStore): void {
  describe(`${name}: engine runs end as on the in-memory store`, () => {
    it.each(SCENARIOS)('%s', async (_label, scenario) => {
      const handle = await open();
      onTestFinished(() => handle.close());
      const reference = await run(new MemoryStore(), scenario);
      const tested = await run(handle.store, scenario);
      expect(tested).toEqual(reference);
    });
  });
}
