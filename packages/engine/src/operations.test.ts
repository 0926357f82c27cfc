import { describe, expect, it, vi } from 'vitest';
import { AUTO_ROLLBACK_ACTOR } from './engine.js';
import { DagopsError, ErrorCode } from './errors.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type * as Transitions from './transitions.js';
import { SUBTASK_TRANSITIONS, TASK_TRANSITIONS } from './transitions.js';
import {
  NO_ROLLBACK,
  OPERATIONS,
  auditLine,
  callOperation,
  expectedVerdict,
  flush,
  onSubtask,
  payloads,
  rollbackFailedFrom,
  setup,
  template,
  type Harness,
  type OperationName,
  type SetupOptions,
} from './test-support/operations-harness.js';

/**
 * Every status move the stores asked the transition tables about in this file, as `FROM>TO`
 * (`task:FROM>TO`), legal or not: checked against the tables at the end.
 */
const askedMoves = vi.hoisted(() => new Set<string>());

vi.mock('./transitions.js', async (importOriginal) => {
  const actual = await importOriginal<typeof Transitions>();
  return {
    ...actual,
    assertSubtaskMove: (id: number, from: SubtaskStatus, to: SubtaskStatus) => {
      askedMoves.add(`${from}>${to}`);
      actual.assertSubtaskMove(id, from, to);
    },
    assertTaskMove: (id: number, from: TaskStatus, to: TaskStatus) => {
      askedMoves.add(`task:${from}>${to}`);
      actual.assertTaskMove(id, from, to);
    },
  };
});

const harness = (options?: SetupOptions): Harness => setup(options);

/** a → b → d, and c on its own. */
const CHAIN = template(['a', 'b', 'c', 'd'], ['a>b', 'b>d']);

/** Runs {@link CHAIN} with b failing: a, c SUCCESSFUL; b FAILED; d never ran. */
async function failedChain(h: Harness, tpl = CHAIN, args?: unknown): Promise<number> {
  h.script.plan('execute', 'b', 'fail');
  return h.run(tpl, args);
}

describe('unknown tasks and subtasks (20000)', () => {
  it('refuses every operation on an unknown task, and its audit trail', async () => {
    const h = harness();
    for (const name of OPERATIONS) {
      const error: unknown = await callOperation(h.engine, name, 42, 1, 'ops').catch(
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(DagopsError);
      expect((error as DagopsError).code, name).toBe(ErrorCode.TASK_NOT_FOUND);
    }
    await expect(h.engine.getAuditTrail(42)).rejects.toMatchObject({
      code: ErrorCode.TASK_NOT_FOUND,
    });
    expect(h.events).toEqual([]);
  });

  it('refuses a subtask that is not part of the named task, and leaves both tasks unchanged', async () => {
    const h = harness();
    const first = await failedChain(h);
    const second = await failedChain(h);
    const foreign = (await h.ids(second)).b as number;
    const other = await h.snapshot(second);
    for (const name of ['retrySubtask', 'skipSubtask', 'cancelSubtask'] as const) {
      const error = await h.expectRefused(
        first,
        () => callOperation(h.engine, name, first, foreign, 'ops'),
        ErrorCode.TASK_NOT_FOUND,
      );
      expect(error.message).toContain(`subtask ${foreign} is not part of task ${first}`);
    }
    expect(await h.snapshot(second)).toBe(other);
  });

  it('refuses unknown subtask ids: past the end, before the start, not integers', async () => {
    const h = harness();
    const id = await failedChain(h);
    const ids = Object.values(await h.ids(id));
    const bad = [Math.max(...ids) + 1, Math.min(...ids) - 1, 0, -1, 1.5, Number.NaN, 2 ** 53];
    for (const subtaskId of bad) {
      for (const name of ['retrySubtask', 'skipSubtask', 'cancelSubtask'] as const) {
        await h.expectRefused(
          id,
          () => callOperation(h.engine, name, id, subtaskId, 'ops'),
          ErrorCode.TASK_NOT_FOUND,
        );
      }
    }
  });

  it('refuses an operation without an actor (20011) and changes nothing', async () => {
    const h = harness();
    const id = await failedChain(h);
    for (const actor of ['', undefined as unknown as string]) {
      await h.expectRefused(
        id,
        () => h.engine.retryTask(id, actor),
        ErrorCode.TASK_ARGUMENTS_INVALID,
      );
    }
  });
});

/**
 * One reachable state of a task, and the operations SPEC §5 allows in it. Every operation not in
 * `legal` or `prohibited` must be refused with 20003.
 */
interface Scenario {
  readonly name: string;
  readonly options?: SetupOptions;
  /** Subtask labels, for the subtask operations. */
  readonly labels: readonly string[];
  readonly templateProhibits?: boolean;
  /** Builds the state; returns the task id. */
  build(h: Harness): Promise<number>;
  /** The task and its subtasks, as `STATUS/OPERATION`. */
  readonly state: { readonly task: string; readonly subtasks: Readonly<Record<string, string>> };
  /** Operations allowed, as `op` or `op(label)`. */
  readonly legal: readonly string[];
  /** Operations refused with 20004. */
  readonly prohibited?: readonly string[];
}

const S = (status: string, operation = 'EXECUTE') => `${status}/${operation}`;
const FAILED_CHAIN_STATE = {
  task: S('FAILED'),
  subtasks: { a: S('SUCCESSFUL'), b: S('FAILED'), c: S('SUCCESSFUL'), d: S('PENDING') },
};
const FAILED_CHAIN_LEGAL = ['retryTask', 'retrySubtask(b)', 'skipSubtask(b)', 'rollbackTask'];
const ROLLBACK_FAILED_STATE = {
  task: S('FAILED', 'ROLLBACK'),
  subtasks: {
    a: S('SUCCESSFUL', 'ROLLBACK'),
    b: S('FAILED', 'ROLLBACK'),
    c: S('PENDING', 'ROLLBACK'),
    d: S('PENDING'),
  },
};
const CHAIN_LABELS = ['a', 'b', 'c', 'd'];

/** {@link failedChain}, then a rollback whose step for b does `behaviour`. */
async function rollingBackChain(h: Harness, behaviour: 'hang' | 'fail'): Promise<number> {
  const id = await failedChain(h);
  h.script.plan('rollback', 'b', behaviour);
  await h.engine.rollbackTask(id, 'ops');
  if (behaviour === 'fail') await h.untilSettled(id);
  else await flush();
  return id;
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'executing (RUNNING, READY waiting for an engine slot, PENDING)',
    options: { concurrency: 1 },
    labels: ['a', 'b', 'c'],
    async build(h) {
      h.script.plan('execute', 'a', 'hang');
      const { id } = await h.engine.submit(template(['a', 'b', 'c'], ['a>b']), undefined, {
        creator: 'admin',
      });
      await flush();
      return id;
    },
    state: { task: S('RUNNING'), subtasks: { a: S('RUNNING'), b: S('PENDING'), c: S('READY') } },
    legal: ['cancelSubtask(a)', 'cancelTask'],
  },
  {
    name: 'executing after a failure (one still RUNNING)',
    labels: ['a', 'b', 'c'],
    async build(h) {
      h.script.plan('execute', 'a', 'hang').plan('execute', 'c', 'fail');
      const { id } = await h.engine.submit(template(['a', 'b', 'c'], ['a>b']), undefined, {
        creator: 'admin',
      });
      await flush();
      return id;
    },
    state: { task: S('RUNNING'), subtasks: { a: S('RUNNING'), b: S('PENDING'), c: S('FAILED') } },
    legal: ['cancelSubtask(a)', 'cancelTask', 'retrySubtask(c)', 'skipSubtask(c)'],
  },
  {
    name: 'a subtask CANCELING (its cancel hook still runs)',
    labels: ['a', 'b', 'c'],
    async build(h) {
      h.script.plan('execute', 'a', 'hang');
      h.script.defaults.cancel = 'hang';
      const { id } = await h.engine.submit(template(['a', 'b', 'c'], ['a>b']), undefined, {
        creator: 'admin',
      });
      await flush();
      await h.engine.cancelSubtask(id, (await h.ids(id)).a as number, 'ops');
      await flush();
      return id;
    },
    state: {
      task: S('RUNNING'),
      subtasks: { a: S('CANCELING', 'CANCEL'), b: S('PENDING'), c: S('SUCCESSFUL') },
    },
    legal: ['cancelTask'],
  },
  {
    name: 'FAILED',
    labels: CHAIN_LABELS,
    build: (h) => failedChain(h),
    state: FAILED_CHAIN_STATE,
    legal: FAILED_CHAIN_LEGAL,
  },
  {
    name: 'FAILED with a retry waiting for its backoff (READY, ran once)',
    labels: ['x', 'y'],
    async build(h) {
      h.script.plan('execute', 'x', 'fail').plan('execute', 'y', 'fail');
      const retry = { maxAttempts: 2, initialIntervalSeconds: 100 };
      return h.run(template([{ key: 'x', retry }, 'y']));
    },
    state: { task: S('FAILED'), subtasks: { x: S('READY', 'RETRY'), y: S('FAILED') } },
    legal: ['retryTask', 'retrySubtask(y)', 'skipSubtask(y)', 'rollbackTask'],
  },
  {
    name: 'SUCCESSFUL',
    labels: ['a', 'b'],
    build: (h) => h.run(template(['a', 'b'], ['a>b'])),
    state: { task: S('SUCCESSFUL'), subtasks: { a: S('SUCCESSFUL'), b: S('SUCCESSFUL') } },
    legal: [],
  },
  {
    name: 'canceled (FAILED/CANCEL)',
    labels: ['a', 'b', 'c'],
    async build(h) {
      h.script.plan('execute', 'a', 'hang');
      const { id } = await h.engine.submit(template(['a', 'b', 'c'], ['a>b']), undefined, {
        creator: 'admin',
      });
      await flush();
      await h.engine.cancelTask(id, 'ops');
      await h.untilSettled(id);
      return id;
    },
    state: {
      task: S('FAILED', 'CANCEL'),
      subtasks: { a: S('FAILED', 'CANCEL'), b: S('PENDING'), c: S('SUCCESSFUL') },
    },
    legal: ['retryTask', 'retrySubtask(a)', 'skipSubtask(a)', 'rollbackTask'],
  },
  {
    name: 'rolling back (RUNNING/ROLLBACK)',
    labels: CHAIN_LABELS,
    build: (h) => rollingBackChain(h, 'hang'),
    state: {
      task: S('RUNNING', 'ROLLBACK'),
      subtasks: {
        a: S('SUCCESSFUL', 'ROLLBACK'),
        b: S('RUNNING', 'ROLLBACK'),
        c: S('PENDING', 'ROLLBACK'),
        d: S('PENDING'),
      },
    },
    legal: ['cancelSubtask(b)', 'cancelTask'],
  },
  {
    name: 'a rollback failed (FAILED/ROLLBACK)',
    labels: CHAIN_LABELS,
    build: (h) => rollingBackChain(h, 'fail'),
    state: ROLLBACK_FAILED_STATE,
    legal: ['skipSubtask(b)', 'rollbackTask'],
  },
  {
    name: 'a rollback was canceled (FAILED/ROLLBACK)',
    labels: CHAIN_LABELS,
    async build(h) {
      const id = await rollingBackChain(h, 'hang');
      await h.engine.cancelTask(id, 'ops');
      await h.untilSettled(id);
      return id;
    },
    state: ROLLBACK_FAILED_STATE,
    legal: ['skipSubtask(b)', 'rollbackTask'],
  },
  {
    name: 'a rollback failed while a FAILED subtask still waited for its turn',
    labels: ['x', 'y'],
    async build(h) {
      // concurrency 1: x fails, is skipped; then y runs and fails; the rollback takes x first.
      h.script.plan('execute', 'x', 'fail').plan('execute', 'y', 'fail');
      const id = await h.run(template(['x', 'y'], [], { concurrency: 1 }));
      await h.engine.skipSubtask(id, (await h.ids(id)).x as number, 'ops');
      await h.untilSettled(id);
      h.script.plan('rollback', 'x', 'fail');
      await h.engine.rollbackTask(id, 'ops');
      await h.untilSettled(id);
      return id;
    },
    state: {
      task: S('FAILED', 'ROLLBACK'),
      subtasks: { x: S('FAILED', 'ROLLBACK'), y: S('FAILED', 'ROLLBACK') },
    },
    // y looks the same as x on the wire, but its rollback never ran: only x may be skipped.
    legal: ['skipSubtask(x)', 'rollbackTask'],
  },
  {
    name: 'rolled back (SUCCESSFUL/ROLLBACK)',
    labels: CHAIN_LABELS,
    async build(h) {
      const id = await failedChain(h);
      await h.engine.rollbackTask(id, 'ops');
      await h.untilSettled(id);
      return id;
    },
    state: {
      task: S('SUCCESSFUL', 'ROLLBACK'),
      subtasks: {
        a: S('PENDING', 'ROLLBACK'),
        b: S('PENDING', 'ROLLBACK'),
        c: S('PENDING', 'ROLLBACK'),
        d: S('PENDING'),
      },
    },
    legal: [],
  },
  {
    name: 'FAILED, the template prohibits rollback',
    labels: CHAIN_LABELS,
    templateProhibits: true,
    build: (h) => failedChain(h, { ...CHAIN, prohibitRollback: true }),
    state: FAILED_CHAIN_STATE,
    legal: ['retryTask', 'retrySubtask(b)', 'skipSubtask(b)'],
    prohibited: ['rollbackTask'],
  },
  {
    name: 'FAILED, the arguments prohibit rollback',
    labels: CHAIN_LABELS,
    build: (h) => failedChain(h, CHAIN, { stringMap: { prohibit_rollback: 'true' } }),
    state: FAILED_CHAIN_STATE,
    legal: ['retryTask', 'retrySubtask(b)', 'skipSubtask(b)'],
    prohibited: ['rollbackTask'],
  },
  {
    name: 'FAILED, a subtask that ran prohibits rollback',
    labels: CHAIN_LABELS,
    build: (h) =>
      failedChain(
        h,
        template([{ key: 'a', prohibitRollback: true }, 'b', 'c', 'd'], ['a>b', 'b>d']),
      ),
    state: FAILED_CHAIN_STATE,
    legal: ['retryTask', 'retrySubtask(b)', 'skipSubtask(b)'],
    prohibited: ['rollbackTask'],
  },
  {
    name: 'FAILED, only a subtask that never ran prohibits rollback',
    labels: CHAIN_LABELS,
    build: (h) =>
      failedChain(
        h,
        template(['a', 'b', 'c', { key: 'd', prohibitRollback: true }], ['a>b', 'b>d']),
      ),
    state: FAILED_CHAIN_STATE,
    legal: FAILED_CHAIN_LEGAL,
  },
];

/** The audit operation a legal `name` records. */
function auditOperation(name: OperationName, inRollback: boolean): Operation {
  switch (name) {
    case 'retryTask':
    case 'retrySubtask':
      return Operation.RETRY;
    case 'skipSubtask':
      return inRollback ? Operation.ROLLBACK_SKIP : Operation.SKIP;
    case 'cancelSubtask':
    case 'cancelTask':
      return Operation.CANCEL;
    case 'rollbackTask':
      return Operation.ROLLBACK;
  }
}

describe('each operation in each state: allowed, or refused changing nothing', () => {
  it('the scenarios cover every subtask status and every task status/operation that matters', () => {
    const subtaskStatuses = new Set(
      SCENARIOS.flatMap((s) => Object.values(s.state.subtasks).map((v) => v.split('/')[0])),
    );
    expect([...subtaskStatuses].sort()).toEqual(Object.values(SubtaskStatus).sort());
    const taskStates = new Set(SCENARIOS.map((s) => s.state.task));
    for (const state of [
      'RUNNING/EXECUTE',
      'FAILED/EXECUTE',
      'SUCCESSFUL/EXECUTE',
      'FAILED/CANCEL',
      'RUNNING/ROLLBACK',
      'FAILED/ROLLBACK',
      'SUCCESSFUL/ROLLBACK',
    ]) {
      expect(taskStates).toContain(state);
    }
  });

  for (const scenario of SCENARIOS) {
    describe(scenario.name, () => {
      it('is the state it claims', async () => {
        const h = harness(scenario.options);
        const id = await scenario.build(h);
        await flush();
        expect(await h.taskState(id)).toBe(scenario.state.task);
        expect(await h.states(id)).toEqual(scenario.state.subtasks);
      });

      for (const name of OPERATIONS) {
        for (const label of onSubtask(name) ? scenario.labels : [undefined]) {
          const key = label === undefined ? name : `${name}(${label})`;
          const verdict = scenario.legal.includes(key)
            ? 'ok'
            : scenario.prohibited?.includes(key)
              ? ErrorCode.TASK_PROHIBIT_ROLLBACK
              : ErrorCode.TASK_STATE_INVALID;
          it(`${key}: ${verdict === 'ok' ? 'allowed' : `refused with ${verdict}`}`, async () => {
            const h = harness(scenario.options);
            const id = await scenario.build(h);
            await flush();
            const subtaskId = label === undefined ? -1 : ((await h.ids(id))[label] as number);
            const task = await h.engine.getTask(id);
            // The rules the property tests use agree with this table.
            expect(
              expectedVerdict(
                task,
                name,
                task.subtasks.find((s) => s.id === subtaskId),
                {
                  rollbackFailed: rollbackFailedFrom(h.events, id),
                  templateProhibits: scenario.templateProhibits ?? false,
                },
              ),
            ).toBe(verdict);
            const call = () => callOperation(h.engine, name, id, subtaskId, 'operator');
            if (verdict !== 'ok') {
              await h.expectRefused(id, call, verdict);
              return;
            }
            const before = (await h.engine.getAuditTrail(id)).length;
            const eventCount = h.events.length;
            const result = await call();
            expect(result.id).toBe(id);
            const audit = await h.engine.getAuditTrail(id);
            expect(audit.slice(before)).toEqual([
              {
                taskId: id,
                ...(onSubtask(name) ? { subtaskId } : {}),
                operation: auditOperation(name, task.operation === Operation.ROLLBACK),
                actor: 'operator',
                now: h.clock.now(),
              },
            ]);
            expect(
              payloads(h.events.slice(eventCount), 'task.operation').map((e) => e.actor),
            ).toEqual(['operator']);
          });
        }
      }
    });
  }
});

describe('retry', () => {
  it('retry task: every FAILED subtask READY again (RETRY, runTime + 1); the task resumes', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'fail', 'ok').plan('execute', 'b', 'fail', 'ok');
    const id = await h.run(template(['a', 'b', 'c'], ['a>c', 'b>c']));
    expect(await h.states(id)).toEqual({ a: S('FAILED'), b: S('FAILED'), c: S('PENDING') });
    const ids = await h.ids(id);
    const eventCount = h.events.length;
    await h.engine.retryTask(id, 'ops');
    const ready = payloads(h.events.slice(eventCount), 'subtask.ready');
    // a and b again; then c, once they have succeeded.
    expect(ready).toEqual([
      { taskId: id, subtaskId: ids.a, runTime: 2 },
      { taskId: id, subtaskId: ids.b, runTime: 2 },
      { taskId: id, subtaskId: ids.c, runTime: 1 },
    ]);
    expect(payloads(h.events.slice(eventCount), 'task.statusChanged')[0]).toEqual({
      taskId: id,
      from: TaskStatus.FAILED,
      to: TaskStatus.RUNNING,
      operation: Operation.RETRY,
    });
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'RETRY'));
    expect(await h.states(id)).toEqual({
      a: S('SUCCESSFUL', 'RETRY'),
      b: S('SUCCESSFUL', 'RETRY'),
      c: S('SUCCESSFUL'),
    });
    const runTimes = (await h.store.listSubtasks(id)).map((s) => s.runTime);
    expect(runTimes).toEqual([2, 2, 1]);
    expect((await h.engine.getTask(id)).endTime).toBeDefined();
  });

  it('retry subtask: that one only; the task resumes once nothing else is FAILED', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'fail', 'ok').plan('execute', 'b', 'fail', 'ok');
    const id = await h.run(template(['a', 'b', 'c'], ['a>c', 'b>c']));
    const ids = await h.ids(id);
    const json = await h.engine.retrySubtask(id, ids.a as number, 'ops');
    expect(json.status).toBe(TaskStatus.FAILED);
    await h.clock.advanceBy(60_000);
    // a waits: its task is FAILED while b is.
    expect(await h.states(id)).toEqual({ a: S('READY', 'RETRY'), b: S('FAILED'), c: S('PENDING') });
    expect(h.script.callsOf('execute', 'a')).toHaveLength(1);
    await h.engine.retrySubtask(id, ids.b as number, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'RETRY'));
    expect(h.script.labels('execute')).toEqual(['a', 'b', 'a', 'b', 'c']);
  });

  it('retry subtask while the task still runs another subtask', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'hang').plan('execute', 'c', 'fail', 'ok');
    const { id } = await h.engine.submit(template(['a', 'b', 'c'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await flush();
    const ids = await h.ids(id);
    await h.engine.retrySubtask(id, ids.c as number, 'ops');
    await flush();
    expect(await h.states(id)).toEqual({
      a: S('RUNNING'),
      b: S('PENDING'),
      c: S('SUCCESSFUL', 'RETRY'),
    });
    h.script.settle(ids.a as number, 'ok');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL'));
  });

  it('counts every manual retry in runTime; each execution has its own idempotency key', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'fail', 'fail', 'ok');
    const id = await h.run(template(['a']));
    const a = (await h.ids(id)).a as number;
    await h.engine.retrySubtask(id, a, 'ops');
    await h.untilSettled(id);
    await h.engine.retryTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'RETRY'));
    const calls = h.script.callsOf('execute', 'a');
    expect(calls.map((c) => c.runTime)).toEqual([1, 2, 3]);
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(3);
    expect((await h.store.listSubtasks(id))[0]?.runTime).toBe(3);
  });

  it('after a cancel, retry task runs the canceled subtasks and what never started', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'hang', 'ok');
    const { id } = await h.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await flush();
    await h.engine.cancelTask(id, 'ops');
    await h.untilSettled(id);
    await h.engine.retryTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'RETRY'));
    expect(h.script.labels('execute')).toEqual(['a', 'a', 'b']);
  });
});

describe('skip', () => {
  it('FAILED → SUCCESSFUL with SKIP and its input as output; downstreams go on', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b', 'c'], ['a>b', 'b>c']), {
      stringMap: { host_id: '7' },
    });
    const ids = await h.ids(id);
    const eventCount = h.events.length;
    const json = await h.engine.skipSubtask(id, ids.b as number, 'ops');
    expect(json.subtasks.find((s) => s.id === ids.b)).toMatchObject({
      status: SubtaskStatus.SUCCESSFUL,
      operation: Operation.SKIP,
      runTime: 1,
    });
    expect(payloads(h.events.slice(eventCount), 'subtask.skipped')).toEqual([
      { taskId: id, subtaskId: ids.b, runTime: 1, operation: Operation.SKIP },
    ]);
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'SKIP'));
    const b = await h.store.getSubtaskContexts(id, ids.b as number);
    expect(b?.input).toEqual({ stringMap: { 'out:a': 'done' } });
    expect(b?.output).toEqual(b?.input);
    const c = h.script.callsOf('execute', 'c')[0]?.context;
    expect([c?.get('out:a'), c?.get('out:b'), c?.get('host_id')]).toEqual(['done', undefined, '7']);
    // b's handler ran once (the failure), never for the skip.
    expect(h.script.callsOf('execute', 'b')).toHaveLength(1);
  });

  it('a skip while others are FAILED leaves the task FAILED until the last one is dealt with', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'fail').plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b']));
    const ids = await h.ids(id);
    expect((await h.engine.skipSubtask(id, ids.a as number, 'ops')).status).toBe(TaskStatus.FAILED);
    expect((await h.engine.skipSubtask(id, ids.b as number, 'ops')).status).toBe(
      TaskStatus.SUCCESSFUL,
    );
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'SKIP'));
  });
});

describe('cancel subtask', () => {
  it('RUNNING → CANCELING → signal aborted (20021), cancel hook called → FAILED with CANCEL', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'hang');
    h.script.defaults.cancel = 'hang';
    const { id } = await h.engine.submit(
      template([{ key: 'a', timeout: 30, retry: { maxAttempts: 3 } }]),
      undefined,
      {
        creator: 'admin',
      },
    );
    await flush();
    const a = (await h.ids(id)).a as number;
    const t0 = h.clock.now();
    const json = await h.engine.cancelSubtask(id, a, 'ops');
    expect(json.subtasks[0]).toMatchObject({
      status: SubtaskStatus.CANCELING,
      operation: Operation.CANCEL,
    });
    const execute = h.script.callsOf('execute', 'a')[0];
    expect(execute?.context.signal.aborted).toBe(true);
    const reason: unknown = execute?.context.signal.reason;
    expect(reason).toBeInstanceOf(DagopsError);
    expect((reason as DagopsError).code).toBe(ErrorCode.ATTEMPT_CANCELED);
    const [hook] = h.script.callsOf('cancel');
    expect(hook).toMatchObject({ label: 'a', runTime: 1, aborted: true });
    expect((hook?.reason as DagopsError).code).toBe(ErrorCode.ATTEMPT_CANCELED);
    // The hook hangs: the subtask stays CANCELING until the hook's bound, the node timeout.
    await h.clock.advanceTo(t0 + 29_999);
    expect(await h.states(id)).toEqual({ a: S('CANCELING', 'CANCEL') });
    await h.untilSettled(id);
    expect(h.clock.now()).toBe(t0 + 30_000);
    const [record] = await h.store.listSubtasks(id);
    expect(record).toMatchObject({
      status: SubtaskStatus.FAILED,
      operation: Operation.CANCEL,
      runTime: 1,
      error: { code: ErrorCode.ATTEMPT_CANCELED },
    });
    // Canceled, not failed, and not retried by its policy.
    expect(payloads(h.events, 'subtask.canceled')).toEqual([
      { taskId: id, subtaskId: a, runTime: 1 },
    ]);
    expect(payloads(h.events, 'subtask.failed')).toEqual([]);
    expect(payloads(h.events, 'subtask.attemptFailed')).toEqual([]);
    expect(await h.taskState(id)).toBe(S('FAILED'));
  });

  it('ends FAILED as soon as the cancel hook returns; a late result of the handler is discarded', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'hang');
    const { id } = await h.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await flush();
    const a = (await h.ids(id)).a as number;
    const t0 = h.clock.now();
    await h.engine.cancelSubtask(id, a, 'ops');
    await flush();
    expect(await h.states(id)).toEqual({ a: S('FAILED', 'CANCEL'), b: S('PENDING') });
    expect((await h.store.listSubtasks(id))[0]?.endTime).toBe(t0);
    h.script.settle(a, 'ok');
    await flush();
    expect(payloads(h.events, 'subtask.lateResult')).toEqual([
      { taskId: id, subtaskId: a, runTime: 1, outcome: 'succeeded' },
    ]);
    expect(await h.states(id)).toEqual({ a: S('FAILED', 'CANCEL'), b: S('PENDING') });
    expect(h.script.labels('execute')).toEqual(['a']);
  });
});

describe('cancel task', () => {
  it('cancels every running subtask and starts nothing new; FAILED with CANCEL', async () => {
    const h = harness();
    h.script.defaults.execute = 'hang';
    // concurrency 2: two of the roots a, b, c run, the third waits READY; d waits for a.
    const tpl = template(['a', 'b', 'c', 'd'], ['a>d'], { concurrency: 2 });
    const { id } = await h.engine.submit(tpl, undefined, { creator: 'admin' });
    await flush();
    const ran = h.script.labels('execute').sort();
    expect(ran).toHaveLength(2);
    const waiting = ['a', 'b', 'c'].find((label) => !ran.includes(label)) as string;
    const ids = await h.ids(id);
    const json = await h.engine.cancelTask(id, 'ops');
    expect(json.operation).toBe(Operation.CANCEL);
    await h.untilSettled(id);
    await h.clock.advanceBy(3_600_000);
    expect(await h.taskState(id)).toBe(S('FAILED', 'CANCEL'));
    expect(await h.states(id)).toEqual({
      ...Object.fromEntries(ran.map((label) => [label, S('FAILED', 'CANCEL')])),
      [waiting]: S('READY'),
      d: S('PENDING'),
    });
    expect(h.script.labels('execute').sort()).toEqual(ran);
    expect(h.script.labels('cancel').sort()).toEqual(ran);
    const canceled = payloads(h.events, 'subtask.canceled').map((e) => e.subtaskId);
    expect(canceled.sort()).toEqual(ran.map((label) => ids[label]).sort());
    expect(payloads(h.events, 'task.finished')).toEqual([
      { taskId: id, status: TaskStatus.FAILED, operation: Operation.CANCEL },
    ]);
  });

  it('fails the task at once when nothing of it runs, and never starts it later', async () => {
    const h = harness({ concurrency: 1 });
    h.script.plan('execute', 'hog', 'hang');
    const hog = await h.engine.submit(template(['hog']), undefined, { creator: 'admin' });
    await flush();
    const { id } = await h.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await flush();
    expect(await h.states(id)).toEqual({ a: S('READY'), b: S('PENDING') });
    const json = await h.engine.cancelTask(id, 'ops');
    expect([json.status, json.operation]).toEqual([TaskStatus.FAILED, Operation.CANCEL]);
    expect(json.endTime).toBeDefined();
    h.script.settle((await h.ids(hog.id)).hog as number, 'ok');
    await h.untilSettled(hog.id);
    await h.clock.advanceBy(60_000);
    expect(h.script.labels('execute')).toEqual(['hog']);
    expect(await h.states(id)).toEqual({ a: S('READY'), b: S('PENDING') });
  });

  it('during a rollback: running rollbacks are canceled, FAILED with ROLLBACK (20021)', async () => {
    const h = harness();
    const id = await rollingBackChain(h, 'hang');
    const ids = await h.ids(id);
    const rollback = h.script.callsOf('rollback', 'b')[0];
    const json = await h.engine.cancelTask(id, 'ops');
    expect(json.operation).toBe(Operation.ROLLBACK);
    expect(rollback?.context.signal.aborted).toBe(true);
    expect((rollback?.context.signal.reason as DagopsError).code).toBe(ErrorCode.ATTEMPT_CANCELED);
    expect(h.script.callsOf('cancel').map((c) => [c.label, c.aborted])).toEqual([['b', true]]);
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    const b = (await h.store.listSubtasks(id)).find((s) => s.id === ids.b);
    expect(b).toMatchObject({
      status: SubtaskStatus.FAILED,
      operation: Operation.ROLLBACK,
      error: { code: ErrorCode.ATTEMPT_CANCELED },
    });
    expect(
      payloads(h.events, 'subtask.rollbackFailed').map((e) => [e.subtaskId, e.error.code]),
    ).toEqual([[ids.b, ErrorCode.ATTEMPT_CANCELED]]);
    // a waited for b: its rollback never started.
    expect(h.script.labels('rollback').sort()).toEqual(['b', 'c']);
    // Then: retry refused; rollback-skip of b continues the rollback.
    await h.expectRefused(id, () => h.engine.retryTask(id, 'ops'), ErrorCode.TASK_STATE_INVALID);
    await h.engine.skipSubtask(id, ids.b as number, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback').sort()).toEqual(['a', 'b', 'c']);
  });

  it('during a rollback with nothing running: FAILED/ROLLBACK at once, nothing more rolls back', async () => {
    const h = harness({ concurrency: 1 });
    h.script.plan('execute', 'f', 'fail').plan('execute', 'hog', 'hang');
    const id = await h.run(template(['a', 'f'], ['a>f']));
    const hog = await h.engine.submit(template(['hog']), undefined, { creator: 'admin' });
    await flush();
    await h.engine.rollbackTask(id, 'ops');
    await flush();
    // The engine is busy with the hog: f's rollback is READY, nothing of the task runs.
    expect(await h.states(id)).toEqual({
      a: S('SUCCESSFUL', 'ROLLBACK'),
      f: S('READY', 'ROLLBACK'),
    });
    const json = await h.engine.cancelTask(id, 'ops');
    expect([json.status, json.operation]).toEqual([TaskStatus.FAILED, Operation.ROLLBACK]);
    h.script.settle((await h.ids(hog.id)).hog as number, 'ok');
    await h.untilSettled(hog.id);
    await h.clock.advanceBy(60_000);
    expect(h.script.labels('rollback')).toEqual([]);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    // Rollback again finishes the job, each subtask rolled back once.
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback')).toEqual(['f', 'a']);
  });

  it('is not followed by an automatic rollback', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'hang');
    const tpl = template(['a', 'b'], ['a>b'], { autoRollback: true });
    const { id } = await h.engine.submit(tpl, undefined, { creator: 'admin' });
    await flush();
    await h.engine.cancelTask(id, 'ops');
    await h.untilSettled(id);
    await h.clock.advanceBy(60_000);
    expect(await h.taskState(id)).toBe(S('FAILED', 'CANCEL'));
    expect(h.script.labels('rollback')).toEqual([]);
  });
});

describe('rollback', () => {
  /**
   * a → b → d → f (f fails), a → c → d, e on its own, g after f (never runs). Each rollback
   * takes 1 s.
   */
  const DIAMOND = template(
    ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
    ['a>b', 'a>c', 'b>d', 'c>d', 'd>f', 'f>g'],
  );

  async function rolledBackDiamond() {
    const h = harness();
    h.script.plan('execute', 'f', 'fail');
    h.script.defaults.rollback = { sleepMs: 1000, then: 'ok' };
    const id = await h.run(DIAMOND);
    const before = await h.store.listSubtasks(id);
    const t0 = h.clock.now();
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    return { h, id, before, t0 };
  }

  it('runs downstreams first; independent branches in parallel', async () => {
    const { h, t0 } = await rolledBackDiamond();
    const started = Object.fromEntries(
      h.script.callsOf('rollback').map((c) => [c.label, c.at - t0]),
    );
    expect(started).toEqual({ e: 0, f: 0, d: 1000, b: 2000, c: 2000, a: 3000 });
  });

  it('calls rollback only on subtasks that ran; all PENDING then, the task SUCCESSFUL/ROLLBACK', async () => {
    const { h, id, t0 } = await rolledBackDiamond();
    expect(h.script.labels('rollback').sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    const states = await h.states(id);
    expect(states).toEqual({
      a: S('PENDING', 'ROLLBACK'),
      b: S('PENDING', 'ROLLBACK'),
      c: S('PENDING', 'ROLLBACK'),
      d: S('PENDING', 'ROLLBACK'),
      e: S('PENDING', 'ROLLBACK'),
      f: S('PENDING', 'ROLLBACK'),
      g: S('PENDING'),
    });
    const task = await h.engine.getTask(id);
    expect(task.endTime).toBe(new Date(t0 + 4000).toISOString().replace('Z', '+00:00'));
    expect(payloads(h.events, 'task.finished').at(-1)).toEqual({
      taskId: id,
      status: TaskStatus.SUCCESSFUL,
      operation: Operation.ROLLBACK,
    });
  });

  it('gives each rollback runTime + 1 and its own idempotency key; the never-run keep theirs', async () => {
    const { h, id, before } = await rolledBackDiamond();
    const after = await h.store.listSubtasks(id);
    const ids = await h.ids(id);
    for (const call of h.script.callsOf('rollback')) {
      const was = before.find((s) => s.id === call.subtaskId)?.runTime ?? 0;
      expect(call.runTime, call.label).toBe(was + 1);
      expect(call.idempotencyKey).toBe(`${id}:${call.subtaskId}:${was + 1}`);
      expect(after.find((s) => s.id === call.subtaskId)?.runTime).toBe(was + 1);
    }
    expect(after.find((s) => s.id === ids.g)?.runTime).toBe(1);
  });

  it('emits rollbackStarted and rollbackSucceeded per subtask, when each starts and ends', async () => {
    const { h, id, t0 } = await rolledBackDiamond();
    const ids = await h.ids(id);
    const names = new Map(Object.entries(ids).map(([label, sid]) => [sid, label]));
    const byTime = new Map<number, string[]>();
    for (const event of h.events) {
      if (event.name !== 'subtask.rollbackStarted' && event.name !== 'subtask.rollbackSucceeded') {
        continue;
      }
      const sign = event.name === 'subtask.rollbackStarted' ? '+' : '-';
      const list = byTime.get(event.at - t0) ?? [];
      list.push(`${sign}${names.get(event.data.subtaskId)}`);
      byTime.set(event.at - t0, list);
    }
    expect(Object.fromEntries([...byTime].map(([at, list]) => [at, list.sort()]))).toEqual({
      0: ['+e', '+f'],
      1000: ['+d', '-e', '-f'],
      2000: ['+b', '+c', '-d'],
      3000: ['+a', '-b', '-c'],
      4000: ['-a'],
    });
    expect(payloads(h.events, 'subtask.rollbackFailed')).toEqual([]);
  });

  it('lets the rollback handler see what the subtask saved (its output) and the task context', async () => {
    const h = harness();
    h.script.plan('execute', 'c', 'fail');
    const id = await h.run(template(['a', 'b', 'c'], ['a>b', 'b>c']), {
      stringMap: { host_id: '3' },
    });
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    const seen = (label: string) => {
      const ctx = h.script.callsOf('rollback', label)[0]?.context;
      return [ctx?.get('out:a'), ctx?.get('out:b'), ctx?.get('out:c'), ctx?.get('host_id')];
    };
    expect(seen('b')).toEqual(['done', 'done', undefined, '3']);
    expect(seen('a')).toEqual(['done', undefined, undefined, '3']);
    // c failed: it sees its saved input.
    expect(seen('c')).toEqual(['done', 'done', undefined, '3']);
  });

  it('counts a handler without rollback as rolled back, without calling anything', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template([{ key: 'a', className: NO_ROLLBACK }, 'b'], ['a>b']));
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback')).toEqual(['b']);
    const ids = await h.ids(id);
    expect(payloads(h.events, 'subtask.rollbackSucceeded').map((e) => e.subtaskId)).toEqual([
      ids.b,
      ids.a,
    ]);
  });

  it('keeps to the task concurrency', async () => {
    const h = harness();
    h.script.plan('execute', 'f', 'fail');
    h.script.defaults.rollback = { sleepMs: 1000, then: 'ok' };
    const id = await h.run(template(['a', 'b', 'c', 'd', 'f'], [], { concurrency: 2 }));
    expect(h.script.labels('execute').sort()).toEqual(['a', 'b', 'c', 'd', 'f']);
    const t0 = h.clock.now();
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    const starts = h.script.callsOf('rollback').map((c) => c.at - t0);
    expect(starts).toEqual([0, 0, 1000, 1000, 2000]);
  });

  it('bounds each rollback by its node timeout', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail').plan('rollback', 'b', 'hang');
    const id = await h.run(template(['a', { key: 'b', timeout: 45 }], ['a>b']));
    const t0 = h.clock.now();
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(h.clock.now()).toBe(t0 + 45_000);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    const b = (await h.store.listSubtasks(id))[1];
    expect(b).toMatchObject({
      status: SubtaskStatus.FAILED,
      operation: Operation.ROLLBACK,
      error: { code: ErrorCode.ATTEMPT_TIMEOUT },
    });
    expect(h.script.callsOf('rollback', 'b')[0]?.context.signal.aborted).toBe(true);
    expect((await h.engine.getSubtaskLogs(id, b?.id ?? -1)).map((l) => l.message)).toContain(
      'rollback failed [20020]: the attempt did not finish within its timeout of 45 s',
    );
  });

  it('a failed rollback: FAILED/ROLLBACK; retry refused; rollback again rolls back the rest', async () => {
    const h = harness();
    h.script.plan('execute', 'c', 'fail').plan('rollback', 'b', 'fail', 'ok');
    const id = await h.run(template(['a', 'b', 'c'], ['a>b', 'b>c']));
    const ids = await h.ids(id);
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    expect(await h.states(id)).toEqual({
      a: S('SUCCESSFUL', 'ROLLBACK'),
      b: S('FAILED', 'ROLLBACK'),
      c: S('PENDING', 'ROLLBACK'),
    });
    expect(payloads(h.events, 'subtask.rollbackFailed').map((e) => e.subtaskId)).toEqual([ids.b]);
    await h.expectRefused(id, () => h.engine.retryTask(id, 'ops'), ErrorCode.TASK_STATE_INVALID);
    await h.expectRefused(
      id,
      () => h.engine.retrySubtask(id, ids.b as number, 'ops'),
      ErrorCode.TASK_STATE_INVALID,
    );
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.callsOf('rollback').map((c) => `${c.label}@${c.runTime}`)).toEqual([
      'c@2',
      'b@2',
      'b@3',
      'a@2',
    ]);
  });

  it('rollback-skip: PENDING with ROLLBACK_SKIP without calling rollback, and the rollback goes on', async () => {
    const h = harness();
    h.script.plan('execute', 'c', 'fail').plan('rollback', 'b', 'fail');
    const id = await h.run(template(['a', 'b', 'c'], ['a>b', 'b>c']));
    const ids = await h.ids(id);
    await h.engine.rollbackTask(id, 'rollbacker');
    await h.untilSettled(id);
    const eventCount = h.events.length;
    const json = await h.engine.skipSubtask(id, ids.b as number, 'skipper');
    expect(json.subtasks.find((s) => s.id === ids.b)).toMatchObject({
      status: SubtaskStatus.PENDING,
      operation: Operation.ROLLBACK_SKIP,
    });
    expect(payloads(h.events.slice(eventCount), 'subtask.skipped')).toEqual([
      { taskId: id, subtaskId: ids.b, runTime: 2, operation: Operation.ROLLBACK_SKIP },
    ]);
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback')).toEqual(['c', 'b', 'a']);
    expect((await h.engine.getAuditTrail(id)).map(auditLine)).toEqual([
      'EXECUTE:admin',
      'ROLLBACK:rollbacker',
      `ROLLBACK_SKIP:skipper:${ids.b}`,
    ]);
  });

  it('rolls back a subtask waiting for a retry (it ran) once, and resets one that never ran', async () => {
    const h = harness();
    // concurrency 2: x and y run, z waits READY; x fails and waits 100 s for a retry; y fails.
    h.script.plan('execute', 'x', 'fail').plan('execute', 'y', 'fail');
    const retry = { maxAttempts: 2, initialIntervalSeconds: 100 };
    const tpl = template([{ key: 'x', retry }, 'y', 'z'], [], { concurrency: 2 });
    const id = await h.run(tpl);
    expect(await h.states(id)).toEqual({ x: S('READY', 'RETRY'), y: S('FAILED'), z: S('READY') });
    const t0 = h.clock.now();
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    await h.clock.advanceBy(200_000);
    expect(h.clock.now() - t0).toBe(200_000);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback').sort()).toEqual(['x', 'y']);
    // runTime counts executions: x ran once, then its rollback; z never ran.
    expect(
      h.script
        .callsOf('rollback')
        .map((c) => `${c.label}@${c.runTime}`)
        .sort(),
    ).toEqual(['x@2', 'y@2']);
    expect((await h.store.listSubtasks(id)).map((s) => s.runTime)).toEqual([2, 2, 1]);
    expect(h.script.labels('execute')).toEqual(['x', 'y']);
  });

  it('rolls each subtask back once when a rollback is canceled and started again', async () => {
    const h = harness({ concurrency: 1 });
    h.script.plan('execute', 'f', 'fail').plan('rollback', 'a', 'hang', 'ok');
    // a and b both wait for f; with one engine slot, a's rollback runs while b's is READY.
    const id = await h.run(template(['a', 'b', 'f'], ['a>f', 'b>f'], { concurrency: 2 }));
    await h.engine.rollbackTask(id, 'ops');
    await flush();
    expect(await h.states(id)).toEqual({
      a: S('RUNNING', 'ROLLBACK'),
      b: S('READY', 'ROLLBACK'),
      f: S('PENDING', 'ROLLBACK'),
    });
    await h.engine.cancelTask(id, 'ops');
    await h.untilSettled(id);
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.callsOf('rollback').map((c) => `${c.label}@${c.runTime}`)).toEqual([
      'f@2',
      'a@2',
      'b@2',
      'a@3',
    ]);
  });

  it('cancel subtask during a rollback: FAILED/ROLLBACK, then rollback-skip or rollback again', async () => {
    const h = harness();
    const id = await rollingBackChain(h, 'hang');
    const ids = await h.ids(id);
    await h.engine.cancelSubtask(id, ids.b as number, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    expect(await h.states(id)).toEqual(ROLLBACK_FAILED_STATE.subtasks);
    h.script.plan('rollback', 'b', 'ok');
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    const order = h.script.labels('rollback');
    expect([order.slice(0, 2).sort(), order.slice(2)]).toEqual([
      ['b', 'c'],
      ['b', 'a'],
    ]);
  });

  describe('prohibited (20004), changing nothing', () => {
    const cases: readonly [string, () => Promise<{ h: Harness; id: number }>][] = [
      [
        'by the template',
        async () => {
          const h = harness();
          return { h, id: await failedChain(h, { ...CHAIN, prohibitRollback: true }) };
        },
      ],
      [
        'by the prohibit_rollback argument',
        async () => {
          const h = harness();
          return {
            h,
            id: await failedChain(h, CHAIN, { stringMap: { prohibit_rollback: 'true' } }),
          };
        },
      ],
      [
        'by a subtask that ran',
        async () => {
          const h = harness();
          const tpl = template(
            ['a', { key: 'b', prohibitRollback: true }, 'c', 'd'],
            ['a>b', 'b>d'],
          );
          return { h, id: await failedChain(h, tpl) };
        },
      ],
    ];
    for (const [name, build] of cases) {
      it(name, async () => {
        const { h, id } = await build();
        const error = await h.expectRefused(
          id,
          () => h.engine.rollbackTask(id, 'ops'),
          ErrorCode.TASK_PROHIBIT_ROLLBACK,
        );
        expect(error.message).toMatch(/cannot be rolled back/);
        expect(h.script.labels('rollback')).toEqual([]);
      });
    }

    it('not by a subtask that never ran, nor by prohibit_rollback "false"', async () => {
      const h = harness();
      const tpl = template(['a', 'b', 'c', { key: 'd', prohibitRollback: true }], ['a>b', 'b>d']);
      const id = await failedChain(h, tpl, { stringMap: { prohibit_rollback: 'false' } });
      await h.engine.rollbackTask(id, 'ops');
      await h.untilSettled(id);
      expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    });

    it('a task in the wrong state is refused with 20003 before prohibition is looked at', async () => {
      const h = harness();
      const id = await h.run(template(['a'], [], { prohibitRollback: true }));
      await h.expectRefused(
        id,
        () => h.engine.rollbackTask(id, 'ops'),
        ErrorCode.TASK_STATE_INVALID,
      );
    });
  });
});

describe('automatic rollback (template option autoRollback)', () => {
  it('rolls a failed task back at once, as dagops:auto-rollback', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b'], ['a>b'], { autoRollback: true }));
    await h.untilSettled(id);
    expect(await h.taskState(id)).toBe(S('SUCCESSFUL', 'ROLLBACK'));
    expect(h.script.labels('rollback')).toEqual(['b', 'a']);
    const audit = await h.engine.getAuditTrail(id);
    expect(audit.map(auditLine)).toEqual(['EXECUTE:admin', `ROLLBACK:${AUTO_ROLLBACK_ACTOR}`]);
    expect(AUTO_ROLLBACK_ACTOR).toBe('dagops:auto-rollback');
    expect(payloads(h.events, 'task.operation')).toEqual([
      { taskId: id, operation: Operation.ROLLBACK, actor: AUTO_ROLLBACK_ACTOR },
    ]);
  });

  it('is off by default', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b'], ['a>b']));
    await h.clock.advanceBy(60_000);
    expect(await h.taskState(id)).toBe(S('FAILED'));
    expect(h.script.labels('rollback')).toEqual([]);
  });

  it('does not loop when the automatic rollback fails', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail').plan('rollback', 'b', 'fail');
    const id = await h.run(template(['a', 'b'], ['a>b'], { autoRollback: true }));
    await h.untilSettled(id);
    await h.clock.advanceBy(60_000);
    expect(await h.taskState(id)).toBe(S('FAILED', 'ROLLBACK'));
    expect(h.script.labels('rollback')).toEqual(['b']);
  });

  it('logs a warning and leaves the task FAILED when rollback is prohibited', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const tpl = template(['a', 'b'], ['a>b'], { autoRollback: true, prohibitRollback: true });
    const id = await h.run(tpl);
    await flush();
    expect(await h.taskState(id)).toBe(S('FAILED'));
    expect(h.logger.lines).toMatchObject([
      {
        level: 'warn',
        message: 'automatic rollback did not start',
        details: { taskId: id, error: { code: ErrorCode.TASK_PROHIBIT_ROLLBACK } },
      },
    ]);
  });
});

describe('audit trail', () => {
  it('records who did what and when, oldest first, the submission first', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail', 'fail', 'ok');
    const { id, startTime } = await h.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'alice',
    });
    await h.untilSettled(id);
    const ids = await h.ids(id);
    const t0 = h.clock.now();
    await h.clock.advanceBy(1000);
    await h.engine.retrySubtask(id, ids.b as number, 'bob');
    await h.untilSettled(id);
    await h.clock.advanceBy(1000);
    await h.engine.retryTask(id, 'carol');
    await h.untilSettled(id);
    const audit = await h.engine.getAuditTrail(id);
    expect(audit).toEqual([
      { taskId: id, operation: Operation.EXECUTE, actor: 'alice', now: Date.parse(startTime) },
      { taskId: id, subtaskId: ids.b, operation: Operation.RETRY, actor: 'bob', now: t0 + 1000 },
      { taskId: id, operation: Operation.RETRY, actor: 'carol', now: t0 + 2000 },
    ]);
    // A copy: changing it does not change the trail.
    audit.pop();
    expect(await h.engine.getAuditTrail(id)).toHaveLength(3);
  });

  it('records cancel, skip, rollback and rollback-skip with their subtask', async () => {
    const h = harness();
    h.script.plan('execute', 'a', 'hang').plan('rollback', 'a', 'fail');
    const { id } = await h.engine.submit(template(['a', 'b'], ['a>b']), undefined, {
      creator: 'admin',
    });
    await flush();
    const ids = await h.ids(id);
    await h.engine.cancelSubtask(id, ids.a as number, 'u1');
    await h.untilSettled(id);
    await h.engine.skipSubtask(id, ids.a as number, 'u2');
    await h.untilSettled(id);
    expect((await h.engine.getAuditTrail(id)).map(auditLine)).toEqual([
      'EXECUTE:admin',
      `CANCEL:u1:${ids.a}`,
      `SKIP:u2:${ids.a}`,
    ]);
    const h2 = harness();
    const id2 = await rollingBackChain(h2, 'hang');
    const ids2 = await h2.ids(id2);
    await h2.engine.cancelTask(id2, 'u4');
    await h2.untilSettled(id2);
    await h2.engine.skipSubtask(id2, ids2.b as number, 'u5');
    await h2.untilSettled(id2);
    expect((await h2.engine.getAuditTrail(id2)).map(auditLine)).toEqual([
      'EXECUTE:admin',
      'ROLLBACK:ops',
      'CANCEL:u4',
      `ROLLBACK_SKIP:u5:${ids2.b}`,
    ]);
  });
});

describe('events', () => {
  it('emits task.operation for each operation, after applying it', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b'], ['a>b']));
    const ids = await h.ids(id);
    let seenStatus: string | undefined;
    h.engine.on('task.operation', () => {
      void h.engine.getTask(id).then((t) => (seenStatus ??= t.subtasks[1]?.status));
    });
    await h.engine.skipSubtask(id, ids.b as number, 'ops');
    await flush();
    expect(payloads(h.events, 'task.operation')).toEqual([
      { taskId: id, subtaskId: ids.b, operation: Operation.SKIP, actor: 'ops' },
    ]);
    expect(seenStatus).toBe(SubtaskStatus.SUCCESSFUL);
  });

  it('emits subtask.ready for a retried subtask and a rollback whose turn came', async () => {
    const h = harness();
    h.script.plan('execute', 'b', 'fail');
    const id = await h.run(template(['a', 'b'], ['a>b']));
    const ids = await h.ids(id);
    const eventCount = h.events.length;
    await h.engine.rollbackTask(id, 'ops');
    await h.untilSettled(id);
    expect(payloads(h.events.slice(eventCount), 'subtask.ready')).toEqual([
      { taskId: id, subtaskId: ids.b, runTime: 2 },
      { taskId: id, subtaskId: ids.a, runTime: 2 },
    ]);
  });
});

describe('transition tables', () => {
  it('the stores asked only for moves in the tables, and for every move in them', () => {
    const table = new Set<string>([
      ...Object.entries(SUBTASK_TRANSITIONS).flatMap(([from, tos]) =>
        tos.map((to) => `${from}>${to}`),
      ),
      ...Object.entries(TASK_TRANSITIONS).flatMap(([from, tos]) =>
        tos.map((to) => `task:${from}>${to}`),
      ),
    ]);
    expect([...askedMoves].filter((move) => !table.has(move))).toEqual([]);
    expect([...table].filter((move) => !askedMoves.has(move))).toEqual([]);
  });
});
