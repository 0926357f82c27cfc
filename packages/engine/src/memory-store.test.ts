import { describe, expect, it } from 'vitest';
import { DagopsError, ErrorCode } from './errors.js';
import { countSubtasks, expandTemplate, type ExpandedTask } from './expand-template.js';
import type { ErrorInfo } from './error-info.js';
import { MemoryStore } from './memory-store.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { AttemptFence, Claim, Store } from './store.js';
import type { Template, TemplateNode } from './template.js';
import {
  SUBTASK_TRANSITIONS,
  TASK_TRANSITIONS,
  assertSubtaskMove,
  assertTaskMove,
} from './transitions.js';
import { validateTemplate } from './validate-template.js';

const NOW = Date.UTC(2021, 8, 3, 6, 27, 59, 687);
const ERROR: ErrorInfo = { name: 'Error', message: 'boom' };

function template(
  keys: readonly string[],
  edges: readonly string[] = [],
  extra: Partial<Template> = {},
  node: Partial<TemplateNode> = {},
): Template {
  return {
    name: 't',
    nodes: keys.map((key) => ({ key, className: 'x.Step', name: key, timeout: 60, ...node })),
    edges: edges.map((edge) => {
      const [from = '', to = ''] = edge.split('>');
      return { from, to };
    }),
    ...extra,
  };
}

/** Expands `tpl` with ids reserved from `store` and saves it, as the engine does. */
async function addTask(store: Store, tpl: Template, args?: unknown): Promise<ExpandedTask> {
  const validated = validateTemplate(tpl);
  const ids = await store.reserveIds(countSubtasks(validated, args));
  const expanded = expandTemplate(validated, args, {
    ids: { nextTaskId: () => ids.taskId, reserveSubtaskIds: () => ids.firstSubtaskId },
    creator: 'admin',
    executor: 'e1',
    now: NOW,
  });
  await store.insertTask(expanded, { actor: 'admin', now: NOW });
  return expanded;
}

async function claim(store: Store, limit = 100, now = NOW, executor = 'e1'): Promise<Claim[]> {
  return store.claimReady({ executor, limit, now });
}

const fenceOf = (c: Claim, executor = 'e1'): AttemptFence => ({
  taskId: c.task.id,
  subtaskId: c.subtask.id,
  runTime: c.subtask.runTime,
  executor,
});

/** Status by node key. */
async function statuses(store: Store, taskId: number): Promise<Record<string, string>> {
  const list = await store.listSubtasks(taskId);
  return Object.fromEntries(list.map((s) => [s.nodeKey, s.status]));
}

const keyOf = (c: Claim) => c.subtask.nodeKey;

describe('MemoryStore fencing', () => {
  const wrongFences: readonly [string, (f: AttemptFence) => AttemptFence][] = [
    ['an older runTime', (f) => ({ ...f, runTime: f.runTime - 1 })],
    ['a newer runTime', (f) => ({ ...f, runTime: f.runTime + 1 })],
    ['another executor', (f) => ({ ...f, executor: 'e2' })],
    ['another task', (f) => ({ ...f, taskId: f.taskId + 1 })],
    ['an unknown subtask', (f) => ({ ...f, subtaskId: 999 })],
  ];

  it.each(wrongFences)(
    'refuses to complete an attempt with %s, changing nothing',
    async (_l, bend) => {
      const store: Store = new MemoryStore();
      const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      const before = await store.listSubtasks(task.id);
      const result = await store.completeAttempt(bend(fenceOf(a)), {
        input: {},
        output: { stringMap: { k: 'v' } },
        now: NOW + 5,
      });
      expect(result).toEqual({ accepted: false, changes: [] });
      expect(await store.listSubtasks(task.id)).toEqual(before);
      expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({});
      expect((await store.getTask(task.id))?.status).toBe(TaskStatus.RUNNING);
      // The right fence still works.
      const ok = await store.completeAttempt(fenceOf(a), { input: {}, output: {}, now: NOW + 5 });
      expect(ok.accepted).toBe(true);
    },
  );

  it.each(wrongFences)('refuses to fail an attempt with %s, changing nothing', async (_l, bend) => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a']));
    const [a] = await claim(store);
    if (!a) throw new Error('nothing claimed');
    const before = await store.listSubtasks(task.id);
    for (const retryAt of [undefined, NOW + 10]) {
      const result = await store.failAttempt(bend(fenceOf(a)), {
        input: { stringMap: { k: 'v' } },
        error: ERROR,
        ...(retryAt === undefined ? {} : { retryAt }),
        now: NOW + 5,
      });
      expect(result).toEqual({ accepted: false, changes: [] });
    }
    expect(await store.listSubtasks(task.id)).toEqual(before);
    expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({});
    expect(await store.nextRetryAt()).toBeUndefined();
  });

  it('refuses a second write for the same attempt, and writes for a subtask not RUNNING', async () => {
    const store: Store = new MemoryStore();
    const { task, subtasks } = await addTask(store, template(['a', 'b'], ['a>b']));
    const [a] = await claim(store);
    if (!a) throw new Error('nothing claimed');
    const fence = fenceOf(a);
    expect((await store.completeAttempt(fence, { input: {}, output: {}, now: NOW })).accepted).toBe(
      true,
    );
    expect(await store.completeAttempt(fence, { input: {}, output: {}, now: NOW })).toEqual({
      accepted: false,
      changes: [],
    });
    expect(await store.failAttempt(fence, { input: {}, error: ERROR, now: NOW })).toEqual({
      accepted: false,
      changes: [],
    });
    // b is READY, not claimed: nobody may complete it.
    const b = subtasks[1];
    if (!b) throw new Error('no b');
    const bFence = { taskId: task.id, subtaskId: b.id, runTime: 1, executor: 'e1' };
    expect(await statuses(store, task.id)).toEqual({ a: 'SUCCESSFUL', b: 'READY' });
    expect(
      (await store.completeAttempt(bFence, { input: {}, output: {}, now: NOW })).accepted,
    ).toBe(false);
    expect(await statuses(store, task.id)).toEqual({ a: 'SUCCESSFUL', b: 'READY' });
  });

  it('refuses the fence of an attempt that was retried', async () => {
    const store: Store = new MemoryStore();
    await addTask(store, template(['a']));
    const [first] = await claim(store);
    if (!first) throw new Error('nothing claimed');
    const oldFence = fenceOf(first);
    await store.failAttempt(oldFence, { input: {}, error: ERROR, retryAt: NOW, now: NOW });
    const [second] = await claim(store);
    expect(second?.subtask.runTime).toBe(2);
    expect(await store.completeAttempt(oldFence, { input: {}, output: {}, now: NOW })).toEqual({
      accepted: false,
      changes: [],
    });
    expect(second?.subtask.status).toBe(SubtaskStatus.RUNNING);
  });
});

describe('MemoryStore claims', () => {
  it('marks a claimed subtask RUNNING with startTime and executor, and hands out its input', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a']));
    const [a] = await claim(store, 1, NOW + 7, 'engine-x');
    expect(a?.subtask).toMatchObject({
      status: SubtaskStatus.RUNNING,
      startTime: NOW + 7,
      executor: 'engine-x',
      runTime: 1,
    });
    // A root's input is known without a merge: empty (or left to the engine to merge: none).
    expect([a?.attempt, a?.input ?? {}, a?.upstreamOutputs]).toEqual([1, {}, []]);
    expect(await claim(store)).toEqual([]);
    expect((await store.listSubtasks(task.id))[0]?.status).toBe(SubtaskStatus.RUNNING);
  });

  it('takes tasks in turn: a task is not served twice while another waits', async () => {
    const store: Store = new MemoryStore();
    const keys = ['a', 'b', 'c', 'd'];
    const t1 = await addTask(store, template(keys));
    const t2 = await addTask(store, template(keys));
    const t3 = await addTask(store, template(keys));
    const order: number[] = [];
    for (let i = 0; i < 9; i++) {
      const claims = await claim(store, 1);
      expect(claims).toHaveLength(1);
      order.push(claims[0]?.task.id ?? -1);
    }
    const [x, y, z] = [t1.task.id, t2.task.id, t3.task.id];
    expect(order).toEqual([x, y, z, x, y, z, x, y, z]);
  });

  it('serves every task with work within one round of claims, whatever the batch size', async () => {
    const store: Store = new MemoryStore();
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await addTask(store, template(keys))).task.id);
    const served = new Set<number>();
    for (let round = 0; round < 3; round++) {
      for (const c of await claim(store, 2)) served.add(c.task.id);
    }
    expect([...served].sort()).toEqual(ids);
  });

  it("never has more of a task RUNNING than the task's concurrency", async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a', 'b', 'c', 'd', 'e']), undefined);
    const limited = await addTask(
      store,
      template(['a', 'b', 'c', 'd', 'e'], [], { concurrency: 2 }),
    );
    const claims = await claim(store, 100);
    const ofLimited = claims.filter((c) => c.task.id === limited.task.id);
    expect(ofLimited).toHaveLength(2);
    expect(claims.filter((c) => c.task.id === task.id)).toHaveLength(5);
    expect(await claim(store, 100)).toEqual([]);
    const [first] = ofLimited;
    if (!first) throw new Error('nothing claimed');
    await store.completeAttempt(fenceOf(first), { input: {}, output: {}, now: NOW });
    const next = await claim(store, 100);
    expect(next.map((c) => c.task.id)).toEqual([limited.task.id]);
    const running = (await store.listSubtasks(limited.task.id)).filter(
      (s) => s.status === SubtaskStatus.RUNNING,
    );
    expect(running).toHaveLength(2);
  });

  it('makes a downstream READY only while READY+RUNNING is below the concurrency', async () => {
    const store: Store = new MemoryStore();
    const tpl = template(['a', 'b', 'c', 'a2', 'b2', 'c2'], ['a>a2', 'b>b2', 'c>c2'], {
      concurrency: 2,
    });
    const { task } = await addTask(store, tpl);
    // Three roots READY at submission (as OCP), two of them claimed.
    const [x, y] = await claim(store);
    if (!x || !y) throw new Error('expected two claims');
    const z = ['a', 'b', 'c'].find((k) => k !== keyOf(x) && k !== keyOf(y)) ?? '';
    expect((await statuses(store, task.id))[z]).toBe('READY');
    // x is done, but y RUNNING + z READY fill the two slots: x's downstream waits.
    const done = await store.completeAttempt(fenceOf(x), { input: {}, output: {}, now: NOW });
    expect(done.changes.filter((c) => c.kind === 'subtask' && c.to === 'READY')).toEqual([]);
    expect((await statuses(store, task.id))[`${keyOf(x)}2`]).toBe('PENDING');
    const [zClaim] = await claim(store);
    expect(zClaim && keyOf(zClaim)).toBe(z);
    // y is done: one slot frees (z RUNNING), x's downstream goes first, y's waits.
    const next = await store.completeAttempt(fenceOf(y), { input: {}, output: {}, now: NOW });
    const readied = next.changes.filter((c) => c.kind === 'subtask' && c.to === 'READY');
    expect(readied.map((c) => c.kind === 'subtask' && c.from)).toEqual(['PENDING']);
    const after = await statuses(store, task.id);
    expect([after[`${keyOf(x)}2`], after[`${keyOf(y)}2`]]).toEqual(['READY', 'PENDING']);
  });

  it('holds a retry until its retryAt', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a']));
    const [a] = await claim(store);
    if (!a) throw new Error('nothing claimed');
    const failed = await store.failAttempt(fenceOf(a), {
      input: { stringMap: { k: 'saved' } },
      error: ERROR,
      retryAt: NOW + 1000,
      now: NOW + 10,
    });
    // `changes` lists consequences only; the attempt's own move is the caller's to know.
    expect(failed).toEqual({ accepted: true, changes: [] });
    const [record] = await store.listSubtasks(task.id);
    expect(record).toMatchObject({
      status: SubtaskStatus.READY,
      operation: Operation.RETRY,
      runTime: 2,
      endTime: NOW + 10,
    });
    expect(await store.nextRetryAt()).toBe(NOW + 1000);
    expect(await claim(store, 10, NOW + 999)).toEqual([]);
    const [retry] = await claim(store, 10, NOW + 1000);
    expect(retry).toMatchObject({ attempt: 2, input: { stringMap: { k: 'saved' } } });
    expect(retry?.subtask).toMatchObject({ runTime: 2, status: 'RUNNING', startTime: NOW + 1000 });
    expect(retry?.subtask.endTime).toBeUndefined();
    expect(await store.nextRetryAt()).toBeUndefined();
  });

  it('claims nothing more of a task once one of its subtasks failed for good', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a', 'b', 'c'], [], { concurrency: 2 }));
    const other = await addTask(store, template(['x']));
    const claims = await claim(store, 2);
    const [first, second] = claims;
    if (!first || !second) throw new Error('expected two claims');
    expect(claims.map((c) => c.task.id)).toEqual([task.id, task.id]);
    const failed = await store.failAttempt(fenceOf(first), {
      input: {},
      error: ERROR,
      now: NOW + 1,
    });
    expect(failed.changes.filter((c) => c.kind === 'task')).toEqual([]);
    // The third root is READY, a slot is free, but the task has failed: only the other task runs.
    expect((await claim(store)).map((c) => c.task.id)).toEqual([other.task.id]);
    const last = await store.completeAttempt(fenceOf(second), {
      input: {},
      output: {},
      now: NOW + 2,
    });
    expect(last.changes.filter((c) => c.kind === 'task')).toEqual([
      { kind: 'task', taskId: task.id, from: 'RUNNING', to: 'FAILED', operation: 'EXECUTE' },
    ]);
    const record = await store.getTask(task.id);
    expect([record?.status, record?.endTime]).toEqual([TaskStatus.FAILED, NOW + 2]);
    expect((await store.listSubtasks(task.id))[0]?.error).toEqual(ERROR);
  });

  it('fails the task when its last running subtask goes to retry after a sibling failed for good', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a', 'b']));
    const [a, b] = await claim(store);
    if (!a || !b) throw new Error('expected two claims');
    await store.failAttempt(fenceOf(a), { input: {}, error: ERROR, now: NOW + 1 });
    const retried = await store.failAttempt(fenceOf(b), {
      input: {},
      error: ERROR,
      retryAt: NOW + 100,
      now: NOW + 2,
    });
    expect(retried.changes.filter((c) => c.kind === 'task')).toEqual([
      { kind: 'task', taskId: task.id, from: 'RUNNING', to: 'FAILED', operation: 'EXECUTE' },
    ]);
    expect((await store.getTask(task.id))?.status).toBe(TaskStatus.FAILED);
    expect(await claim(store, 10, NOW + 1000)).toEqual([]);
  });

  it('finishes the task SUCCESSFUL when its last subtask completes, unblocking in order', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
    const [a] = await claim(store);
    if (!a) throw new Error('nothing claimed');
    expect(await claim(store)).toEqual([]);
    const first = await store.completeAttempt(fenceOf(a), {
      input: {},
      output: { stringMap: { k: 'v' } },
      now: NOW + 1,
    });
    expect(first.changes.map((c) => [c.kind, c.from, c.to])).toEqual([
      ['subtask', 'PENDING', 'READY'],
    ]);
    const [b] = await claim(store);
    if (!b) throw new Error('nothing claimed');
    // b's input: a's output, handed over as is or as the one output to merge.
    expect(b.input ?? b.upstreamOutputs[0]).toEqual({ stringMap: { k: 'v' } });
    const last = await store.completeAttempt(fenceOf(b), { input: {}, output: {}, now: NOW + 2 });
    expect(last.changes.map((c) => [c.kind, c.from, c.to])).toEqual([
      ['task', 'RUNNING', 'SUCCESSFUL'],
    ]);
    expect((await statuses(store, task.id)).b).toBe('SUCCESSFUL');
    const record = await store.getTask(task.id);
    expect([record?.status, record?.endTime]).toEqual([TaskStatus.SUCCESSFUL, NOW + 2]);
    expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({
      input: {},
      output: { stringMap: { k: 'v' } },
    });
  });
});

describe('MemoryStore reads', () => {
  it('answers undefined or empty for unknown tasks and subtasks', async () => {
    const store: Store = new MemoryStore();
    const { task, subtasks } = await addTask(store, template(['a']));
    expect(await store.getTask(task.id + 1)).toBeUndefined();
    expect(await store.listSubtasks(task.id + 1)).toEqual([]);
    const id = subtasks[0]?.id ?? -1;
    expect(await store.getSubtaskContexts(task.id, id)).toEqual({});
    expect(await store.getSubtaskContexts(task.id, id + 1)).toBeUndefined();
    expect(await store.getSubtaskContexts(task.id, id - 1)).toBeUndefined();
    expect(await store.getSubtaskContexts(task.id, id + 0.5)).toBeUndefined();
    expect(await store.getSubtaskContexts(task.id + 1, id)).toBeUndefined();
  });

  it('hands out copies: changing what it returned does not change the store', async () => {
    const store: Store = new MemoryStore();
    const { task } = await addTask(store, template(['a']));
    const record = await store.getTask(task.id);
    if (!record) throw new Error('no task');
    record.status = TaskStatus.FAILED;
    const [subtask] = await store.listSubtasks(task.id);
    if (!subtask) throw new Error('no subtask');
    subtask.status = SubtaskStatus.FAILED;
    expect((await store.getTask(task.id))?.status).toBe(TaskStatus.RUNNING);
    expect((await store.listSubtasks(task.id))[0]?.status).toBe(SubtaskStatus.READY);
  });

  it('keeps log lines per subtask in order, and drops lines for unknown subtasks', async () => {
    const store: Store = new MemoryStore();
    const { task, subtasks } = await addTask(store, template(['a', 'b']));
    const [a, b] = subtasks.map((s) => s.id);
    const line = (subtaskId: number | undefined, message: string) => ({
      taskId: task.id,
      subtaskId: subtaskId ?? -1,
      runTime: 1,
      time: NOW,
      message,
    });
    await store.appendLogs([line(a, 'a1'), line(b, 'b1')]);
    await store.appendLogs([line(a, 'a2'), line(999, 'lost'), { ...line(a, 'lost'), taskId: 99 }]);
    expect((await store.readLogs(task.id, a ?? -1)).map((e) => e.message)).toEqual(['a1', 'a2']);
    expect((await store.readLogs(task.id, b ?? -1)).map((e) => e.message)).toEqual(['b1']);
    expect(await store.readLogs(task.id, 999)).toEqual([]);
    expect(await store.readLogs(99, a ?? -1)).toEqual([]);
  });

  it('reserves distinct ids', async () => {
    const store: Store = new MemoryStore();
    const first = await store.reserveIds(3);
    const second = await store.reserveIds(2);
    expect(second.taskId).not.toBe(first.taskId);
    expect(second.firstSubtaskId).toBeGreaterThanOrEqual(first.firstSubtaskId + 3);
  });
});

describe('transition tables', () => {
  const SUBTASK_STATUSES = Object.values(SubtaskStatus);
  const TASK_STATUSES = Object.values(TaskStatus);
  const LEGAL_SUBTASK_MOVES = new Set([
    'PENDING>READY', // upstreams done, a slot free
    'READY>RUNNING', // claimed
    'READY>PENDING', // a rollback resets a subtask that never ran
    'RUNNING>SUCCESSFUL',
    'RUNNING>READY', // failed attempt, to be retried
    'RUNNING>FAILED', // failed for good
    'RUNNING>CANCELING', // cancel requested
    'RUNNING>PENDING', // rolled back
    'CANCELING>FAILED', // canceled attempt ended
    'FAILED>READY', // manual retry, or its turn to roll back
    'FAILED>SUCCESSFUL', // skip
    'FAILED>PENDING', // rollback-skip
    'SUCCESSFUL>READY', // its turn to roll back
  ]);
  const LEGAL_TASK_MOVES = new Set(['RUNNING>SUCCESSFUL', 'RUNNING>FAILED', 'FAILED>RUNNING']);

  it('lists exactly the legal subtask moves', () => {
    const listed = SUBTASK_STATUSES.flatMap((from) =>
      SUBTASK_TRANSITIONS[from].map((to) => `${from}>${to}`),
    );
    expect(new Set(listed)).toEqual(LEGAL_SUBTASK_MOVES);
    expect(listed).toHaveLength(LEGAL_SUBTASK_MOVES.size);
  });

  it('lists exactly the legal task moves', () => {
    const listed = TASK_STATUSES.flatMap((from) =>
      TASK_TRANSITIONS[from].map((to) => `${from}>${to}`),
    );
    expect(new Set(listed)).toEqual(LEGAL_TASK_MOVES);
  });

  const subtaskPairs = SUBTASK_STATUSES.flatMap((from) =>
    SUBTASK_STATUSES.map((to) => [from, to] as const),
  );
  it.each(subtaskPairs)('subtask %s -> %s: allowed exactly when listed', (from, to) => {
    if (LEGAL_SUBTASK_MOVES.has(`${from}>${to}`)) {
      expect(() => assertSubtaskMove(7, from, to)).not.toThrow();
    } else {
      let thrown: unknown;
      try {
        assertSubtaskMove(7, from, to);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(DagopsError);
      expect(thrown).toMatchObject({ code: ErrorCode.TASK_STATE_INVALID, target: '7' });
      expect((thrown as Error).message).toBe(`subtask 7 cannot move from ${from} to ${to}`);
    }
  });

  const taskPairs = TASK_STATUSES.flatMap((from) => TASK_STATUSES.map((to) => [from, to] as const));
  it.each(taskPairs)('task %s -> %s: allowed exactly when listed', (from, to) => {
    if (LEGAL_TASK_MOVES.has(`${from}>${to}`)) {
      expect(() => assertTaskMove(3, from, to)).not.toThrow();
    } else {
      expect(() => assertTaskMove(3, from, to)).toThrow(
        expect.objectContaining({ code: ErrorCode.TASK_STATE_INVALID }) as Error,
      );
    }
  });
});
