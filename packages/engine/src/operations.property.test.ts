/**
 * Properties of the operations on live tasks over random valid templates (test-support
 * arbitraries), random failures and deterministic scripted handlers, on a stepped manual clock:
 * what a rollback calls and in which order, what a refused operation leaves behind, that a
 * failure healed by retries ends where a run without it ends, and that skip passes input through.
 * Every status change must go through the transition tables: `transitions.js` is wrapped to log
 * each move the store asks for, and each observed change must be a chain of logged moves.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode } from './errors.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { SubtaskRecord } from './task.js';
import type { TaskArguments } from './task-arguments.js';
import type { Template } from './template.js';
import type * as Transitions from './transitions.js';
import { validScenarioArb } from './test-support/arbitraries.js';
import {
  OPERATIONS,
  STEP,
  callOperation,
  expectedVerdict,
  flush,
  labelOf,
  rollbackFailedFrom,
  setup,
  type Behaviour,
  type Harness,
  type OperationName,
} from './test-support/operations-harness.js';

/** Every move asked of the transition tables, in order (reset per run). */
const moveLog = vi.hoisted(
  () => [] as { kind: 'subtask' | 'task'; id: number; from: string; to: string }[],
);

vi.mock('./transitions.js', async (importOriginal) => {
  const actual = await importOriginal<typeof Transitions>();
  return {
    ...actual,
    assertSubtaskMove: (id: number, from: SubtaskStatus, to: SubtaskStatus) => {
      moveLog.push({ kind: 'subtask', id, from, to });
      actual.assertSubtaskMove(id, from, to);
    },
    assertTaskMove: (id: number, from: TaskStatus, to: TaskStatus) => {
      moveLog.push({ kind: 'task', id, from, to });
      actual.assertTaskMove(id, from, to);
    },
  };
});

interface Case {
  readonly template: Template;
  readonly args: TaskArguments | undefined;
  readonly keys: readonly string[];
}

/** The arguments without `prohibit_rollback`. */
function allowRollback(args: TaskArguments | undefined): TaskArguments | undefined {
  if (args?.stringMap === undefined) return args;
  const stringMap = Object.fromEntries(
    Object.entries(args.stringMap).filter(([key]) => key !== 'prohibit_rollback'),
  );
  return { ...args, stringMap };
}

/**
 * Valid scenarios, every node run by the scripted handler, with integer timeouts. Three times in
 * four nothing prohibits rollback (the arbitraries prohibit it in most templates).
 */
const caseArb: fc.Arbitrary<Case> = fc
  .record({
    scenario: validScenarioArb({ maxNodes: 6, classNames: [STEP] }),
    timeouts: fc.array(fc.integer({ min: 30, max: 300 }), { minLength: 1, maxLength: 3 }),
    prohibit: fc.constantFrom(false, false, false, true),
  })
  .map(({ scenario, timeouts, prohibit }) => {
    const { prohibitRollback, ...head } = scenario.template;
    return {
      template: {
        ...head,
        ...(prohibit && prohibitRollback !== undefined ? { prohibitRollback } : {}),
        nodes: scenario.template.nodes.map((node, i) => ({
          ...node,
          timeout: timeouts[i % timeouts.length] as number,
          ...(prohibit ? {} : { prohibitRollback: false }),
        })),
      },
      args: prohibit ? scenario.args : allowRollback(scenario.args),
      keys: scenario.template.nodes.map((node) => node.key),
    };
  });

/** A case and a chosen subset of its nodes. */
const withNodes = <T>(extra: (c: Case) => fc.Arbitrary<T>) =>
  caseArb.chain((c) => fc.tuple(fc.constant(c), extra(c)));

const PROPERTY = { numRuns: 250, endOnFailure: true } as const;

/** Plans by node key before submission: labels of split nodes are `key[i]`. */
function planBefore(
  h: Harness,
  c: Case,
  kind: 'execute' | 'rollback',
  keys: readonly string[],
  steps: Behaviour[],
): void {
  const lists = c.args?.listMap ?? {};
  for (const node of c.template.nodes) {
    if (!keys.includes(node.key)) continue;
    if (node.splitKey === undefined) h.script.plan(kind, node.key, ...steps);
    else {
      const list = Object.hasOwn(lists, node.splitKey) ? (lists[node.splitKey] ?? []) : [];
      list.forEach((_, i) => h.script.plan(kind, `${node.key}[${i}]`, ...steps));
    }
  }
}

/** Submits and runs the case until its task is no longer RUNNING. */
async function start(h: Harness, c: Case): Promise<number> {
  moveLog.length = 0;
  const { id } = await h.engine.submit(c.template, c.args, { creator: 'admin' });
  expect(await h.untilSettled(id)).toBe(true);
  return id;
}

/**
 * Checks that every status change since `before` went through the transition tables: per
 * subtask (and for the task), the moves logged since `logFrom` chain from the old status to the
 * new one, and nothing moved without a change showing.
 */
async function checkMoves(
  h: Harness,
  id: number,
  before: { task: string; subtasks: SubtaskRecord[] },
  logFrom: number,
): Promise<void> {
  const log = moveLog.slice(logFrom);
  const chain = (kind: 'subtask' | 'task', entityId: number, from: string, to: string) => {
    const moves = log.filter((m) => m.kind === kind && m.id === entityId);
    let at = from;
    for (const move of moves) {
      expect(move.from, `${kind} ${entityId}`).toBe(at);
      at = move.to;
    }
    expect(at, `${kind} ${entityId}`).toBe(to);
  };
  const task = await h.store.getTask(id);
  chain('task', id, before.task, task?.status ?? '');
  const after = await h.store.listSubtasks(id);
  before.subtasks.forEach((subtask, i) =>
    chain('subtask', subtask.id, subtask.status, after[i]?.status ?? ''),
  );
  expect(h.logger.lines.filter((line) => line.level === 'error')).toEqual([]);
}

async function statuses(h: Harness, id: number) {
  return {
    task: (await h.store.getTask(id))?.status ?? '',
    subtasks: await h.store.listSubtasks(id),
  };
}

describe('rollback', () => {
  it('calls rollback exactly on the subtasks that ran, downstreams first; ends all PENDING', async () => {
    await fc.assert(
      fc.asyncProperty(
        withNodes((c) =>
          fc.record({
            failing: fc.subarray([...c.keys], { minLength: 1 }),
            rollbackFails: fc.subarray([...c.keys]),
            resolutions: fc.array(fc.constantFrom('again', 'skip'), { minLength: 1, maxLength: 4 }),
            concurrency: fc.integer({ min: 1, max: 4 }),
          }),
        ),
        async ([c, { failing, rollbackFails, resolutions, concurrency }]) => {
          const h = setup({ concurrency });
          planBefore(h, c, 'execute', failing, ['fail']);
          planBefore(h, c, 'rollback', rollbackFails, ['fail', 'ok']);
          const id = await start(h, c);
          const task = await h.engine.getTask(id);
          expect(task.status).toBe(TaskStatus.FAILED);
          const verdict = expectedVerdict(task, 'rollbackTask', undefined, {
            rollbackFailed: new Set(),
            templateProhibits: c.template.prohibitRollback === true,
          });
          if (verdict !== 'ok') {
            expect(verdict).toBe(ErrorCode.TASK_PROHIBIT_ROLLBACK);
            await h.expectRefused(id, () => h.engine.rollbackTask(id, 'ops'), verdict);
            return;
          }
          const before = await h.store.listSubtasks(id);
          const ran = new Set(before.filter((s) => s.startTime !== undefined).map((s) => s.id));
          const executions = h.script.calls.length;
          const eventFrom = h.events.length;
          await h.engine.rollbackTask(id, 'ops');
          expect(await h.untilSettled(id)).toBe(true);
          for (let round = 0; (await h.taskState(id)) === 'FAILED/ROLLBACK'; round++) {
            expect(round).toBeLessThan(before.length + 2);
            await h.expectRefused(
              id,
              () => h.engine.retryTask(id, 'ops'),
              ErrorCode.TASK_STATE_INVALID,
            );
            if (resolutions[round % resolutions.length] === 'again') {
              await h.engine.rollbackTask(id, 'ops');
            } else {
              for (const subtaskId of rollbackFailedFrom(h.events, id)) {
                await h.engine.skipSubtask(id, subtaskId, 'ops');
              }
            }
            expect(await h.untilSettled(id)).toBe(true);
          }
          expect(await h.taskState(id)).toBe('SUCCESSFUL/ROLLBACK');
          const after = await h.store.listSubtasks(id);
          expect(after.every((s) => s.status === SubtaskStatus.PENDING)).toBe(true);

          const rollbacks = h.script.callsOf('rollback');
          expect(h.script.calls.slice(executions).every((call) => call.kind === 'rollback')).toBe(
            true,
          );
          // Exactly the subtasks that ran; more than once only after a failed rollback.
          expect(new Set(rollbacks.map((call) => call.subtaskId))).toEqual(ran);
          const failedOnce = new Set(
            before.filter((s) => rollbackFails.includes(s.nodeKey)).map((s) => s.id),
          );
          for (const subtaskId of ran) {
            const count = rollbacks.filter((call) => call.subtaskId === subtaskId).length;
            expect(count).toBeLessThanOrEqual(failedOnce.has(subtaskId) ? 2 : 1);
          }
          // Downstreams first: a rollback starts only once every downstream that ran is back
          // to PENDING (rolled back, or its failed rollback skipped).
          const events = h.events.slice(eventFrom);
          const backAt = new Map<number, number>();
          events.forEach((event, i) => {
            if (
              event.name === 'subtask.rollbackSucceeded' ||
              (event.name === 'subtask.skipped' && event.data.operation === Operation.ROLLBACK_SKIP)
            ) {
              backAt.set(event.data.subtaskId, i);
            }
          });
          const byId = new Map(before.map((s) => [s.id, s]));
          events.forEach((event, i) => {
            if (event.name !== 'subtask.rollbackStarted') return;
            for (const down of byId.get(event.data.subtaskId)?.downstreams ?? []) {
              if (!ran.has(down)) continue;
              expect(backAt.get(down)).toBeLessThan(i);
            }
          });
          // runTime counts executions: every execute and rollback attempt, one each.
          for (const subtask of after) {
            const calls = h.script.calls.filter(
              (call) => call.subtaskId === subtask.id && call.kind !== 'cancel',
            ).length;
            expect(subtask.runTime, labelOf(subtask)).toBe(ran.has(subtask.id) ? calls : 1);
          }
          // The rollback of a subtask that succeeded sees its saved output.
          for (const call of rollbacks) {
            const was = byId.get(call.subtaskId);
            if (was?.status !== SubtaskStatus.SUCCESSFUL) continue;
            expect(call.context.get(`out:${call.label}`)).toBe('done');
          }
        },
      ),
      PROPERTY,
    );
  });
});

type Step =
  | {
      readonly kind: 'operation';
      readonly name: OperationName;
      readonly target: number;
      /** Aim at a subtask the operation is legal on, when there is one. */
      readonly aim: boolean;
    }
  | { readonly kind: 'advance'; readonly ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('operation' as const),
      name: fc.constantFrom(...OPERATIONS),
      target: fc.nat(),
      aim: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.constantFrom(0, 1000, 30_000, 600_000),
    }),
  },
);

const behaviourArb: fc.Arbitrary<Behaviour[]> = fc.constantFrom<Behaviour[]>(
  ['ok'],
  ['ok'],
  ['fail', 'ok'],
  ['fail'],
  ['hang', 'ok'],
);

describe('operations in random states', () => {
  it('are refused in the wrong state, changing nothing, and accepted in the right one', async () => {
    await fc.assert(
      fc.asyncProperty(
        withNodes((c) =>
          fc.record({
            execute: fc.array(behaviourArb, { minLength: c.keys.length, maxLength: c.keys.length }),
            rollback: fc.array(behaviourArb, {
              minLength: c.keys.length,
              maxLength: c.keys.length,
            }),
            steps: fc.array(stepArb, { minLength: 1, maxLength: 20 }),
            concurrency: fc.integer({ min: 1, max: 3 }),
          }),
        ),
        async ([c, { execute, rollback, steps, concurrency }]) => {
          const h = setup({ concurrency });
          c.keys.forEach((key, i) => {
            planBefore(h, c, 'execute', [key], execute[i] as Behaviour[]);
            planBefore(h, c, 'rollback', [key], rollback[i] as Behaviour[]);
          });
          moveLog.length = 0;
          const { id } = await h.engine.submit(c.template, c.args, { creator: 'admin' });
          await h.clock.advanceBy(0);
          for (const step of steps) {
            await flush();
            const before = await statuses(h, id);
            const logFrom = moveLog.length;
            if (step.kind === 'advance') {
              await h.clock.advanceBy(step.ms);
              await checkMoves(h, id, before, logFrom);
              continue;
            }
            const task = await h.engine.getTask(id);
            const context = {
              rollbackFailed: rollbackFailedFrom(h.events, id),
              templateProhibits: c.template.prohibitRollback === true,
            };
            const legal = task.subtasks.filter(
              (s) => expectedVerdict(task, step.name, s, context) === 'ok',
            );
            const among = step.aim && legal.length > 0 ? legal : task.subtasks;
            const subtask = among[step.target % among.length];
            const verdict = expectedVerdict(task, step.name, subtask, context);
            const call = () => callOperation(h.engine, step.name, id, subtask?.id ?? -1, 'ops');
            if (verdict !== 'ok') {
              await h.expectRefused(id, call, verdict);
              expect(moveLog.length).toBe(logFrom);
              continue;
            }
            const audit = (await h.engine.getAuditTrail(id)).length;
            await call();
            expect((await h.engine.getAuditTrail(id)).length).toBe(audit + 1);
            await h.clock.advanceBy(0);
            await checkMoves(h, id, before, logFrom);
          }
        },
      ),
      PROPERTY,
    );
  });
});

describe('retry', () => {
  it('a run healed by retries ends with the statuses and contexts of a run without failures', async () => {
    await fc.assert(
      fc.asyncProperty(
        withNodes((c) =>
          fc.record({
            failOnce: fc.subarray([...c.keys], { minLength: 1 }),
            how: fc.constantFrom('task', 'subtasks'),
            concurrency: fc.integer({ min: 1, max: 4 }),
          }),
        ),
        async ([c, { failOnce, how, concurrency }]) => {
          const clean = setup({ concurrency });
          const cleanId = await start(clean, c);
          expect(await clean.taskState(cleanId)).toBe('SUCCESSFUL/EXECUTE');

          const h = setup({ concurrency });
          planBefore(h, c, 'execute', failOnce, ['fail', 'ok']);
          const id = await start(h, c);
          const total = (await h.store.listSubtasks(id)).length;
          for (let round = 0; (await h.taskState(id)).startsWith('FAILED'); round++) {
            expect(round).toBeLessThan(total + 1);
            if (how === 'task') await h.engine.retryTask(id, 'ops');
            else {
              for (const s of await h.store.listSubtasks(id)) {
                if (s.status === SubtaskStatus.FAILED) await h.engine.retrySubtask(id, s.id, 'ops');
              }
            }
            expect(await h.untilSettled(id)).toBe(true);
          }
          expect((await h.engine.getTask(id)).status).toBe(TaskStatus.SUCCESSFUL);
          const view = async (harness: Harness, taskId: number) =>
            Promise.all(
              (await harness.store.listSubtasks(taskId)).map(async (s) => ({
                label: labelOf(s),
                status: s.status,
                contexts: await harness.store.getSubtaskContexts(taskId, s.id),
              })),
            );
          expect(await view(h, id)).toEqual(await view(clean, cleanId));
        },
      ),
      PROPERTY,
    );
  });
});

describe('skip', () => {
  it('passes the input through as the output, and downstreams see it', async () => {
    await fc.assert(
      fc.asyncProperty(
        withNodes((c) => fc.subarray([...c.keys], { minLength: 1 })),
        async ([c, failing]) => {
          const h = setup();
          planBefore(h, c, 'execute', failing, ['fail']);
          const id = await start(h, c);
          const skipped = new Set<number>();
          const total = (await h.store.listSubtasks(id)).length;
          for (let round = 0; (await h.taskState(id)).startsWith('FAILED'); round++) {
            expect(round).toBeLessThan(total + 1);
            for (const s of await h.store.listSubtasks(id)) {
              if (s.status !== SubtaskStatus.FAILED) continue;
              await h.engine.skipSubtask(id, s.id, 'ops');
              skipped.add(s.id);
            }
            expect(await h.untilSettled(id)).toBe(true);
          }
          expect(await h.taskState(id)).toBe('SUCCESSFUL/SKIP');
          const subtasks = await h.store.listSubtasks(id);
          const contexts = new Map(
            await Promise.all(
              subtasks.map(
                async (s) => [s.id, await h.store.getSubtaskContexts(id, s.id)] as const,
              ),
            ),
          );
          for (const s of subtasks) {
            const mine = contexts.get(s.id);
            if (skipped.has(s.id)) {
              expect([s.status, s.operation]).toEqual([SubtaskStatus.SUCCESSFUL, Operation.SKIP]);
              expect(mine?.output).toEqual(mine?.input);
              expect(mine?.output?.stringMap?.[`out:${labelOf(s)}`]).toBeUndefined();
            } else {
              expect(mine?.output?.stringMap?.[`out:${labelOf(s)}`]).toBe('done');
            }
            // What an upstream passed on reaches its downstreams.
            for (const up of s.upstreams) {
              for (const [key, value] of Object.entries(
                contexts.get(up)?.output?.stringMap ?? {},
              )) {
                expect(mine?.input?.stringMap?.[key]).toBe(value);
              }
            }
          }
        },
      ),
      PROPERTY,
    );
  });
});
