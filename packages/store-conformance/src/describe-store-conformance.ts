/**
 * The store conformance suite (STYLE #14): what every {@link Store} must do, written against the
 * interface only, from the behaviours the in-memory reference store has. The in-memory store,
 * PGlite and PostgreSQL all run it; stores with leases, with a second connection to the same
 * data, or that survive a restart run the parts that need those too.
 */
import {
  countSubtasks,
  DagopsError,
  ErrorCode,
  expandTemplate,
  Operation,
  SubtaskStatus,
  TaskStatus,
  validateTemplate,
  type AttemptFence,
  type Claim,
  type ErrorInfo,
  type ExpandedTask,
  type StatusChange,
  type Store,
  type Template,
  type TemplateNode,
} from '@dagops/engine';
import { describe, expect, it, onTestFinished } from 'vitest';

/** A store under test, and what the suite may do with its data. */
export interface StoreUnderTest {
  readonly store: Store;
  /** Opens another store on the same data through other connections (races). */
  readonly another?: () => Promise<Store>;
  /** Closes the store and opens it again on the same data, as a restarted process would. */
  readonly reopen?: () => Promise<Store>;
  /** Moves every lease into the past, as if the lease time had gone by (stores with leases). */
  readonly expireLeases?: () => Promise<void>;
  /** Releases everything the store under test holds. */
  close(): Promise<void>;
}

/** Opens a fresh, empty store under test. */
export type OpenStore = (options?: { readonly leaseSeconds?: number }) => Promise<StoreUnderTest>;

export const NOW = Date.UTC(2021, 8, 3, 6, 27, 59, 687);
const ERROR: ErrorInfo = { name: 'Error', message: 'boom' };

/** A template over `keys` with `a>b` edges. */
export function template(
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

/** Expands `tpl` with ids reserved from `store`, as the engine does, without saving it. */
export async function expandFor(
  store: Store,
  tpl: Template,
  args?: unknown,
): Promise<ExpandedTask> {
  const validated = validateTemplate(tpl);
  const ids = await store.reserveIds(countSubtasks(validated, args));
  return expandTemplate(validated, args, {
    ids: { nextTaskId: () => ids.taskId, reserveSubtaskIds: () => ids.firstSubtaskId },
    creator: 'admin',
    executor: 'e1',
    now: NOW,
  });
}

/** Expands `tpl` with ids reserved from `store` and saves it, as the engine does. */
export async function addTask(store: Store, tpl: Template, args?: unknown): Promise<ExpandedTask> {
  const expanded = await expandFor(store, tpl, args);
  await store.insertTask(expanded, { actor: 'admin', now: NOW });
  return expanded;
}

function claim(store: Store, limit = 100, now = NOW, executor = 'e1'): Promise<Claim[]> {
  return Promise.resolve(store.claimReady({ executor, limit, now }));
}

const fenceOf = (c: Claim, executor = 'e1'): AttemptFence => ({
  taskId: c.task.id,
  subtaskId: c.subtask.id,
  runTime: c.subtask.runTime,
  executor,
});

const complete = (store: Store, c: Claim, now = NOW, executor = 'e1') =>
  Promise.resolve(store.completeAttempt(fenceOf(c, executor), { input: {}, output: {}, now }));

const fail = (store: Store, c: Claim, retryAt?: number, now = NOW, executor = 'e1') =>
  Promise.resolve(
    store.failAttempt(fenceOf(c, executor), {
      input: {},
      error: ERROR,
      ...(retryAt === undefined ? {} : { retryAt }),
      now,
    }),
  );

/** Status by node key. */
async function statuses(store: Store, taskId: number): Promise<Record<string, string>> {
  const list = await store.listSubtasks(taskId);
  return Object.fromEntries(list.map((s) => [s.nodeKey, s.status]));
}

const keyOf = (c: Claim) => c.subtask.nodeKey;
const moves = (changes: readonly StatusChange[]) =>
  changes.map((c) => (c.kind === 'task' ? `task ${c.from}>${c.to}` : `${c.from}>${c.to}`));

const REFUSED = { accepted: false, changes: [] };

async function refusal(promise: Promise<unknown>): Promise<DagopsError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DagopsError);
    return error as DagopsError;
  }
  throw new Error('expected a refusal');
}

/** Registers the conformance suite for the stores `open` makes. */
export function describeStoreConformance(name: string, open: OpenStore): void {
  async function fresh(options?: { readonly leaseSeconds?: number }): Promise<StoreUnderTest> {
    const handle = await open(options);
    onTestFinished(() => handle.close());
    return handle;
  }

  describe(`${name}: fencing`, () => {
    const wrongFences: readonly [string, (f: AttemptFence) => AttemptFence][] = [
      ['an older runTime', (f) => ({ ...f, runTime: f.runTime - 1 })],
      ['a newer runTime', (f) => ({ ...f, runTime: f.runTime + 1 })],
      ['another executor', (f) => ({ ...f, executor: 'e2' })],
      ['another task', (f) => ({ ...f, taskId: f.taskId + 1 })],
      ['an unknown subtask', (f) => ({ ...f, subtaskId: f.subtaskId + 999 })],
    ];

    it.each(wrongFences)(
      'refuses to complete or fail with %s, changing nothing',
      async (_l, bend) => {
        const { store } = await fresh();
        const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
        const [a] = await claim(store);
        if (!a) throw new Error('nothing claimed');
        const before = await store.listSubtasks(task.id);
        const fence = bend(fenceOf(a));
        const output = { stringMap: { k: 'v' } };
        expect(await store.completeAttempt(fence, { input: {}, output, now: NOW + 5 })).toEqual(
          REFUSED,
        );
        for (const retryAt of [undefined, NOW + 10]) {
          const result = await store.failAttempt(fence, {
            input: { stringMap: { k: 'v' } },
            error: ERROR,
            ...(retryAt === undefined ? {} : { retryAt }),
            now: NOW + 5,
          });
          expect(result).toEqual(REFUSED);
        }
        expect(await store.listSubtasks(task.id)).toEqual(before);
        expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({});
        expect(await store.nextRetryAt()).toBeUndefined();
        expect((await store.getTask(task.id))?.status).toBe(TaskStatus.RUNNING);
        const ok = await store.completeAttempt(fenceOf(a), { input: {}, output: {}, now: NOW + 5 });
        expect(ok.accepted).toBe(true);
      },
    );

    it('refuses a second write for the same attempt, and writes for a subtask not RUNNING', async () => {
      const { store } = await fresh();
      const { task, subtasks } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      expect((await complete(store, a)).accepted).toBe(true);
      expect(await complete(store, a)).toEqual(REFUSED);
      expect(await fail(store, a)).toEqual(REFUSED);
      const b = subtasks[1];
      if (!b) throw new Error('no b');
      const bFence = { taskId: task.id, subtaskId: b.id, runTime: 1, executor: 'e1' };
      expect(await store.completeAttempt(bFence, { input: {}, output: {}, now: NOW })).toEqual(
        REFUSED,
      );
      expect(await statuses(store, task.id)).toEqual({ a: 'SUCCESSFUL', b: 'READY' });
    });

    it('refuses the fence of an attempt that was retried', async () => {
      const { store } = await fresh();
      await addTask(store, template(['a']));
      const [first] = await claim(store);
      if (!first) throw new Error('nothing claimed');
      const oldFence = fenceOf(first);
      await fail(store, first, NOW);
      const [second] = await claim(store);
      expect(second?.subtask.runTime).toBe(2);
      expect(await store.completeAttempt(oldFence, { input: {}, output: {}, now: NOW })).toEqual(
        REFUSED,
      );
      expect(second?.subtask.status).toBe(SubtaskStatus.RUNNING);
    });

    it('answers each of several concurrent writes on its own', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c', 'd']));
      const [a, b, c, d] = await claim(store);
      if (!a || !b || !c || !d) throw new Error('expected four claims');
      const results = await Promise.all([
        complete(store, a),
        store.completeAttempt({ ...fenceOf(b), runTime: 9 }, { input: {}, output: {}, now: NOW }),
        fail(store, c),
        complete(store, a),
        complete(store, d),
      ]);
      expect(results.map((r) => r.accepted)).toEqual([true, false, true, false, true]);
      expect(await statuses(store, task.id)).toMatchObject({
        [keyOf(a)]: 'SUCCESSFUL',
        [keyOf(b)]: 'RUNNING',
        [keyOf(c)]: 'FAILED',
        [keyOf(d)]: 'SUCCESSFUL',
      });
    });
  });

  describe(`${name}: claims`, () => {
    it('marks a claimed subtask RUNNING with startTime and executor, and hands out its input', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a']));
      const [a] = await claim(store, 1, NOW + 7, 'engine-x');
      expect(a?.subtask).toMatchObject({
        status: SubtaskStatus.RUNNING,
        startTime: NOW + 7,
        executor: 'engine-x',
        runTime: 1,
      });
      expect(a?.task.id).toBe(task.id);
      expect(a?.task.template.name).toBe('t');
      expect([a?.attempt, a?.input ?? {}, a?.upstreamOutputs]).toEqual([1, {}, []]);
      expect(await claim(store)).toEqual([]);
      expect((await store.listSubtasks(task.id))[0]).toMatchObject({
        status: SubtaskStatus.RUNNING,
        executor: 'engine-x',
        startTime: NOW + 7,
      });
    });

    it('takes tasks in turn: a task is not served twice while another waits', async () => {
      const { store } = await fresh();
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

    it('serves every task with work within one round of claims', async () => {
      const { store } = await fresh();
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
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c', 'd', 'e']));
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
      await complete(store, first);
      const next = await claim(store, 100);
      expect(next.map((c) => c.task.id)).toEqual([limited.task.id]);
      const running = (await store.listSubtasks(limited.task.id)).filter(
        (s) => s.status === SubtaskStatus.RUNNING,
      );
      expect(running).toHaveLength(2);
    });

    it('makes a downstream READY only while READY+RUNNING is below the concurrency', async () => {
      const { store } = await fresh();
      const tpl = template(['a', 'b', 'c', 'a2', 'b2', 'c2'], ['a>a2', 'b>b2', 'c>c2'], {
        concurrency: 2,
      });
      const { task } = await addTask(store, tpl);
      const [x, y] = await claim(store);
      if (!x || !y) throw new Error('expected two claims');
      const z = ['a', 'b', 'c'].find((k) => k !== keyOf(x) && k !== keyOf(y)) ?? '';
      expect((await statuses(store, task.id))[z]).toBe('READY');
      const done = await complete(store, x);
      expect(moves(done.changes)).toEqual([]);
      expect((await statuses(store, task.id))[`${keyOf(x)}2`]).toBe('PENDING');
      const [zClaim] = await claim(store);
      expect(zClaim && keyOf(zClaim)).toBe(z);
      const next = await complete(store, y);
      expect(moves(next.changes)).toEqual(['PENDING>READY']);
      const after = await statuses(store, task.id);
      expect([after[`${keyOf(x)}2`], after[`${keyOf(y)}2`]]).toEqual(['READY', 'PENDING']);
    });

    it('holds a retry until its retryAt, then hands out the saved input', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      const failed = await store.failAttempt(fenceOf(a), {
        input: { stringMap: { k: 'saved' } },
        error: ERROR,
        retryAt: NOW + 1000,
        now: NOW + 10,
      });
      expect(failed).toEqual({ accepted: true, changes: [] });
      const [record] = await store.listSubtasks(task.id);
      expect(record).toMatchObject({
        status: SubtaskStatus.READY,
        operation: Operation.RETRY,
        runTime: 2,
        endTime: NOW + 10,
      });
      expect(record?.error).toBeUndefined();
      expect(await store.nextRetryAt()).toBe(NOW + 1000);
      expect(await claim(store, 10, NOW + 999)).toEqual([]);
      const [retry] = await claim(store, 10, NOW + 1000);
      expect(retry).toMatchObject({ attempt: 2, input: { stringMap: { k: 'saved' } } });
      expect(retry?.subtask).toMatchObject({
        runTime: 2,
        status: 'RUNNING',
        startTime: NOW + 1000,
      });
      expect(retry?.subtask.endTime).toBeUndefined();
      expect(await store.nextRetryAt()).toBeUndefined();
    });

    it('claims nothing more of a task once one of its subtasks failed for good', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c'], [], { concurrency: 2 }));
      const other = await addTask(store, template(['x']));
      const claims = await claim(store, 2);
      const [first, second] = claims;
      if (!first || !second) throw new Error('expected two claims');
      expect(claims.map((c) => c.task.id)).toEqual([task.id, task.id]);
      const failed = await fail(store, first, undefined, NOW + 1);
      expect(failed.changes.filter((c) => c.kind === 'task')).toEqual([]);
      expect((await claim(store)).map((c) => c.task.id)).toEqual([other.task.id]);
      const last = await complete(store, second, NOW + 2);
      expect(last.changes.filter((c) => c.kind === 'task')).toEqual([
        { kind: 'task', taskId: task.id, from: 'RUNNING', to: 'FAILED', operation: 'EXECUTE' },
      ]);
      const record = await store.getTask(task.id);
      expect([record?.status, record?.endTime]).toEqual([TaskStatus.FAILED, NOW + 2]);
      expect(
        (await store.listSubtasks(task.id)).find((s) => s.id === first.subtask.id)?.error,
      ).toEqual(ERROR);
    });

    it('fails the task when its last running subtask goes to retry after a sibling failed for good', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      await fail(store, a, undefined, NOW + 1);
      const retried = await fail(store, b, NOW + 100, NOW + 2);
      expect(retried.changes.filter((c) => c.kind === 'task')).toEqual([
        { kind: 'task', taskId: task.id, from: 'RUNNING', to: 'FAILED', operation: 'EXECUTE' },
      ]);
      expect(await claim(store, 10, NOW + 1000)).toEqual([]);
    });

    it('finishes the task SUCCESSFUL when its last subtask completes, passing outputs on', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      expect(await claim(store)).toEqual([]);
      const first = await store.completeAttempt(fenceOf(a), {
        input: {},
        output: { stringMap: { k: 'v' } },
        now: NOW + 1,
      });
      expect(moves(first.changes)).toEqual(['PENDING>READY']);
      const [b] = await claim(store);
      if (!b) throw new Error('nothing claimed');
      expect(b.input ?? b.upstreamOutputs[0]).toEqual({ stringMap: { k: 'v' } });
      const last = await complete(store, b, NOW + 2);
      expect(moves(last.changes)).toEqual(['task RUNNING>SUCCESSFUL']);
      const record = await store.getTask(task.id);
      expect([record?.status, record?.endTime]).toEqual([TaskStatus.SUCCESSFUL, NOW + 2]);
      expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({
        input: {},
        output: { stringMap: { k: 'v' } },
      });
    });

    it('gives a subtask with several upstreams what it needs to merge their outputs', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c'], ['a>c', 'b>c']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      const outputs = new Map([
        [a.subtask.id, { stringMap: { x: '1' } }],
        [b.subtask.id, { listMap: { l: ['1'] } }],
      ]);
      for (const c of [a, b]) {
        await store.completeAttempt(fenceOf(c), {
          input: {},
          output: outputs.get(c.subtask.id) ?? {},
          now: NOW,
        });
      }
      const [c] = await claim(store);
      if (!c) throw new Error('nothing claimed');
      expect(c.input).toBeUndefined();
      expect(new Set(c.upstreamOutputs.map((o) => JSON.stringify(o)))).toEqual(
        new Set([...outputs.values()].map((o) => JSON.stringify(o))),
      );
      expect((await store.getTask(task.id))?.status).toBe(TaskStatus.RUNNING);
    });
  });

  describe(`${name}: save and claim`, () => {
    const CREATOR = { actor: 'admin', now: NOW };
    /** The store's insertTaskAndClaim, or a skip when it has none (it is optional). */
    function saveAndClaim(
      store: Store,
      skip: () => void,
    ): NonNullable<Store['insertTaskAndClaim']> {
      if (!store.insertTaskAndClaim) skip();
      return (expanded, creator, request) =>
        (store.insertTaskAndClaim as NonNullable<Store['insertTaskAndClaim']>).call(
          store,
          expanded,
          creator,
          request,
        );
    }
    const hosts = { listMap: { hosts: ['h1', 'h2', 'h3', 'h4', 'h5'] } };
    // 10 subtasks, 5 READY, at most 3 RUNNING.
    const split = template(['a', 'b'], ['a>b'], { concurrency: 3 }, { splitKey: 'hosts' });
    /** What a claim hands out, without the task record (compared on its own). */
    const handedOut = (claims: readonly Claim[]) =>
      claims.map((c) => [c.task.id, c.subtask, c.attempt, c.input, c.upstreamOutputs]);

    it('claims in the save as claimReady right after insertTask would', async (context) => {
      const [one, two] = [await fresh(), await fresh()];
      const call = saveAndClaim(one.store, () => context.skip());
      // A task with work already, so that the claim has more than the new task to serve; two
      // subtasks each, which a store saving large tasks head first still saves in one go.
      const earlier = await addTask(one.store, template(['x', 'y']));
      await addTask(two.store, template(['x', 'y']));
      const limited = template(['a', 'b'], [], { concurrency: 1 });
      const expanded = await expandFor(one.store, limited);
      const twin = await expandFor(two.store, limited);
      expect(twin.task.id).toBe(expanded.task.id);
      const request = { executor: 'e1', limit: 4, now: NOW + 5 };
      const claims = await call(expanded, CREATOR, request);
      await two.store.insertTask(twin, CREATOR);
      const expected = await claim(two.store, request.limit, request.now);
      expect(handedOut(claims)).toEqual(handedOut(expected));
      // Both of the earlier task, one of the new: its concurrency holds in the save's claim.
      expect(claims.map((c) => c.task.id).sort()).toEqual([
        earlier.task.id,
        earlier.task.id,
        expanded.task.id,
      ]);
      for (const id of [earlier.task.id, expanded.task.id]) {
        expect(await one.store.getTask(id)).toEqual(await two.store.getTask(id));
        expect(await one.store.listSubtasks(id)).toEqual(await two.store.listSubtasks(id));
        expect(await one.store.listAudit(id)).toEqual(await two.store.listAudit(id));
      }
      expect(await claim(one.store, 100, NOW + 6)).toEqual([]);
    });

    it('saves the task and claims nothing when the limit is 0', async (context) => {
      const { store } = await fresh();
      const call = saveAndClaim(store, () => context.skip());
      const expanded = await expandFor(store, split, hosts);
      expect(await call(expanded, CREATOR, { executor: 'e1', limit: 0, now: NOW })).toEqual([]);
      expect(await store.listSubtasks(expanded.task.id)).toEqual(expanded.subtasks);
      expect(await claim(store, 100)).toHaveLength(3);
    });

    it('saves and claims nothing when the save fails', async (context) => {
      const { store } = await fresh();
      const call = saveAndClaim(store, () => context.skip());
      const other = await addTask(store, template(['x']));
      const expanded = await addTask(store, split, hosts);
      const before = await store.listSubtasks(expanded.task.id);
      await expect(
        call(expanded, CREATOR, { executor: 'e1', limit: 10, now: NOW }),
      ).rejects.toThrow();
      expect(await store.listSubtasks(expanded.task.id)).toEqual(before);
      expect((await store.listSubtasks(other.task.id))[0]?.status).toBe(SubtaskStatus.READY);
      expect(await store.listAudit(expanded.task.id)).toHaveLength(1);
    });
  });

  describe(`${name}: reads`, () => {
    it('answers undefined or empty for unknown tasks and subtasks', async () => {
      const { store } = await fresh();
      const { task, subtasks } = await addTask(store, template(['a']));
      expect(await store.getTask(task.id + 1)).toBeUndefined();
      expect(await store.listSubtasks(task.id + 1)).toEqual([]);
      const id = subtasks[0]?.id ?? -1;
      expect(await store.getSubtaskContexts(task.id, id)).toEqual({});
      expect(await store.getSubtaskContexts(task.id, id + 1)).toBeUndefined();
      expect(await store.getSubtaskContexts(task.id, id - 1)).toBeUndefined();
      expect(await store.getSubtaskContexts(task.id, id + 0.5)).toBeUndefined();
      expect(await store.getSubtaskContexts(task.id + 1, id)).toBeUndefined();
      expect(await store.listAudit(task.id + 1)).toEqual([]);
    });

    it('reads a task with its subtasks in one call as getTask and listSubtasks do', async () => {
      const { store } = await fresh();
      if (!store.readTask) return;
      const expanded = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      await store.completeAttempt(fenceOf(a), {
        input: {},
        output: { stringMap: { k: '1' } },
        now: NOW,
      });
      expect(await store.readTask(expanded.task.id)).toEqual({
        task: await store.getTask(expanded.task.id),
        subtasks: await store.listSubtasks(expanded.task.id),
      });
      expect(await store.readTask(expanded.task.id + 1)).toBeUndefined();
      expect(await store.readTask(0)).toBeUndefined();
    });

    it('saves the task and its subtasks as expanded, and hands out copies', async () => {
      const { store } = await fresh();
      const tpl = template(['a', 'b'], ['a>b'], {}, { splitKey: 'hosts' });
      const expanded = await addTask(store, tpl, {
        stringMap: { z: '1', a: '2' },
        listMap: { hosts: ['h1', 'h2'] },
      });
      const record = await store.getTask(expanded.task.id);
      expect(record).toEqual(expanded.task);
      // Key order too: the context is rendered as it was given.
      expect(JSON.stringify(record?.context)).toBe(JSON.stringify(expanded.task.context));
      expect(await store.listSubtasks(expanded.task.id)).toEqual(expanded.subtasks);
      if (!record) throw new Error('no task');
      record.status = TaskStatus.FAILED;
      const [subtask] = await store.listSubtasks(expanded.task.id);
      if (!subtask) throw new Error('no subtask');
      subtask.status = SubtaskStatus.FAILED;
      expect((await store.getTask(expanded.task.id))?.status).toBe(TaskStatus.RUNNING);
      expect((await store.listSubtasks(expanded.task.id))[0]?.status).toBe(SubtaskStatus.READY);
    });

    it('keeps log lines per subtask in order, and drops lines for unknown subtasks', async () => {
      const { store } = await fresh();
      const { task, subtasks } = await addTask(store, template(['a', 'b']));
      const [a = -1, b = -1] = subtasks.map((s) => s.id);
      const line = (subtaskId: number, message: string) => ({
        taskId: task.id,
        subtaskId,
        runTime: 1,
        time: NOW,
        message,
      });
      await store.appendLogs([line(a, 'a1'), line(b, 'b1')]);
      await store.appendLogs([
        line(a, 'a2'),
        line(b + 999, 'lost'),
        { ...line(a, 'lost'), taskId: task.id + 9 },
      ]);
      expect(await store.readLogs(task.id, a)).toEqual([line(a, 'a1'), line(a, 'a2')]);
      expect((await store.readLogs(task.id, b)).map((e) => e.message)).toEqual(['b1']);
      expect(await store.readLogs(task.id, b + 999)).toEqual([]);
      expect(await store.readLogs(task.id + 9, a)).toEqual([]);
    });

    it('reserves distinct ids, even when asked concurrently', async () => {
      const { store } = await fresh();
      const blocks = await Promise.all([3, 2, 5, 1].map((n) => store.reserveIds(n)));
      const tasks = new Set(blocks.map((b) => b.taskId));
      expect(tasks.size).toBe(4);
      const used = new Set<number>();
      [3, 2, 5, 1].forEach((n, i) => {
        for (let k = 0; k < n; k++) used.add((blocks[i]?.firstSubtaskId ?? 0) + k);
      });
      expect(used.size).toBe(11);
    });
  });

  describe(`${name}: operations`, () => {
    it('retries a FAILED task: every FAILED subtask READY again, runTime + 1, task RUNNING', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      await fail(store, a);
      await complete(store, b);
      expect((await store.getTask(task.id))?.status).toBe(TaskStatus.FAILED);
      const changes = await store.retryTask(task.id, { actor: 'ops', now: NOW + 5 });
      expect(moves(changes)).toEqual(['FAILED>READY', 'task FAILED>RUNNING']);
      const record = await store.getTask(task.id);
      expect([record?.status, record?.operation, record?.endTime]).toEqual([
        'RUNNING',
        'RETRY',
        undefined,
      ]);
      const [again] = await claim(store);
      expect(again).toMatchObject({ attempt: 1, subtask: { id: a.subtask.id, runTime: 2 } });
      if (!again) throw new Error('nothing claimed');
      expect(moves((await complete(store, again)).changes)).toEqual(['task RUNNING>SUCCESSFUL']);
      expect((await store.listAudit(task.id)).map((e) => [e.operation, e.actor])).toEqual([
        ['EXECUTE', 'admin'],
        ['RETRY', 'ops'],
      ]);
    });

    it('refuses illegal operations with their codes, changing nothing', async () => {
      const { store } = await fresh();
      const { task, subtasks } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a = -1, b = -1] = subtasks.map((s) => s.id);
      const by = { actor: 'ops', now: NOW };
      const before = [await store.getTask(task.id), await store.listSubtasks(task.id)];
      const codes = [
        (await refusal(store.retryTask(task.id, by))).code,
        (await refusal(store.rollbackTask(task.id, by))).code,
        (await refusal(store.retrySubtask(task.id, a, by))).code,
        (await refusal(store.skipSubtask(task.id, b, by))).code,
        (await refusal(store.cancelSubtask(task.id, a, by))).code,
        (await refusal(store.retryTask(task.id + 99, by))).code,
        (await refusal(store.cancelSubtask(task.id, b + 999, by))).code,
      ];
      expect(codes).toEqual([20003, 20003, 20003, 20003, 20003, 20000, 20000]);
      const unknown = await refusal(store.skipSubtask(task.id, b + 999, by));
      expect(unknown).toMatchObject({ code: ErrorCode.TASK_NOT_FOUND, target: String(b + 999) });
      expect([await store.getTask(task.id), await store.listSubtasks(task.id)]).toEqual(before);
      expect(await store.listAudit(task.id)).toHaveLength(1);
    });

    it('retries one subtask, and skips another: SUCCESSFUL with its input as output', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c'], ['a>c', 'b>c']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      await store.failAttempt(fenceOf(a), {
        input: { stringMap: { in: 'a' } },
        error: ERROR,
        now: NOW,
      });
      await fail(store, b);
      const by = { actor: 'ops', now: NOW + 1 };
      const skipped = await store.skipSubtask(task.id, a.subtask.id, by);
      expect(skipped.map((c) => c.kind === 'subtask' && [c.from, c.to, c.operation])).toEqual([
        ['FAILED', 'SUCCESSFUL', 'SKIP'],
      ]);
      expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({
        input: { stringMap: { in: 'a' } },
        output: { stringMap: { in: 'a' } },
      });
      const retried = await store.retrySubtask(task.id, b.subtask.id, by);
      expect(moves(retried)).toEqual(['FAILED>READY', 'task FAILED>RUNNING']);
      const [bAgain] = await claim(store);
      if (!bAgain) throw new Error('nothing claimed');
      expect(moves((await complete(store, bAgain)).changes)).toEqual(['PENDING>READY']);
      const [c] = await claim(store);
      if (!c) throw new Error('nothing claimed');
      await complete(store, c);
      expect((await store.getTask(task.id))?.status).toBe(TaskStatus.SUCCESSFUL);
      expect((await store.listAudit(task.id)).map((e) => [e.operation, e.subtaskId])).toEqual([
        ['EXECUTE', undefined],
        ['SKIP', a.subtask.id],
        ['RETRY', b.subtask.id],
      ]);
    });

    it('cancels a subtask: CANCELING, then FAILED (CANCEL) when its attempt ends', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      const changes = await store.cancelSubtask(task.id, a.subtask.id, { actor: 'ops', now: NOW });
      expect(changes.map((c) => c.kind === 'subtask' && [c.from, c.to, c.operation])).toEqual([
        ['RUNNING', 'CANCELING', 'CANCEL'],
      ]);
      const ended = await complete(store, a);
      expect(ended.accepted).toBe(true);
      expect(moves(ended.changes)).toEqual(['CANCELING>FAILED']);
      const record = (await store.listSubtasks(task.id)).find((s) => s.id === a.subtask.id);
      expect(record).toMatchObject({ status: 'FAILED', operation: 'CANCEL' });
      expect(record?.error?.code).toBe(ErrorCode.ATTEMPT_CANCELED);
      expect(moves((await complete(store, b)).changes)).toEqual(['task RUNNING>FAILED']);
    });

    it('cancels a task: its running subtasks CANCELING, nothing new, FAILED once none runs', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b', 'c'], [], { concurrency: 2 }));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      const changes = await store.cancelTask(task.id, { actor: 'ops', now: NOW });
      expect(moves(changes)).toEqual(['RUNNING>CANCELING', 'RUNNING>CANCELING']);
      expect(await claim(store)).toEqual([]);
      await fail(store, a);
      const last = await fail(store, b, NOW + 100);
      expect(last.changes.at(-1)).toEqual({
        kind: 'task',
        taskId: task.id,
        from: 'RUNNING',
        to: 'FAILED',
        operation: 'CANCEL',
      });
      expect(await statuses(store, task.id)).toEqual({ a: 'FAILED', b: 'FAILED', c: 'READY' });
    });

    it('rolls back what ran, downstreams first; what never ran is not called', async () => {
      const { store } = await fresh();
      const tpl = template(['a', 'b', 'c', 'd'], ['a>b', 'b>c', 'a>d'], { concurrency: 1 });
      const { task } = await addTask(store, tpl);
      const run = async (outcome: 'ok' | 'fail') => {
        const [next] = await claim(store);
        if (!next) throw new Error('nothing claimed');
        if (outcome === 'ok') await complete(store, next);
        else await fail(store, next);
        return next;
      };
      await run('ok'); // a
      const second = await run('ok'); // b or d
      await run('fail'); // then one more fails
      expect((await store.getTask(task.id))?.status).toBe(TaskStatus.FAILED);
      const changes = await store.rollbackTask(task.id, { actor: 'ops', now: NOW + 1 });
      expect(changes.some((c) => c.kind === 'task' && c.to === 'RUNNING')).toBe(true);
      expect((await store.getTask(task.id))?.operation).toBe(Operation.ROLLBACK);
      const order: string[] = [];
      for (let i = 0; i < 10; i++) {
        const claims = await claim(store, 10);
        if (claims.length === 0) break;
        for (const c of claims) {
          expect(c.subtask.operation).toBe(Operation.ROLLBACK);
          order.push(keyOf(c));
          await complete(store, c);
        }
      }
      expect(order.at(-1)).toBe('a');
      expect(order).toHaveLength(3);
      expect(order).toContain(keyOf(second));
      const record = await store.getTask(task.id);
      expect([record?.status, record?.operation]).toEqual(['SUCCESSFUL', 'ROLLBACK']);
      expect(Object.values(await statuses(store, task.id))).toEqual([
        'PENDING',
        'PENDING',
        'PENDING',
        'PENDING',
      ]);
    });

    it('leaves a task whose rollback failed FAILED (ROLLBACK): retry refused, rollback-skip allowed', async () => {
      const { store } = await fresh();
      const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      await complete(store, a);
      const [b] = await claim(store);
      if (!b) throw new Error('nothing claimed');
      await fail(store, b);
      await store.rollbackTask(task.id, { actor: 'ops', now: NOW });
      const [bBack] = await claim(store);
      if (!bBack) throw new Error('nothing claimed');
      expect(keyOf(bBack)).toBe('b');
      await fail(store, bBack);
      const record = await store.getTask(task.id);
      expect([record?.status, record?.operation]).toEqual(['FAILED', 'ROLLBACK']);
      expect((await refusal(store.retryTask(task.id, { actor: 'ops', now: NOW }))).code).toBe(
        ErrorCode.TASK_STATE_INVALID,
      );
      const skipped = await store.skipSubtask(task.id, b.subtask.id, { actor: 'ops', now: NOW });
      expect(skipped.slice(0, 2).map((c) => (c.kind === 'subtask' ? c.operation : c.to))).toEqual([
        'ROLLBACK_SKIP',
        'RUNNING',
      ]);
      const [aBack] = await claim(store);
      if (!aBack) throw new Error('nothing claimed');
      expect([keyOf(aBack), aBack.subtask.operation]).toEqual(['a', 'ROLLBACK']);
      expect(moves((await complete(store, aBack)).changes)).toEqual(['task RUNNING>SUCCESSFUL']);
    });

    it('refuses a rollback when a subtask that ran prohibits it (20004)', async () => {
      const { store } = await fresh();
      const tpl: Template = {
        ...template(['a', 'b']),
        nodes: [
          { key: 'a', className: 'x.Step', name: 'a', timeout: 60, prohibitRollback: true },
          { key: 'b', className: 'x.Step', name: 'b', timeout: 60 },
        ],
      };
      const { task } = await addTask(store, tpl);
      const claims = await claim(store);
      for (const c of claims) await fail(store, c);
      const refused = await refusal(store.rollbackTask(task.id, { actor: 'ops', now: NOW }));
      expect(refused.code).toBe(ErrorCode.TASK_PROHIBIT_ROLLBACK);
      expect((await store.getTask(task.id))?.operation).toBe(Operation.EXECUTE);
    });
  });

  describe(`${name}: leases`, () => {
    it('extends leases by heartbeat, and reports them lost once taken over', async (context) => {
      const handle = await fresh();
      const { store } = handle;
      if (!store.heartbeat || !store.reapExpired || !handle.expireLeases) {
        context.skip();
        return;
      }
      const { task } = await addTask(store, template(['a', 'b']));
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      expect(await store.heartbeat([fenceOf(a), fenceOf(b)])).toEqual({ lost: [], canceled: [] });
      expect(await store.reapExpired({ executor: 'e2', limit: 10, now: NOW })).toEqual([]);
      await handle.expireLeases();
      // Two reapers: each expired attempt is taken by one of them only.
      const [first, second] = await Promise.all([
        store.reapExpired({ executor: 'e2', limit: 10, now: NOW }),
        store.reapExpired({ executor: 'e3', limit: 10, now: NOW }),
      ]);
      const reaped = [...first, ...second];
      expect(reaped.map((c) => c.subtask.id).sort()).toEqual([a.subtask.id, b.subtask.id].sort());
      // The claim names who lost the lease.
      expect(reaped.map((c) => c.subtask.executor)).toEqual(['e1', 'e1']);
      expect((await store.heartbeat([fenceOf(a), fenceOf(b)])).lost).toHaveLength(2);
      // The stale owner is refused; the reaper's write goes through.
      expect(await complete(store, a)).toEqual(REFUSED);
      const taker = first.some((c) => c.subtask.id === a.subtask.id) ? 'e2' : 'e3';
      const failed = await fail(store, a, NOW, NOW, taker);
      expect(failed.accepted).toBe(true);
      const [retry] = await claim(store, 10, NOW, 'e4');
      expect(retry?.subtask).toMatchObject({ id: a.subtask.id, runTime: 2, executor: 'e4' });
      expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({ input: {} });
    });

    it('leaves no trace of a stale owner: its completion of a reclaimed attempt is refused', async (context) => {
      const handle = await fresh();
      const { store } = handle;
      if (!store.heartbeat || !store.reapExpired || !handle.expireLeases) {
        context.skip();
        return;
      }
      const { task } = await addTask(store, template(['a', 'b'], ['a>b']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      await handle.expireLeases();
      const [taken] = await store.reapExpired({ executor: 'e2', limit: 10, now: NOW });
      if (!taken) throw new Error('nothing reaped');
      await fail(store, taken, NOW, NOW, 'e2');
      const [again] = await claim(store, 1, NOW, 'e2');
      expect(again?.subtask.runTime).toBe(2);
      const before = await store.listSubtasks(task.id);
      const stale = await store.completeAttempt(fenceOf(a), {
        input: { stringMap: { stale: 'yes' } },
        output: { stringMap: { stale: 'yes' } },
        now: NOW + 50,
      });
      expect(stale).toEqual(REFUSED);
      expect((await store.heartbeat([fenceOf(a)])).lost).toEqual([fenceOf(a)]);
      expect(await store.listSubtasks(task.id)).toEqual(before);
      expect(await store.getSubtaskContexts(task.id, a.subtask.id)).toEqual({ input: {} });
    });

    it('expires a lease by the database clock when no heartbeat comes', async (context) => {
      const handle = await fresh({ leaseSeconds: 1 });
      const { store } = handle;
      if (!store.heartbeat || !store.reapExpired) {
        context.skip();
        return;
      }
      await addTask(store, template(['a', 'b']));
      const claimedAt = Date.now();
      const [a, b] = await claim(store);
      if (!a || !b) throw new Error('expected two claims');
      // a is kept alive (a heartbeat every 300 ms, well within its lease); b is not.
      while (Date.now() - claimedAt < 1300) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await store.heartbeat([fenceOf(a)])).lost).toEqual([]);
      }
      const reaped = await store.reapExpired({ executor: 'e2', limit: 10, now: NOW });
      expect(reaped.map((c) => c.subtask.id)).toEqual([b.subtask.id]);
    });

    it('reports attempts another engine canceled', async (context) => {
      const handle = await fresh();
      const { store } = handle;
      if (!store.heartbeat) {
        context.skip();
        return;
      }
      const { task } = await addTask(store, template(['a']));
      const [a] = await claim(store);
      if (!a) throw new Error('nothing claimed');
      await store.cancelSubtask(task.id, a.subtask.id, { actor: 'ops', now: NOW });
      expect(await store.heartbeat([fenceOf(a)])).toEqual({ lost: [], canceled: [fenceOf(a)] });
    });
  });

  describe(`${name}: several connections`, () => {
    it('hands each subtask to one claimer only when claimers race', async (context) => {
      const handle = await fresh();
      if (!handle.another) {
        context.skip();
        return;
      }
      const others = [await handle.another(), await handle.another()];
      const keys = Array.from({ length: 60 }, (_, i) => `n${i}`);
      const stores = [handle.store, ...others];
      for (let i = 0; i < 3; i++)
        await addTask(handle.store, template(keys, [], { concurrency: 60 }));
      const claimed: number[] = [];
      await Promise.all(
        stores.map(async (store, s) => {
          for (let round = 0; round < 40; round++) {
            const claims = await claim(store, 3, NOW, `e${s}`);
            claimed.push(...claims.map((c) => c.subtask.id));
            await Promise.all(claims.map((c) => complete(store, c, NOW, `e${s}`)));
          }
        }),
      );
      expect(new Set(claimed).size).toBe(claimed.length);
      expect(claimed).toHaveLength(180);
    });

    it('hands each subtask to one claimer when a save claims while others claim', async (context) => {
      const handle = await fresh();
      const { store } = handle;
      if (!handle.another || !store.insertTaskAndClaim) {
        context.skip();
        return;
      }
      const other = await handle.another();
      const keys = Array.from({ length: 40 }, (_, i) => `n${i}`);
      await addTask(store, template(keys, [], { concurrency: 40 }));
      const expanded = await expandFor(store, template(keys, [], { concurrency: 40 }));
      const claimed: number[] = [];
      const claiming = (async () => {
        for (let round = 0; round < 30; round++) {
          claimed.push(...(await claim(other, 3, NOW, 'e2')).map((c) => c.subtask.id));
        }
      })();
      const saved = await store.insertTaskAndClaim(
        expanded,
        { actor: 'admin', now: NOW },
        {
          executor: 'e1',
          limit: 30,
          now: NOW,
        },
      );
      await claiming;
      claimed.push(...saved.map((c) => c.subtask.id));
      claimed.push(...(await claim(store, 100)).map((c) => c.subtask.id));
      expect(new Set(claimed).size).toBe(claimed.length);
      expect(claimed).toHaveLength(80);
    });
  });

  describe(`${name}: restart`, () => {
    it('keeps every acknowledged transition across a restart, and goes on from there', async (context) => {
      const handle = await fresh();
      if (!handle.reopen) {
        context.skip();
        return;
      }
      const { task } = await addTask(handle.store, template(['a', 'b', 'c'], ['a>b']));
      const [a, c] = await claim(handle.store);
      if (!a || !c) throw new Error('expected two claims');
      await handle.store.completeAttempt(fenceOf(a), {
        input: {},
        output: { stringMap: { k: 'v' } },
        now: NOW,
      });
      const before = await handle.store.listSubtasks(task.id);
      const store = await handle.reopen();
      expect(await store.listSubtasks(task.id)).toEqual(before);
      expect(await store.listAudit(task.id)).toHaveLength(1);
      const [b] = await claim(store);
      expect(b?.subtask.nodeKey).toBe('b');
      expect(b?.input ?? b?.upstreamOutputs[0]).toEqual({ stringMap: { k: 'v' } });
      const next = await store.reserveIds(1);
      expect(next.taskId).toBeGreaterThan(task.id);
    });
  });
}
