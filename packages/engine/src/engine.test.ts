import { describe, expect, it } from 'vitest';
import { Engine, type SubmitMeta } from './engine.js';
import type { EngineOptions } from './engine-options.js';
import {
  DagCycleError,
  DagopsError,
  ErrorCode,
  TaskArgumentsError,
  TemplateValidationError,
} from './errors.js';
import {
  HandlerRegistry,
  WAIT_NODE_CLASS_NAME,
  type Handler,
  type HandlerContext,
} from './handler.js';
import { MemoryStore } from './memory-store.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { Claim, ClaimRequest, Store } from './store.js';
import type { SubtaskRecord } from './task.js';
import type { RetryPolicy, Template, TemplateNode } from './template.js';
import {
  eventsNamed,
  memoryLogger,
  overrideStore,
  recordEvents,
  steppedClock,
  type RecordedEvent,
} from './test-support/engine-harness.js';

const STEP = 'test.Step';

type NodeSpec = Partial<TemplateNode> & { readonly key: string };

/** A template; nodes default to className {@link STEP}, timeout 60 s; edges as `'a>b'`. */
function template(
  nodes: readonly (string | NodeSpec)[],
  edges: readonly string[] = [],
  extra: Partial<Template> = {},
): Template {
  return {
    name: 'test task',
    nodes: nodes.map((spec) => {
      const node = typeof spec === 'string' ? { key: spec } : spec;
      return { className: STEP, name: node.key, timeout: 60, ...node };
    }),
    edges: edges.map((edge) => {
      const [from = '', to = ''] = edge.split('>');
      return { from, to };
    }),
    ...extra,
  };
}

type Execute = Handler['execute'];

/** An engine on a stepped manual clock, with every event and log line recorded. */
function setup(
  register: Readonly<Record<string, Handler | Execute>>,
  options: Omit<EngineOptions, 'clock' | 'handlers' | 'logger'> = {},
) {
  const clock = steppedClock();
  const handlers = new HandlerRegistry();
  for (const [className, handler] of Object.entries(register)) {
    handlers.register(className, typeof handler === 'function' ? { execute: handler } : handler);
  }
  const store = options.store ?? new MemoryStore();
  const logger = memoryLogger();
  const engine = new Engine({
    executor: 'engine-1',
    utcOffsetMinutes: 0,
    ...options,
    store,
    handlers,
    clock,
    logger,
  });
  const events = recordEvents(engine, clock);
  const isFinished = (taskId: number) =>
    events.some((event) => event.name === 'task.finished' && event.data.taskId === taskId);

  /** Submits and steps the clock until the task has finished. */
  async function run(tpl: Template, args?: unknown, meta: SubmitMeta = { creator: 'admin' }) {
    const submitted = await engine.submit(tpl, args, meta);
    const finished = await clock.runUntil(() => isFinished(submitted.id));
    const record = await store.getTask(submitted.id);
    const subtasks = await store.listSubtasks(submitted.id);
    return { submitted, finished, record, subtasks };
  }
  return { clock, store, engine, events, logger, run, isFinished };
}

/** The subtask of node `key` (branch `idx` of a split node). */
function sub(subtasks: readonly SubtaskRecord[], key: string, idx = -1): SubtaskRecord {
  const found = subtasks.find((s) => s.nodeKey === key && s.parallelIdx === idx);
  if (!found) throw new Error(`no subtask ${key}[${idx}]`);
  return found;
}

/** Statuses by node key (split nodes as `key[i]`). */
function statuses(subtasks: readonly SubtaskRecord[]): Record<string, string> {
  return Object.fromEntries(
    subtasks.map((s) => [
      s.parallelIdx < 0 ? s.nodeKey : `${s.nodeKey}[${s.parallelIdx}]`,
      s.status,
    ]),
  );
}

function fail(message: string, props: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), props);
}

const startedOf = (events: readonly RecordedEvent[], subtaskId: number) =>
  eventsNamed(events, 'subtask.started').filter((e) => e.data.subtaskId === subtaskId);

describe('submit', () => {
  it('returns the task as at submission: RUNNING, roots READY, the rest PENDING', async () => {
    const { run } = setup({ [STEP]: () => {} });
    const { submitted, finished } = await run(template(['a', 'b', 'c'], ['a>c', 'b>c']), {
      stringMap: { host_id: '2' },
    });
    expect(finished).toBe(true);
    expect(submitted.status).toBe(TaskStatus.RUNNING);
    expect(submitted.operation).toBe(Operation.EXECUTE);
    expect(submitted.creator).toBe('admin');
    expect(submitted.hostId).toBe(2);
    expect(submitted.endTime).toBeUndefined();
    const shape = submitted.subtasks.map((s) => [s.name, s.status, s.runTime, s.operation]);
    expect(shape.sort()).toEqual([
      ['a', 'READY', 1, 'EXECUTE'],
      ['b', 'READY', 1, 'EXECUTE'],
      ['c', 'PENDING', 1, 'EXECUTE'],
    ]);
    // The returned object is a snapshot: running the task (done by now) did not change it.
    for (const subtask of submitted.subtasks) {
      expect(subtask.startTime).toBeUndefined();
      expect(subtask.endTime).toBeUndefined();
    }
  });

  it('runs the task to completion: every subtask and the task SUCCESSFUL, with times', async () => {
    const { clock, engine, run } = setup({
      [STEP]: async (ctx) => clock.sleep(ctx.nodeKey === 'a' ? 1000 : 2000),
    });
    const t0 = clock.now();
    const { submitted, record, subtasks } = await run(template(['a', 'b'], ['a>b']));
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(statuses(subtasks)).toEqual({ a: 'SUCCESSFUL', b: 'SUCCESSFUL' });
    expect([sub(subtasks, 'a').startTime, sub(subtasks, 'a').endTime]).toEqual([t0, t0 + 1000]);
    expect([sub(subtasks, 'b').startTime, sub(subtasks, 'b').endTime]).toEqual([
      t0 + 1000,
      t0 + 3000,
    ]);
    expect(record?.endTime).toBe(t0 + 3000);
    expect(sub(subtasks, 'a').executor).toBe('engine-1');
    const json = await engine.getTask(submitted.id);
    expect(json.status).toBe('SUCCESSFUL');
    expect(json.endTime).toBe(new Date(t0 + 3000).toISOString().replace('Z', '+00:00'));
  });

  it('runs the built-in WaitNode without registering it', async () => {
    const { run } = setup({});
    const wait = { className: WAIT_NODE_CLASS_NAME };
    const { record, subtasks } = await run(
      template(
        [
          { key: 'w1', ...wait },
          { key: 'w2', ...wait },
        ],
        ['w1>w2'],
      ),
    );
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(statuses(subtasks)).toEqual({ w1: 'SUCCESSFUL', w2: 'SUCCESSFUL' });
  });

  it('gives the handler its identity: ids, runTime, idempotency key, node key, branch', async () => {
    const seen: Partial<HandlerContext>[] = [];
    const { run } = setup({
      [STEP]: (ctx) => {
        const { taskId, subtaskId, runTime, idempotencyKey, nodeKey, parallelIdx } = ctx;
        seen.push({ taskId, subtaskId, runTime, idempotencyKey, nodeKey, parallelIdx });
      },
    });
    const { submitted } = await run(template(['a', { key: 's', splitKey: 'host_ids' }], ['a>s']), {
      listMap: { host_ids: ['h1', 'h2'] },
    });
    const ids = submitted.subtasks.map((s) => s.id);
    expect(seen.sort((x, y) => (x.subtaskId ?? 0) - (y.subtaskId ?? 0))).toEqual([
      {
        taskId: 1,
        subtaskId: ids[0],
        runTime: 1,
        idempotencyKey: `1:${ids[0]}:1`,
        nodeKey: 'a',
        parallelIdx: -1,
      },
      {
        taskId: 1,
        subtaskId: ids[1],
        runTime: 1,
        idempotencyKey: `1:${ids[1]}:1`,
        nodeKey: 's',
        parallelIdx: 0,
      },
      {
        taskId: 1,
        subtaskId: ids[2],
        runTime: 1,
        idempotencyKey: `1:${ids[2]}:1`,
        nodeKey: 's',
        parallelIdx: 1,
      },
    ]);
  });
});

describe('submit saves and claims in one store call', () => {
  /** A memory store whose calls at submission are logged, with the engine's events. */
  function logged(overrides: (inner: MemoryStore, log: string[]) => Partial<Store> = () => ({})) {
    const log: string[] = [];
    const inner = new MemoryStore();
    const store = overrideStore(inner, {
      insertTask: (expanded, creator) => (log.push('save'), inner.insertTask(expanded, creator)),
      insertTaskAndClaim: (expanded, creator, request) => {
        log.push(`save+claim ${request.limit}`);
        return inner.insertTaskAndClaim(expanded, creator, request);
      },
      claimReady: (request) => (log.push(`claim ${request.limit}`), inner.claimReady(request)),
      ...overrides(inner, log),
    });
    return { store, log };
  }

  it('starts the first subtasks from the claim made in the save, after task.created', async () => {
    const { store, log } = logged();
    const { engine, clock, isFinished } = setup(
      { [STEP]: () => clock.sleep(1000) },
      { store, concurrency: 4 },
    );
    engine.on('task.created', () => log.push('created'));
    engine.on('subtask.started', ({ subtaskId }) => log.push(`started ${subtaskId}`));
    const task = await engine.submit(template(['a', 'b', 'c'], ['a>c']), undefined, {
      creator: 'admin',
    });
    const [a, b] = task.subtasks;
    // The first claim is the engine's look for work at start; none comes between save and start.
    expect(log).toEqual([
      'claim 4',
      'save+claim 4',
      'created',
      `started ${a?.id}`,
      `started ${b?.id}`,
    ]);
    expect(await clock.runUntil(() => isFinished(task.id))).toBe(true);
  });

  it('saves without claiming when the engine is full, and runs the task once a slot frees', async () => {
    const { store, log } = logged();
    const { engine, clock, isFinished } = setup(
      { [STEP]: () => clock.sleep(1000) },
      { store, concurrency: 1 },
    );
    const first = await engine.submit(template(['a']), undefined, { creator: 'admin' });
    const second = await engine.submit(template(['b']), undefined, { creator: 'admin' });
    expect(log).toEqual(['claim 1', 'save+claim 1', 'save']);
    expect(await clock.runUntil(() => isFinished(first.id) && isFinished(second.id))).toBe(true);
  });

  it('claims as usual again after a save that failed (nothing saved, nothing claimed)', async () => {
    let failures = 1;
    const { store, log } = logged((inner, log) => ({
      insertTaskAndClaim: (expanded, creator, request) => {
        log.push(`save+claim ${request.limit}`);
        if (failures-- > 0) return Promise.reject(new Error('connection reset'));
        return inner.insertTaskAndClaim(expanded, creator, request);
      },
    }));
    const { engine, clock, isFinished } = setup({ [STEP]: () => {} }, { store, concurrency: 2 });
    await expect(engine.submit(template(['a']), undefined, { creator: 'admin' })).rejects.toThrow(
      'connection reset',
    );
    const task = await engine.submit(template(['a']), undefined, { creator: 'admin' });
    expect(log.slice(0, 3)).toEqual(['claim 2', 'save+claim 2', 'save+claim 2']);
    expect(await clock.runUntil(() => isFinished(task.id))).toBe(true);
    expect(engine.running).toBe(0);
  });
});

describe('a lane on a store that answers later', () => {
  /** A memory store answering later (applied when called, as a database commits), logged. */
  function later() {
    const log: string[] = [];
    const inner = new MemoryStore();
    const keys = new Map<number, string>();
    const answer = <T>(value: T, line: string) =>
      new Promise<T>((resolve) =>
        queueMicrotask(() => {
          log.push(line);
          resolve(value);
        }),
      );
    const claimed = (claims: readonly Claim[]) => {
      for (const { subtask } of claims) keys.set(subtask.id, subtask.nodeKey);
      return `claimed ${claims.map((c) => c.subtask.nodeKey).join(',')}`;
    };
    const store = overrideStore(inner, {
      insertTaskAndClaim: async (expanded, creator, request) => {
        const claims = await inner.insertTaskAndClaim(expanded, creator, request);
        log.push(`save+claim ${request.limit}`);
        return answer(claims, claimed(claims));
      },
      claimReady: (request) => {
        const claims = inner.claimReady(request);
        log.push(`claim ${request.limit}`);
        return answer(claims, claimed(claims));
      },
      completeAttempt: (fence, result) => {
        const key = keys.get(fence.subtaskId);
        log.push(`complete ${key}`);
        return answer(inner.completeAttempt(fence, result), `completed ${key}`);
      },
      failAttempt: (fence, result) => {
        const key = keys.get(fence.subtaskId);
        log.push(`fail ${key}`);
        return answer(inner.failAttempt(fence, result), `failed ${key}`);
      },
    });
    return { store, log };
  }

  it('asks for its next subtask right after handing over a success, before the answer', async () => {
    const { store, log } = later();
    const { engine, clock, isFinished } = setup({ [STEP]: () => {} }, { store, concurrency: 1 });
    const task = await engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    expect(await clock.runUntil(() => isFinished(task.id))).toBe(true);
    // After the save's claim: the end of a, then at once the claim that takes b (released by
    // that end, which the store applies first), then both answers; likewise after b.
    const from = log.indexOf('complete a');
    expect(log.slice(from, from + 8)).toEqual([
      'complete a',
      'claim 1',
      'completed a',
      'claimed b',
      'complete b',
      'claim 1',
      'completed b',
      'claimed ',
    ]);
  });

  it('asks for the next subtask only after a failure is answered (never ahead of its write)', async () => {
    const { store, log } = later();
    const { engine, clock, isFinished } = setup(
      {
        [STEP]: () => {
          throw new Error('no');
        },
      },
      { store, concurrency: 1 },
    );
    const task = await engine.submit(template(['a']), undefined, { creator: 'admin' });
    expect(await clock.runUntil(() => isFinished(task.id))).toBe(true);
    const failed = log.indexOf('fail a');
    expect(failed).toBeGreaterThan(-1);
    expect(log.indexOf('claim 1', failed)).toBeGreaterThan(log.indexOf('failed a'));
  });
});

describe('submit refuses bad input and stores nothing', () => {
  const good = template(['a']);
  const cases: readonly [
    string,
    unknown,
    unknown,
    unknown,
    new (...a: never[]) => DagopsError,
    number,
  ][] = [
    ['no creator', good, undefined, {}, TaskArgumentsError, ErrorCode.TASK_ARGUMENTS_INVALID],
    [
      'empty creator',
      good,
      undefined,
      { creator: '' },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
    ['no meta', good, undefined, undefined, TaskArgumentsError, ErrorCode.TASK_ARGUMENTS_INVALID],
    [
      'unknown type',
      good,
      undefined,
      { creator: 'a', type: 'CRON' },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
    [
      'fractional definition id',
      good,
      undefined,
      { creator: 'a', taskDefinitionId: 1.5 },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
    [
      'template not an object',
      'nope',
      undefined,
      { creator: 'a' },
      TemplateValidationError,
      ErrorCode.TEMPLATE_INVALID,
    ],
    [
      'template without nodes',
      { name: 't', edges: [] },
      undefined,
      { creator: 'a' },
      TemplateValidationError,
      ErrorCode.TEMPLATE_INVALID,
    ],
    [
      'no handler for a className',
      template([{ key: 'a', className: 'x.Unknown' }]),
      undefined,
      { creator: 'a' },
      TemplateValidationError,
      ErrorCode.TEMPLATE_INVALID,
    ],
    [
      'a cycle',
      template(['a', 'b'], ['a>b', 'b>a']),
      undefined,
      { creator: 'a' },
      DagCycleError,
      ErrorCode.TASK_DAG_CYCLE,
    ],
    [
      'missing split list',
      template([{ key: 'a', splitKey: 'host_ids' }]),
      {},
      { creator: 'a' },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
    [
      'empty split list',
      template([{ key: 'a', splitKey: 'host_ids' }]),
      { listMap: { host_ids: [] } },
      { creator: 'a' },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
    [
      'a non-string argument',
      good,
      { stringMap: { host_id: 2 } },
      { creator: 'a' },
      TaskArgumentsError,
      ErrorCode.TASK_ARGUMENTS_INVALID,
    ],
  ];

  it.each(cases)('%s', async (_label, tpl, args, meta, type, code) => {
    const { engine, events, store } = setup({ [STEP]: () => {} });
    const submitting = engine.submit(tpl, args, meta as SubmitMeta);
    await expect(submitting).rejects.toBeInstanceOf(type);
    await expect(submitting).rejects.toMatchObject({ code });
    await expect(engine.getTask(1)).rejects.toMatchObject({ code: ErrorCode.TASK_NOT_FOUND });
    expect(await store.getTask(1)).toBeUndefined();
    expect(await store.listSubtasks(1)).toEqual([]);
    expect(events).toEqual([]);
  });
});

describe('not found (20000)', () => {
  it('rejects an unknown task, and logs of a subtask that is not in the task', async () => {
    const { engine, run } = setup({ [STEP]: () => {} });
    const first = await run(template(['a']));
    const second = await run(template(['b']));
    const other = second.subtasks[0]?.id ?? -1;
    const notFound = { code: ErrorCode.TASK_NOT_FOUND };
    await expect(engine.getTask(99)).rejects.toMatchObject(notFound);
    await expect(engine.waitForTask(99)).rejects.toMatchObject(notFound);
    await expect(engine.getSubtaskLogs(99, other)).rejects.toMatchObject(notFound);
    await expect(engine.getSubtaskLogs(first.submitted.id, other)).rejects.toMatchObject(notFound);
    await expect(engine.getSubtaskLogs(first.submitted.id, 12345)).rejects.toMatchObject(notFound);
    await expect(engine.getSubtaskLogs(second.submitted.id, other)).resolves.toEqual([]);
  });
});

describe('readiness', () => {
  it('starts a subtask only once all its upstreams are SUCCESSFUL', async () => {
    const durations: Record<string, number> = { a: 1000, b: 5000, c: 2000, d: 1000 };
    const { clock, events, run } = setup({
      [STEP]: async (ctx) => clock.sleep(durations[ctx.nodeKey] ?? 0),
    });
    const t0 = clock.now();
    const { subtasks } = await run(template(['a', 'b', 'c', 'd'], ['a>b', 'a>c', 'b>d', 'c>d']));
    const startAt = (key: string) => startedOf(events, sub(subtasks, key).id)[0]?.at;
    expect([startAt('a'), startAt('b'), startAt('c'), startAt('d')]).toEqual([
      t0,
      t0 + 1000,
      t0 + 1000,
      t0 + 6000,
    ]);
    const readyD = eventsNamed(events, 'subtask.ready').find(
      (e) => e.data.subtaskId === sub(subtasks, 'd').id,
    );
    expect(readyD?.at).toBe(t0 + 6000);
  });

  it('keeps READY+RUNNING within the task concurrency once the roots have drained', async () => {
    const { clock, store, engine } = setup({
      [STEP]: async (ctx) => clock.sleep(1000 + 100 * Number(ctx.nodeKey.slice(1))),
    });
    // Five roots (all READY at submission, as OCP), then r0 unblocks four more.
    const roots = ['r0', 'r1', 'r2', 'r3', 'r4'];
    const downs = ['d5', 'd6', 'd7', 'd8'];
    const tpl = template(
      [...roots, ...downs],
      downs.map((d) => `r0>${d}`),
      { concurrency: 2 },
    );
    const submitted = await engine.submit(tpl, undefined, { creator: 'admin' });
    expect(submitted.subtasks.filter((s) => s.status === 'READY')).toHaveLength(5);
    let drained = false;
    let maxRunning = 0;
    for (let step = 0; step < 1000; step++) {
      const list = await store.listSubtasks(submitted.id);
      const running = list.filter((s) => s.status === SubtaskStatus.RUNNING).length;
      const active = running + list.filter((s) => s.status === SubtaskStatus.READY).length;
      maxRunning = Math.max(maxRunning, running);
      expect(running).toBeLessThanOrEqual(2);
      if (active <= 2) drained = true;
      if (drained) expect(active).toBeLessThanOrEqual(2);
      if ((await store.getTask(submitted.id))?.status !== TaskStatus.RUNNING) break;
      const next = clock.nextDue();
      if (next === undefined) break;
      await clock.advanceTo(next);
    }
    expect(maxRunning).toBe(2);
    expect(drained).toBe(true);
    expect((await store.getTask(submitted.id))?.status).toBe(TaskStatus.SUCCESSFUL);
  });

  it('defaults the task concurrency to 10', async () => {
    let inFlight = 0;
    let most = 0;
    const { clock, run } = setup(
      {
        [STEP]: async () => {
          most = Math.max(most, ++inFlight);
          await clock.sleep(1000);
          inFlight--;
        },
      },
      { concurrency: 100 },
    );
    const keys = Array.from({ length: 25 }, (_, i) => `n${i}`);
    const { record } = await run(template(keys));
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(most).toBe(10);
  });

  it('never runs more subtasks at once than the engine concurrency, across tasks', async () => {
    let inFlight = 0;
    let most = 0;
    const byTask = new Map<number, number>();
    const { clock, engine, store, isFinished } = setup(
      {
        [STEP]: async (ctx) => {
          most = Math.max(most, ++inFlight);
          byTask.set(ctx.taskId, (byTask.get(ctx.taskId) ?? 0) + 1);
          await clock.sleep(1000);
          inFlight--;
        },
      },
      { concurrency: 3 },
    );
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const t1 = await engine.submit(template(keys), undefined, { creator: 'admin' });
    const t2 = await engine.submit(template(keys), undefined, { creator: 'admin' });
    await clock.advanceBy(1000);
    // Both tasks got work in the first round: the engine is fair across tasks.
    expect(byTask.get(t1.id)).toBeGreaterThan(0);
    expect(byTask.get(t2.id)).toBeGreaterThan(0);
    // RUNNING in the store, not only handlers in flight, stays within the limit.
    let mostRunning = 0;
    while (!isFinished(t1.id) || !isFinished(t2.id)) {
      const all = [...(await store.listSubtasks(t1.id)), ...(await store.listSubtasks(t2.id))];
      const running = all.filter((s) => s.status === SubtaskStatus.RUNNING).length;
      mostRunning = Math.max(mostRunning, running);
      const next = clock.nextDue();
      if (next === undefined) break;
      await clock.advanceTo(next);
    }
    expect(isFinished(t1.id) && isFinished(t2.id)).toBe(true);
    expect(mostRunning).toBe(3);
    expect(most).toBe(3);
    expect(engine.running).toBe(0);
  });
});

describe('context', () => {
  it("gives a root the task's arguments, and saves input and output in the store", async () => {
    const seen: unknown[] = [];
    const { store, run } = setup({
      [STEP]: (ctx) => {
        seen.push([ctx.get('host_id'), ctx.getList('host_ids'), ctx.get('prohibit_rollback')]);
        ctx.set('out', 'x');
      },
    });
    const { submitted } = await run(template(['a']), {
      stringMap: { host_id: '2' },
      listMap: { host_ids: ['1', '2'] },
    });
    expect(seen).toEqual([['2', ['1', '2'], 'false']]);
    const id = submitted.subtasks[0]?.id ?? -1;
    const contexts = await store.getSubtaskContexts(submitted.id, id);
    expect(contexts?.input).toEqual({});
    expect(contexts?.output).toEqual({ stringMap: { out: 'x' } });
  });

  it('merges upstream outputs: strings, and lists united without duplicates', async () => {
    const seen: Record<string, unknown> = {};
    const { run } = setup({
      [STEP]: (ctx) => {
        if (ctx.nodeKey === 'a') {
          ctx.set('x', '1');
          ctx.set('same', 'v');
          ctx.setList('l', ['1', '2']);
        } else if (ctx.nodeKey === 'b') {
          ctx.set('y', '2');
          ctx.set('same', 'v');
          ctx.setList('l', ['2', '3']);
        } else {
          seen['x'] = ctx.get('x');
          seen['y'] = ctx.get('y');
          seen['same'] = ctx.get('same');
          seen['host_id'] = ctx.get('host_id');
          seen['l'] = ctx.getList('l');
        }
      },
    });
    const { record } = await run(template(['a', 'b', 'c'], ['a>c', 'b>c']), {
      stringMap: { host_id: '7' },
    });
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(seen).toMatchObject({ x: '1', y: '2', same: 'v', host_id: '7' });
    expect([...(seen['l'] as string[])].sort()).toEqual(['1', '2', '3']);
  });

  it('passes context along a chain: a downstream sees what every ancestor wrote', async () => {
    let seen: unknown;
    const { run } = setup({
      [STEP]: (ctx) => {
        if (ctx.nodeKey === 'c') seen = [ctx.get('from_a'), ctx.get('from_b')];
        else ctx.set(`from_${ctx.nodeKey}`, ctx.nodeKey);
      },
    });
    await run(template(['a', 'b', 'c'], ['a>b', 'b>c']));
    expect(seen).toEqual(['a', 'b']);
  });

  it('fails a subtask whose upstreams disagree on a string with 20002, for good', async () => {
    let cRan = false;
    const { events, run } = setup({
      [STEP]: (ctx) => {
        if (ctx.nodeKey === 'c') cRan = true;
        else ctx.set('k', ctx.nodeKey);
      },
    });
    const { record, subtasks } = await run(
      template(['a', 'b', { key: 'c', retry: { maxAttempts: 3 } }], ['a>c', 'b>c']),
    );
    expect(cRan).toBe(false);
    expect(record?.status).toBe(TaskStatus.FAILED);
    const c = sub(subtasks, 'c');
    expect(c.status).toBe(SubtaskStatus.FAILED);
    expect(c.error).toMatchObject({ code: ErrorCode.TASK_CONTEXT_ERROR });
    expect(c.error?.message).toContain('"k"');
    expect(c.runTime).toBe(1);
    expect(eventsNamed(events, 'subtask.attemptFailed')).toEqual([]);
    expect(eventsNamed(events, 'subtask.failed').map((e) => e.data.error.code)).toEqual([20002]);
  });

  it('gives each branch of a split node its own element with get(key, listKey)', async () => {
    const seen: string[] = [];
    const { run } = setup({
      [STEP]: (ctx) => {
        seen.push(`${ctx.nodeKey}[${ctx.parallelIdx}]=${ctx.get('host_id', 'host_ids')}`);
      },
    });
    await run(template(['plain', { key: 's', splitKey: 'host_ids' }], ['plain>s']), {
      stringMap: { host_id: 'own' },
      listMap: { host_ids: ['h1', 'h2', 'h3'] },
    });
    expect(seen.sort()).toEqual(['plain[-1]=own', 's[0]=h1', 's[1]=h2', 's[2]=h3']);
  });

  it.each(['constructor', '__proto__', 'toString'])(
    'reads the branch element of a list named %j after an upstream wrote another list',
    async (listKey) => {
      const seen: unknown[] = [];
      const { run } = setup({
        [STEP]: (ctx) => {
          if (ctx.nodeKey === 'a') ctx.setList('other', ['x']);
          else seen.push(ctx.get('h', listKey));
        },
      });
      const { record } = await run(template(['a', { key: 's', splitKey: listKey }], ['a>s']), {
        listMap: Object.fromEntries([[listKey, ['e0', 'e1']]]),
      });
      expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
      expect(seen.sort()).toEqual(['e0', 'e1']);
    },
  );

  it('answers undefined for keys never set, even those Object.prototype has', async () => {
    const seen: unknown[] = [];
    const { run } = setup({
      [STEP]: (ctx) => {
        if (ctx.nodeKey === 'a') {
          ctx.set('s', '1');
          ctx.setList('l', ['1']);
        } else {
          seen.push(ctx.get('constructor'), ctx.get('toString'), ctx.getList('hasOwnProperty'));
        }
      },
    });
    // `b` reads from its saved input (a delta with maps), `a` from the task context only.
    await run(template(['a', 'b'], ['a>b']));
    expect(seen).toEqual([undefined, undefined, undefined]);
  });

  it.each(['constructor', '__proto__'])(
    'merges upstream outputs that write a string and a list named %j',
    async (key) => {
      const seen: unknown[] = [];
      const { run } = setup({
        [STEP]: (ctx) => {
          if (ctx.nodeKey === 'a') {
            ctx.setList(key, ['1']);
            ctx.set(key, 'v');
          } else if (ctx.nodeKey === 'b') ctx.setList('other', ['2']);
          else seen.push(ctx.getList(key), ctx.getList('other'), ctx.get(key));
        },
      });
      const { record } = await run(template(['a', 'b', 'c'], ['a>c', 'b>c']));
      expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
      expect(seen).toEqual([['1'], ['2'], 'v']);
    },
  );

  it('reuses the saved input on a retry instead of merging the upstreams again', async () => {
    /** Hands a retry conflicting upstream outputs: an engine that merged again would fail. */
    class TamperingStore extends MemoryStore {
      readonly claims: { nodeKey: string; input: unknown }[] = [];
      override claimReady(request: ClaimRequest): Claim[] {
        return super.claimReady(request).map((claim) => {
          this.claims.push({ nodeKey: claim.subtask.nodeKey, input: claim.input });
          if (claim.attempt === 1) return claim;
          const bogus = [{ stringMap: { k: 'x' } }, { stringMap: { k: 'y' } }];
          return { ...claim, upstreamOutputs: bogus };
        });
      }
    }
    const store = new TamperingStore();
    const seen: unknown[] = [];
    let attempts = 0;
    const { run } = setup(
      {
        [STEP]: (ctx) => {
          if (ctx.nodeKey !== 'b') return ctx.set(ctx.nodeKey, `from-${ctx.nodeKey}`);
          seen.push([ctx.get('a1'), ctx.get('a2')]);
          if (++attempts < 2) throw new Error('flaky');
        },
      },
      { store },
    );
    const retry = { maxAttempts: 2, initialIntervalSeconds: 0 };
    const { record, subtasks, submitted } = await run(
      template(['a1', 'a2', { key: 'b', retry }], ['a1>b', 'a2>b']),
    );
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    const merged = { stringMap: { a1: 'from-a1', a2: 'from-a2' } };
    expect(seen).toEqual([
      ['from-a1', 'from-a2'],
      ['from-a1', 'from-a2'],
    ]);
    // The retry's claim carries the input saved by the failed attempt.
    const claimsOfB = store.claims.filter((claim) => claim.nodeKey === 'b');
    expect(claimsOfB).toHaveLength(2);
    expect(claimsOfB[1]?.input).toEqual(merged);
    const contexts = await store.getSubtaskContexts(submitted.id, sub(subtasks, 'b').id);
    expect(contexts?.input).toEqual(merged);
  });

  it('saves the input of a failed attempt, and no output', async () => {
    const { store, run } = setup({
      [STEP]: (ctx) => {
        if (ctx.nodeKey === 'a') return ctx.set('k', 'v');
        ctx.set('junk', 'written before the throw');
        throw new Error('no');
      },
    });
    const { submitted, subtasks } = await run(template(['a', 'b'], ['a>b']));
    const contexts = await store.getSubtaskContexts(submitted.id, sub(subtasks, 'b').id);
    expect(contexts).toEqual({ input: { stringMap: { k: 'v' } } });
  });
});

describe('timeouts', () => {
  it('fails a hung attempt at its deadline, aborts its signal, and reports the late result', async () => {
    let release: () => void = () => {};
    let signal: AbortSignal | undefined;
    const { clock, store, events, engine } = setup({
      [STEP]: async (ctx) => {
        signal = ctx.signal;
        await new Promise<void>((resolve) => (release = resolve));
        ctx.set('late', 'write');
      },
    });
    const { id } = await engine.submit(template([{ key: 'a', timeout: 30 }]), undefined, {
      creator: 'admin',
    });
    const t0 = clock.now();
    await clock.advanceTo(t0 + 29_999);
    expect((await store.listSubtasks(id))[0]?.status).toBe(SubtaskStatus.RUNNING);
    expect(signal?.aborted).toBe(false);
    await clock.advanceTo(t0 + 30_000);
    const [a] = await store.listSubtasks(id);
    expect(a?.status).toBe(SubtaskStatus.FAILED);
    expect((a?.endTime ?? 0) - (a?.startTime ?? 0)).toBe(30_000);
    expect(a?.error).toMatchObject({ name: 'TimeoutError', code: ErrorCode.ATTEMPT_TIMEOUT });
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(DagopsError);
    expect(signal?.reason).toMatchObject({ code: ErrorCode.ATTEMPT_TIMEOUT });
    const task = await store.getTask(id);
    expect([task?.status, task?.endTime]).toEqual([TaskStatus.FAILED, t0 + 30_000]);
    expect(eventsNamed(events, 'subtask.failed')[0]?.at).toBe(t0 + 30_000);
    expect(eventsNamed(events, 'subtask.lateResult')).toEqual([]);

    await clock.advanceBy(5000);
    release();
    await clock.advanceBy(0);
    const late = eventsNamed(events, 'subtask.lateResult');
    expect(late.map((e) => e.data)).toEqual([
      { taskId: id, subtaskId: a?.id, runTime: 1, outcome: 'succeeded' },
    ]);
    // The late result changed nothing: still FAILED, its write discarded.
    const after = (await store.listSubtasks(id))[0];
    expect([after?.status, after?.endTime]).toEqual([SubtaskStatus.FAILED, t0 + 30_000]);
    expect((await store.getSubtaskContexts(id, a?.id ?? -1))?.output).toBeUndefined();
  });

  it('reports a late failure with its error', async () => {
    const { clock, events, run } = setup({
      [STEP]: async () => {
        await clock.sleep(15_000);
        throw fail('too late', { code: 'E_LATE' });
      },
    });
    const t0 = clock.now();
    const { subtasks } = await run(template([{ key: 'a', timeout: 10 }]));
    expect(sub(subtasks, 'a').endTime).toBe(t0 + 10_000);
    await clock.advanceTo(t0 + 15_000);
    const late = eventsNamed(events, 'subtask.lateResult');
    expect(late.map((e) => [e.at, e.data.outcome, e.data.error?.code])).toEqual([
      [t0 + 15_000, 'failed', 'E_LATE'],
    ]);
  });

  it('retries a timed-out attempt; the next attempt can succeed', async () => {
    const { clock, events, run } = setup({
      [STEP]: async (ctx) => {
        if (ctx.runTime === 1) await new Promise<void>(() => {});
        else await clock.sleep(1);
      },
    });
    const t0 = clock.now();
    const { record, subtasks } = await run(
      template([{ key: 'a', timeout: 5, retry: { maxAttempts: 2, initialIntervalSeconds: 1 } }]),
    );
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(sub(subtasks, 'a').runTime).toBe(2);
    expect(
      eventsNamed(events, 'subtask.attemptFailed').map((e) => [e.at, e.data.error.code]),
    ).toEqual([[t0 + 5000, ErrorCode.ATTEMPT_TIMEOUT]]);
    expect(startedOf(events, sub(subtasks, 'a').id).map((e) => e.at)).toEqual([t0, t0 + 6000]);
  });

  it('reports a late result with the runTime of the attempt it belongs to, after a retry', async () => {
    const { clock, engine, events, run } = setup({
      [STEP]: async (ctx) => {
        await clock.sleep(ctx.runTime === 1 ? 8000 : 3000);
        ctx.log(`done ${ctx.runTime}`);
      },
    });
    const t0 = clock.now();
    const retry = { maxAttempts: 2, initialIntervalSeconds: 1 };
    const { subtasks } = await run(template([{ key: 'a', timeout: 5, retry }]));
    // Attempt 1 times out at 5 s, attempt 2 runs from 6 s to 9 s; attempt 1 returns at 8 s.
    const late = eventsNamed(events, 'subtask.lateResult');
    expect(late.map((e) => [e.at - t0, e.data.runTime, e.data.outcome])).toEqual([
      [8000, 1, 'succeeded'],
    ]);
    expect(sub(subtasks, 'a').runTime).toBe(2);
    expect(eventsNamed(events, 'subtask.succeeded').map((e) => e.data.runTime)).toEqual([2]);
    // The late handler's log line is kept, under its own attempt.
    const logs = await engine.getSubtaskLogs(1, sub(subtasks, 'a').id);
    expect(
      logs.filter((e) => e.message.startsWith('done')).map((e) => [e.runTime, e.message]),
    ).toEqual([
      [1, 'done 1'],
      [2, 'done 2'],
    ]);
  });

  it('does not retry a timeout whose code the policy lists as non-retryable', async () => {
    const { events, run } = setup({ [STEP]: () => new Promise<void>(() => {}) });
    const retry: RetryPolicy = { maxAttempts: 5, nonRetryableCodes: [ErrorCode.ATTEMPT_TIMEOUT] };
    const { record, subtasks } = await run(template([{ key: 'a', timeout: 1, retry }]));
    expect(record?.status).toBe(TaskStatus.FAILED);
    expect(sub(subtasks, 'a').runTime).toBe(1);
    expect(eventsNamed(events, 'subtask.attemptFailed')).toEqual([]);
  });
});

describe('retries', () => {
  const alwaysFails = () => {
    throw fail('down', { code: 'E_DOWN' });
  };

  it('backs off 1 s, 2 s, then the max interval, and starts a retry only when it falls due', async () => {
    const { clock, store, events, engine, isFinished } = setup({ [STEP]: alwaysFails });
    const retry = {
      maxAttempts: 5,
      initialIntervalSeconds: 1,
      backoffCoefficient: 2,
      maxIntervalSeconds: 3,
    };
    const { id, subtasks } = await engine.submit(template([{ key: 'a', retry }]), undefined, {
      creator: 'admin',
    });
    const subtaskId = subtasks[0]?.id ?? -1;
    const t0 = clock.now();
    const expectedStarts = [t0, t0 + 1000, t0 + 3000, t0 + 6000, t0 + 9000];
    for (let attempt = 2; attempt <= 5; attempt++) {
      const due = expectedStarts[attempt - 1] as number;
      await clock.advanceTo(due - 1);
      expect(startedOf(events, subtaskId)).toHaveLength(attempt - 1);
      const waiting = (await store.listSubtasks(id))[0];
      expect([waiting?.status, waiting?.operation, waiting?.runTime]).toEqual([
        SubtaskStatus.READY,
        Operation.RETRY,
        attempt,
      ]);
      await clock.advanceTo(due);
      expect(startedOf(events, subtaskId)).toHaveLength(attempt);
    }
    expect(await clock.runUntil(() => isFinished(id))).toBe(true);
    expect(startedOf(events, subtaskId).map((e) => [e.at, e.data.attempt, e.data.runTime])).toEqual(
      expectedStarts.map((at, i) => [at, i + 1, i + 1]),
    );
    const attemptFailed = eventsNamed(events, 'subtask.attemptFailed');
    expect(attemptFailed.map((e) => e.data.retryDelayMs)).toEqual([1000, 2000, 3000, 3000]);
    expect(attemptFailed.map((e) => e.data.attempt)).toEqual([1, 2, 3, 4]);
    const failed = eventsNamed(events, 'subtask.failed');
    expect(failed.map((e) => [e.data.runTime, e.data.error.code])).toEqual([[5, 'E_DOWN']]);
    const [a] = await store.listSubtasks(id);
    expect([a?.status, a?.runTime, a?.error?.code]).toEqual([SubtaskStatus.FAILED, 5, 'E_DOWN']);
  });

  it('reports each failed attempt with the runTime of the attempt that failed', async () => {
    const { events, run } = setup({ [STEP]: alwaysFails });
    await run(template([{ key: 'a', retry: { maxAttempts: 3, initialIntervalSeconds: 0 } }]));
    const started = eventsNamed(events, 'subtask.started').map((e) => e.data.runTime);
    const attemptFailed = eventsNamed(events, 'subtask.attemptFailed').map((e) => e.data.runTime);
    const failed = eventsNamed(events, 'subtask.failed').map((e) => e.data.runTime);
    expect(started).toEqual([1, 2, 3]);
    expect(attemptFailed).toEqual([1, 2]);
    expect(failed).toEqual([3]);
  });

  it('counts every execution in runTime; the handler sees a new idempotency key each time', async () => {
    const keys: string[] = [];
    const { events, run } = setup({
      [STEP]: (ctx) => {
        keys.push(ctx.idempotencyKey);
        if (ctx.runTime < 3) throw new Error('not yet');
      },
    });
    const { record, subtasks } = await run(
      template([{ key: 'a', retry: { maxAttempts: 4, initialIntervalSeconds: 0 } }]),
    );
    const a = sub(subtasks, 'a');
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect([a.status, a.runTime, a.operation]).toEqual([
      SubtaskStatus.SUCCESSFUL,
      3,
      Operation.RETRY,
    ]);
    expect(keys).toEqual([`1:${a.id}:1`, `1:${a.id}:2`, `1:${a.id}:3`]);
    expect(eventsNamed(events, 'subtask.attemptFailed')).toHaveLength(2);
    expect(eventsNamed(events, 'subtask.failed')).toHaveLength(0);
    expect(eventsNamed(events, 'subtask.succeeded').map((e) => e.data.runTime)).toEqual([3]);
  });

  it('does not retry an error marked nonRetryable', async () => {
    const { run } = setup({
      [STEP]: () => {
        throw fail('fatal', { nonRetryable: true });
      },
    });
    const { subtasks } = await run(template([{ key: 'a', retry: { maxAttempts: 5 } }]));
    expect([sub(subtasks, 'a').status, sub(subtasks, 'a').runTime]).toEqual(['FAILED', 1]);
  });

  it.each([
    ['E_AUTH', 1],
    ['E_OTHER', 3],
    [42, 1],
  ])('with nonRetryableCodes [E_AUTH, 42], code %j runs %d time(s)', async (code, runs) => {
    const { run } = setup({
      [STEP]: () => {
        throw fail('x', { code });
      },
    });
    const retry = { maxAttempts: 3, initialIntervalSeconds: 0, nonRetryableCodes: ['E_AUTH', 42] };
    const { subtasks } = await run(template([{ key: 'a', retry }]));
    expect([sub(subtasks, 'a').status, sub(subtasks, 'a').runTime]).toEqual(['FAILED', runs]);
  });

  it("uses the handler's default policy, overridden by the node's field by field", async () => {
    const { events, run } = setup({
      [STEP]: {
        execute: alwaysFails,
        retry: { maxAttempts: 3, initialIntervalSeconds: 10, backoffCoefficient: 3 },
      },
    });
    const delays = async (node: NodeSpec) => {
      const { subtasks } = await run(template([node]));
      const id = sub(subtasks, node.key).id;
      const attempts = eventsNamed(events, 'subtask.attemptFailed');
      return [
        sub(subtasks, node.key).runTime,
        attempts.filter((e) => e.data.subtaskId === id).map((e) => e.data.retryDelayMs),
      ];
    };
    expect(await delays({ key: 'inherits' })).toEqual([3, [10_000, 30_000]]);
    expect(await delays({ key: 'overrides', retry: { initialIntervalSeconds: 2 } })).toEqual([
      3,
      [2000, 6000],
    ]);
    expect(await delays({ key: 'fewer', retry: { maxAttempts: 2 } })).toEqual([2, [10_000]]);
  });

  it('does not retry without a policy', async () => {
    const { run } = setup({ [STEP]: alwaysFails });
    const { subtasks } = await run(template(['a']));
    expect([sub(subtasks, 'a').status, sub(subtasks, 'a').runTime]).toEqual(['FAILED', 1]);
  });

  it('runs a due retry as soon as a slot frees when the engine is full, without busy-waking', async () => {
    let timersSet = 0;
    let failedOnce = false;
    const h = setup(
      {
        [STEP]: async (ctx) => {
          if (ctx.nodeKey === 'flaky' && !failedOnce) {
            failedOnce = true;
            throw new Error('once');
          }
          await h.clock.sleep(ctx.nodeKey === 'long' ? 10_000 : 1);
        },
      },
      { concurrency: 1 },
    );
    const { clock, engine, events, isFinished } = h;
    const setTimer = clock.setTimeout.bind(clock);
    clock.setTimeout = (callback, ms) => (timersSet++, setTimer(callback, ms));
    const t0 = clock.now();
    const { id, subtasks } = await engine.submit(
      template([{ key: 'flaky', retry: { maxAttempts: 2, initialIntervalSeconds: 1 } }, 'long']),
      undefined,
      { creator: 'admin' },
    );
    // flaky fails at t0 (retry due at t0+1s) while long holds the only slot until t0+10s.
    expect(await clock.runUntil(() => isFinished(id))).toBe(true);
    expect(timersSet).toBeLessThan(10);
    const flakyStarts = startedOf(events, subtasks[0]?.id ?? -1).map((e) => e.at);
    expect(flakyStarts).toEqual([t0, t0 + 10_000]);
  });
});

describe('retries on a full engine', () => {
  it('still wakes up for a later retry after a due one waited for a slot', async () => {
    const failed = new Set<number>();
    const h = setup(
      {
        [STEP]: async (ctx) => {
          await h.clock.sleep(ctx.nodeKey === 'hog' ? 5000 : 100);
          if (ctx.nodeKey === 'hog' || failed.has(ctx.taskId)) return;
          failed.add(ctx.taskId);
          throw new Error('once');
        },
      },
      { concurrency: 1 },
    );
    const { clock, engine, events, isFinished } = h;
    const t0 = clock.now();
    const retrying = (initialIntervalSeconds: number) =>
      template([{ key: 'r', retry: { maxAttempts: 2, initialIntervalSeconds } }]);
    // One slot, tasks served in turn: r1 fails at 0.1 s (due at 1.1 s); r2 fails at 0.2 s (due
    // at 60.2 s); the hog holds the slot from 0.2 s to 5.2 s, so r1's retry waits for it.
    const ids: number[] = [];
    for (const tpl of [retrying(1), retrying(60), template(['hog'])]) {
      ids.push((await engine.submit(tpl, undefined, { creator: 'admin' })).id);
    }
    expect(await clock.runUntil(() => ids.every(isFinished))).toBe(true);
    const starts = eventsNamed(events, 'subtask.started').map((e) => [e.data.taskId, e.at - t0]);
    expect(starts).toEqual([
      [ids[0], 0],
      [ids[1], 100],
      [ids[2], 200],
      [ids[0], 5200],
      [ids[1], 60_200],
    ]);
  });
});

describe('failure', () => {
  it('starts nothing new once a subtask failed for good; running ones finish, then FAILED', async () => {
    const durations: Record<string, number> = { bad: 1000, slow: 10_000, gate: 2000, flaky: 0 };
    const { clock, store, events, engine, isFinished } = setup({
      [STEP]: async (ctx) => {
        await clock.sleep(durations[ctx.nodeKey] ?? 0);
        if (ctx.nodeKey === 'bad') throw new Error('bad');
        if (ctx.nodeKey === 'flaky') throw new Error('flaky');
      },
    });
    const t0 = clock.now();
    const flaky = { key: 'flaky', retry: { maxAttempts: 2, initialIntervalSeconds: 3 } };
    const tpl = template(
      ['bad', 'slow', 'gate', flaky, 'after', 'later'],
      ['slow>after', 'gate>later'],
    );
    const { id } = await engine.submit(tpl, undefined, { creator: 'admin' });
    await clock.advanceTo(t0 + 5000);
    // bad failed at 1 s; gate finished at 2 s (after it: nothing); flaky's retry fell due at 3 s.
    expect(statuses(await store.listSubtasks(id))).toEqual({
      bad: 'FAILED',
      slow: 'RUNNING',
      gate: 'SUCCESSFUL',
      flaky: 'READY',
      after: 'PENDING',
      later: 'PENDING',
    });
    expect((await store.getTask(id))?.status).toBe(TaskStatus.RUNNING);
    expect(await clock.runUntil(() => isFinished(id))).toBe(true);
    const list = await store.listSubtasks(id);
    expect(statuses(list)).toMatchObject({
      slow: 'SUCCESSFUL',
      after: 'PENDING',
      later: 'PENDING',
    });
    const task = await store.getTask(id);
    expect([task?.status, task?.endTime]).toEqual([TaskStatus.FAILED, t0 + 10_000]);
    const started = eventsNamed(events, 'subtask.started').map((e) => e.data.subtaskId);
    const keyOf = (subtaskId: number) => list.find((s) => s.id === subtaskId)?.nodeKey;
    expect(started.map(keyOf).sort()).toEqual(['bad', 'flaky', 'gate', 'slow']);
    expect(eventsNamed(events, 'task.finished').map((e) => e.data.status)).toEqual(['FAILED']);
    expect((await engine.waitForTask(id)).status).toBe('FAILED');
  });

  it('finishes FAILED when the last running subtask fails retryably after a sibling failed for good', async () => {
    const { clock, store, events, run } = setup({
      [STEP]: async (ctx) => {
        if (ctx.nodeKey === 'bad') throw new Error('bad');
        await clock.sleep(5000);
        throw new Error('flaky');
      },
    });
    const t0 = clock.now();
    const { finished, record, subtasks } = await run(
      template(['bad', { key: 'flaky', retry: { maxAttempts: 3, initialIntervalSeconds: 1 } }]),
    );
    expect(finished).toBe(true);
    expect([record?.status, record?.endTime]).toEqual([TaskStatus.FAILED, t0 + 5000]);
    expect(startedOf(events, sub(subtasks, 'flaky').id)).toHaveLength(1);
    expect(sub(subtasks, 'flaky').status).not.toBe(SubtaskStatus.RUNNING);
    await clock.advanceBy(60_000);
    expect(startedOf(events, sub(subtasks, 'flaky').id)).toHaveLength(1);
    expect((await store.getTask(record?.id ?? -1))?.status).toBe(TaskStatus.FAILED);
  });

  it('ends the task SUCCESSFUL with the endTime of its last subtask', async () => {
    const { clock, run } = setup({
      [STEP]: async (ctx) => clock.sleep(ctx.nodeKey === 'a' ? 700 : 300),
    });
    const t0 = clock.now();
    const { record } = await run(template(['a', 'b']));
    expect([record?.status, record?.endTime]).toEqual([TaskStatus.SUCCESSFUL, t0 + 700]);
  });
});

describe('non-Error throws', () => {
  const circular: Record<string, unknown> = { name: 'loop' };
  circular['self'] = circular;
  const huge = { blob: 'x'.repeat(1_000_000), list: Array.from({ length: 10_000 }, (_, i) => i) };
  const unreadable = new Error('hidden');
  Object.defineProperty(unreadable, 'message', {
    get() {
      throw new Error('no message for you');
    },
  });
  const hostile = new Proxy(
    {},
    {
      get() {
        throw new Error('get');
      },
      getPrototypeOf() {
        throw new Error('getPrototypeOf');
      },
      ownKeys() {
        throw new Error('ownKeys');
      },
      has() {
        throw new Error('has');
      },
      getOwnPropertyDescriptor() {
        throw new Error('getOwnPropertyDescriptor');
      },
    },
  );
  const values: readonly [string, unknown][] = [
    ['a string', 'plain string'],
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a circular object', circular],
    ['a huge object', huge],
    ['an Error whose message getter throws', unreadable],
    ['a proxy that throws on every access', hostile],
  ];

  for (const how of ['throws', 'rejects with'] as const) {
    it.each(values)(`records a handler that ${how} %s as a clear error`, async (_label, value) => {
      const { run, logger, events } = setup({
        [STEP]:
          how === 'throws'
            ? () => {
                throw value;
              }
            : // Deliberately not an Error: that is what is being tested.
              // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
              () => Promise.reject(value),
      });
      const { finished, record, subtasks } = await run(template(['a']));
      expect(finished).toBe(true);
      expect(record?.status).toBe(TaskStatus.FAILED);
      const { error } = sub(subtasks, 'a');
      expect(typeof error?.name).toBe('string');
      expect(typeof error?.message).toBe('string');
      expect(error?.message.length).toBeGreaterThan(0);
      expect(error?.message.length).toBeLessThan(2100);
      expect(() => JSON.stringify(error)).not.toThrow();
      expect(JSON.stringify(error).length).toBeLessThan(10_000);
      expect(eventsNamed(events, 'subtask.failed')).toHaveLength(1);
      expect(logger.lines).toEqual([]);
    });
  }

  it('names what was thrown', async () => {
    const thrown: unknown[] = ['plain string', undefined, circular];
    const { events, run } = setup({
      [STEP]: (ctx) => {
        throw thrown[Number(ctx.nodeKey)];
      },
    });
    await run(template(['0', '1', '2']));
    const errors = eventsNamed(events, 'subtask.failed').map((e) => e.data.error);
    expect(errors.map((e) => e.name).sort()).toEqual([
      'NonError(object)',
      'NonError(string)',
      'NonError(undefined)',
    ]);
    expect(errors.map((e) => e.message).join('\n')).toContain('plain string');
  });

  it('fails an attempt whose handler returns a thenable that throws', async () => {
    const { run, logger } = setup({
      [STEP]: () =>
        ({
          then() {
            throw new Error('broken thenable');
          },
        }) as unknown as Promise<void>,
    });
    const { finished, subtasks } = await run(template([{ key: 'a', timeout: 5 }]));
    expect(finished).toBe(true);
    expect(sub(subtasks, 'a').error?.message).toBe('broken thenable');
    expect(logger.lines).toEqual([]);
  });
});

describe('events', () => {
  it('emits task and subtask events in order', async () => {
    const { events, run } = setup({ [STEP]: () => {} });
    const { subtasks } = await run(template(['a', 'b'], ['a>b']));
    const a = sub(subtasks, 'a').id;
    const b = sub(subtasks, 'b').id;
    const trace = events.map((e) =>
      'subtaskId' in e.data ? `${e.name} ${e.data.subtaskId === a ? 'a' : 'b'}` : e.name,
    );
    expect(trace).toEqual([
      'task.created',
      'subtask.ready a',
      'subtask.started a',
      'subtask.succeeded a',
      'subtask.ready b',
      'subtask.started b',
      'subtask.succeeded b',
      'task.statusChanged',
      'task.finished',
    ]);
    expect(eventsNamed(events, 'task.statusChanged')[0]?.data).toMatchObject({
      from: 'RUNNING',
      to: 'SUCCESSFUL',
    });
    expect(b).not.toBe(a);
  });

  it("emits a downstream's started after its upstream's succeeded, even when the store answers late", async () => {
    const clock = steppedClock();
    // Applies every write at once, but answers the completion of `a` 10 s late.
    let slow = -1;
    const inner = new MemoryStore();
    const store = overrideStore(inner, {
      completeAttempt(...args: Parameters<Store['completeAttempt']>) {
        const result = inner.completeAttempt(...args);
        return args[0].subtaskId === slow ? clock.sleep(10_000).then(() => result) : result;
      },
    });
    const handlers = new HandlerRegistry().register(STEP, {
      execute: (ctx) => clock.sleep(ctx.nodeKey === 'a' ? 1 : 2),
    });
    const engine = new Engine({ store, handlers, clock, executor: 'e', logger: memoryLogger() });
    const events = recordEvents(engine, clock);
    const { id, subtasks } = await engine.submit(template(['a', 'c', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    const a = subtasks.find((s) => s.name === 'a')?.id as number;
    const b = subtasks.find((s) => s.name === 'b')?.id as number;
    slow = a;
    expect(await clock.runUntil(() => events.some((e) => e.name === 'task.finished'))).toBe(true);
    expect((await engine.getTask(id)).status).toBe('SUCCESSFUL');
    const order = events
      .filter((e) => 'subtaskId' in e.data && (e.data.subtaskId === a || e.data.subtaskId === b))
      .filter((e) => e.name !== 'subtask.log')
      .map((e) => `${e.name} ${'subtaskId' in e.data && e.data.subtaskId === a ? 'a' : 'b'}`);
    expect(order).toEqual([
      'subtask.ready a',
      'subtask.started a',
      'subtask.succeeded a',
      'subtask.ready b',
      'subtask.started b',
      'subtask.succeeded b',
    ]);
  });

  it('logs a throwing or rejecting listener, runs the other listeners, and goes on', async () => {
    const calls: string[] = [];
    const { engine, logger, run } = setup({ [STEP]: () => {} });
    engine.on('subtask.started', () => calls.push('before'));
    engine.on('subtask.started', () => {
      throw new Error('listener broke');
    });
    engine.on('subtask.succeeded', () => Promise.reject(new Error('async listener broke')));
    engine.on('subtask.started', () => calls.push('after'));
    const { record } = await run(template(['a', 'b'], ['a>b']));
    expect(record?.status).toBe(TaskStatus.SUCCESSFUL);
    expect(calls).toEqual(['before', 'after', 'before', 'after']);
    const reported = logger.lines.map((line) => [
      line.level,
      line.details?.['event'],
      (line.details?.['error'] as { message?: string } | undefined)?.message,
    ]);
    // Which listener error comes first across subtasks is the schedule's business; each one is
    // logged exactly once per event.
    expect(reported.map((line) => line.join(' ')).sort()).toEqual([
      'error subtask.started listener broke',
      'error subtask.started listener broke',
      'error subtask.succeeded async listener broke',
      'error subtask.succeeded async listener broke',
    ]);
  });

  it('supports once and off', async () => {
    const once: number[] = [];
    const on: number[] = [];
    const { engine, run } = setup({ [STEP]: () => {} });
    const listener = (ref: { subtaskId: number }) => on.push(ref.subtaskId);
    engine.once('subtask.started', (ref) => once.push(ref.subtaskId));
    engine.on('subtask.succeeded', listener);
    engine.on('subtask.succeeded', () => engine.off('subtask.succeeded', listener));
    await run(template(['a', 'b'], ['a>b']));
    expect(once).toHaveLength(1);
    expect(on).toHaveLength(1);
    expect(engine.listenerCount('subtask.started')).toBe(1); // the recorder's
  });
});

describe('logs', () => {
  it('keeps each attempt’s lines, in order, readable per subtask', async () => {
    const { clock, engine, run } = setup({
      [STEP]: async (ctx) => {
        ctx.log(`${ctx.nodeKey}: one`);
        await clock.sleep(10);
        ctx.log(`${ctx.nodeKey}: two`);
        if (ctx.nodeKey === 'a' && ctx.runTime === 1) throw fail('oops', { code: 'E_X' });
      },
    });
    const t0 = clock.now();
    const { submitted, subtasks } = await run(
      template([{ key: 'a', retry: { maxAttempts: 2, initialIntervalSeconds: 1 } }, 'b']),
    );
    const logsOf = (key: string) => engine.getSubtaskLogs(submitted.id, sub(subtasks, key).id);
    const a = await logsOf('a');
    expect(a.map((e) => [e.runTime, e.time - t0, e.message])).toEqual([
      [1, 0, 'a: one'],
      [1, 10, 'a: two'],
      [1, 10, 'attempt 1 failed [E_X]: oops; retry in 1000 ms'],
      [2, 1010, 'a: one'],
      [2, 1020, 'a: two'],
    ]);
    expect((await logsOf('b')).map((e) => e.message)).toEqual(['b: one', 'b: two']);
  });
});

describe('state lives in the store', () => {
  it('lets a second engine on the same store pick the task up by itself and finish it', async () => {
    const store = new MemoryStore();
    const first = setup({ [STEP]: async () => first.clock.sleep(10_000) }, { store });
    const { id } = await first.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await first.clock.advanceBy(5000);
    const closing = first.engine.close();
    await first.clock.advanceBy(5000);
    await closing;
    expect(statuses(await store.listSubtasks(id))).toEqual({ a: 'SUCCESSFUL', b: 'READY' });

    // A new engine on the store picks up the READY work by itself: nothing is submitted to it.
    const second = setup({ [STEP]: (ctx) => ctx.log('second') }, { store, executor: 'engine-2' });
    expect(await second.clock.runUntil(() => second.isFinished(id))).toBe(true);
    const done = await second.engine.getTask(id);
    expect(done.status).toBe('SUCCESSFUL');
    expect(done.subtasks.map((s) => s.executor)).toEqual(['engine-1', 'engine-2']);
    const b = done.subtasks[1]?.id ?? -1;
    expect((await first.engine.getSubtaskLogs(id, b)).map((e) => e.message)).toEqual(['second']);
  });
});
