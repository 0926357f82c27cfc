import { deepStrictEqual } from 'node:assert/strict';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DagCycleError, ErrorCode, TaskArgumentsError, TemplateValidationError } from './errors.js';
import { countSubtasks, expandTemplate, type ExpandedTask } from './expand-template.js';
import type { IdAllocator } from './id-allocator.js';
import { Operation, SubtaskStatus, TaskStatus } from './status.js';
import type { SubtaskRecord, TaskRecord } from './task.js';
import { toSubmittedTaskJson, toTaskJson } from './task-json.js';
import { validateTemplate, type ValidateTemplateOptions } from './validate-template.js';
import {
  anyScenarioArb,
  validScenarioArb,
  type TemplateScenario,
} from './test-support/arbitraries.js';
import {
  edgeLabel,
  expectedEdgeLabels,
  expectedOutcome,
  expectedSubtaskLabels,
  isTemplateCycle,
  subtaskLabel,
} from './test-support/template-oracle.js';

const NOW = Date.UTC(2021, 8, 3, 6, 27, 59, 687);

function validateOptions(scenario: TemplateScenario): ValidateTemplateOptions {
  const registered = scenario.registeredClassNames;
  return registered ? { hasHandler: (className) => registered.includes(className) } : {};
}

/** An allocator that hands out the given ids and records what it was asked. */
function recordingAllocator(taskId: number, firstSubtaskId: number) {
  const calls = { taskIds: 0, reservations: [] as number[] };
  const ids: IdAllocator = {
    nextTaskId: () => (calls.taskIds++, taskId),
    reserveSubtaskIds: (count) => (calls.reservations.push(count), firstSubtaskId),
  };
  return { ids, calls };
}

function expand(scenario: TemplateScenario, ids: IdAllocator): ExpandedTask {
  const validated = validateTemplate(scenario.template, validateOptions(scenario));
  return expandTemplate(validated, scenario.args, {
    ids,
    creator: 'prop',
    executor: 'e1',
    now: NOW,
  });
}

/** Expands a scenario the oracle says expands; returns the copies per node too. */
function expandValid(scenario: TemplateScenario, taskId = 7, firstSubtaskId = 100) {
  const outcome = expectedOutcome(scenario);
  if (outcome.kind !== 'expands') throw new Error(`generator produced ${outcome.kind}`);
  const { ids, calls } = recordingAllocator(taskId, firstSubtaskId);
  return { ...expand(scenario, ids), sizes: outcome.sizes, calls };
}

/** Maps a subtask id to its oracle label; an id outside the task is an error. */
function labeller(subtasks: readonly SubtaskRecord[]): (id: number) => string {
  const byId = new Map(subtasks.map((s) => [s.id, subtaskLabel(s.nodeKey, s.parallelIdx)]));
  return (id) => {
    const found = byId.get(id);
    if (found === undefined) throw new Error(`id ${id} is not a subtask of the task`);
    return found;
  };
}

const sorted = (values: Iterable<string>) => [...values].sort();

describe('validateTemplate + expandTemplate (properties)', () => {
  it('succeed exactly when the oracle says so, and fail with the right error otherwise', () => {
    fc.assert(
      fc.property(anyScenarioArb(), (scenario) => {
        const expected = expectedOutcome(scenario);
        let caught: unknown;
        let expanded: ExpandedTask | undefined;
        try {
          expanded = expand(scenario, recordingAllocator(1, 1).ids);
        } catch (error) {
          caught = error;
        }
        switch (expected.kind) {
          case 'expands':
            expect(caught).toBeUndefined();
            expect(expanded).toBeDefined();
            break;
          case 'invalid-template':
            expect(caught).toBeInstanceOf(TemplateValidationError);
            expect((caught as TemplateValidationError).code).toBe(ErrorCode.TEMPLATE_INVALID);
            expect((caught as TemplateValidationError).issues.length).toBeGreaterThan(0);
            break;
          case 'cycle': {
            expect(caught).toBeInstanceOf(DagCycleError);
            const error = caught as DagCycleError;
            expect(error.code).toBe(ErrorCode.TASK_DAG_CYCLE);
            // The reported path must be a real cycle of the template, not just any path.
            expect(isTemplateCycle(scenario.template, error.cycle)).toBe(true);
            break;
          }
          case 'invalid-arguments': {
            expect(caught).toBeInstanceOf(TaskArgumentsError);
            expect((caught as TaskArgumentsError).code).toBe(ErrorCode.TASK_ARGUMENTS_INVALID);
            // countSubtasks refuses the same arguments in the same way.
            const validated = validateTemplate(scenario.template, validateOptions(scenario));
            expect(() => countSubtasks(validated, scenario.args)).toThrow(TaskArgumentsError);
            break;
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('create one subtask per plain node and one per list element of a split node', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const { subtasks, sizes } = expandValid(scenario);
        let total = 0;
        for (const size of sizes.values()) total += size;
        expect(subtasks).toHaveLength(total);
        const validated = validateTemplate(scenario.template, validateOptions(scenario));
        expect(countSubtasks(validated, scenario.args)).toBe(total);
        expect(sorted(subtasks.map((s) => subtaskLabel(s.nodeKey, s.parallelIdx)))).toEqual(
          sorted(expectedSubtaskLabels(scenario.template, sizes)),
        );
        // Each copy carries its node's fields, with the documented defaults.
        const byKey = new Map(scenario.template.nodes.map((node) => [node.key, node]));
        for (const s of subtasks) {
          const node = byKey.get(s.nodeKey);
          expect(node).toBeDefined();
          if (!node) continue;
          expect(s.className).toBe(node.className);
          expect(s.name).toBe(node.name);
          expect(s.description).toBe(node.description ?? node.name);
          expect(s.timeout).toBe(node.timeout);
          expect(s.prohibitRollback).toBe(node.prohibitRollback ?? false);
          expect(s.nodeType).toBe('JAVA_TASK');
          expect(s.operation).toBe('EXECUTE');
          expect(s.runTime).toBe(1);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('keep upstreams and downstreams mirrored, without duplicates or self edges', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const { subtasks } = expandValid(scenario);
        const byId = new Map(subtasks.map((s) => [s.id, s]));
        for (const s of subtasks) {
          expect(new Set(s.upstreams).size).toBe(s.upstreams.length);
          expect(new Set(s.downstreams).size).toBe(s.downstreams.length);
          expect(s.upstreams).not.toContain(s.id);
          expect(s.downstreams).not.toContain(s.id);
          for (const up of s.upstreams) expect(byId.get(up)?.downstreams).toContain(s.id);
          for (const down of s.downstreams) expect(byId.get(down)?.upstreams).toContain(s.id);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('wire exactly the edges SPEC §3 prescribes', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const { subtasks, sizes } = expandValid(scenario);
        const label = labeller(subtasks);
        const actual: string[] = [];
        for (const s of subtasks) {
          for (const down of s.downstreams) actual.push(edgeLabel(label(s.id), label(down)));
        }
        expect(sorted(actual)).toEqual(sorted(expectedEdgeLabels(scenario.template, sizes)));
      }),
      { numRuns: 300 },
    );
  });

  it('number branches, series and ids as documented', () => {
    fc.assert(
      fc.property(
        validScenarioArb(),
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (scenario, taskId, first) => {
          const { task, subtasks, sizes, calls } = expandValid(scenario, taskId, first);
          const splitKeys = new Set(
            scenario.template.nodes.filter((n) => n.splitKey !== undefined).map((n) => n.key),
          );
          expect(calls.taskIds).toBe(1);
          expect(calls.reservations).toEqual([subtasks.length]);
          expect(task.id).toBe(taskId);
          subtasks.forEach((s, index) => {
            expect(s.seriesId).toBe(index);
            expect(s.id).toBe(first + index);
            expect(s.taskId).toBe(taskId);
            if (splitKeys.has(s.nodeKey)) {
              expect(s.parallelIdx).toBeGreaterThanOrEqual(0);
              expect(s.parallelIdx).toBeLessThan(sizes.get(s.nodeKey) ?? 0);
            } else {
              expect(s.parallelIdx).toBe(-1);
            }
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('make the task RUNNING, the roots READY and everything else PENDING', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const { task, subtasks, sizes } = expandValid(scenario);
        expect(task.status).toBe('RUNNING');
        expect(task.operation).toBe('EXECUTE');
        // Roots come from the oracle's edges, not from the subtasks' own upstream lists.
        const targets = new Set<string>();
        for (const edge of expectedEdgeLabels(scenario.template, sizes)) {
          targets.add(edge.slice(edge.indexOf(' -> ') + 4));
        }
        for (const s of subtasks) {
          const root = !targets.has(subtaskLabel(s.nodeKey, s.parallelIdx));
          expect(s.status).toBe(root ? 'READY' : 'PENDING');
        }
      }),
      { numRuns: 200 },
    );
  });

  it('render JSON losslessly and expand a JSON copy of the template identically', () => {
    fc.assert(
      fc.property(
        validScenarioArb(),
        fc.integer({ min: -12 * 60, max: 14 * 60 }),
        (scenario, utcOffsetMinutes) => {
          const { task, subtasks } = expandValid(scenario);
          // node:assert, not toStrictEqual: vitest compares `.constructor`, and a list key
          // named `constructor` is an own property here.
          const json = toTaskJson(task, subtasks, { utcOffsetMinutes });
          deepStrictEqual(JSON.parse(JSON.stringify(json)), json);
          deepStrictEqual(json.context.listMap, JSON.parse(JSON.stringify(scenario.args?.listMap)));

          const copy = JSON.parse(JSON.stringify(scenario.template)) as typeof scenario.template;
          const again = expandValid({ ...scenario, template: copy });
          deepStrictEqual(again.task, task);
          deepStrictEqual(again.subtasks, subtasks);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('render the submission from what a store never changes: as the fresh expansion', () => {
    fc.assert(
      fc.property(
        validScenarioArb(),
        fc.integer({ min: -12 * 60, max: 14 * 60 }),
        fc.nat(),
        (scenario, utcOffsetMinutes, seed) => {
          const expanded = expandValid(scenario);
          const fresh = toTaskJson(expanded.task, expanded.subtasks, { utcOffsetMinutes });
          // What a store (the in-memory one keeps these records) writes as the task runs.
          const { task, subtasks } = expanded as { task: TaskRecord; subtasks: SubtaskRecord[] };
          task.status = TaskStatus.FAILED;
          task.operation = Operation.ROLLBACK;
          task.endTime = NOW + 9;
          subtasks.forEach((subtask, i) => {
            if ((seed + i) % 3 === 0) return;
            subtask.status = (seed + i) % 3 === 1 ? SubtaskStatus.RUNNING : SubtaskStatus.FAILED;
            subtask.operation = Operation.ROLLBACK;
            subtask.runTime = 2 + (i % 4);
            subtask.startTime = NOW + i;
            subtask.endTime = NOW + i + 1;
            subtask.executor = 'engine-x';
            subtask.error = { name: 'Error', message: 'boom' };
          });
          deepStrictEqual(toSubmittedTaskJson(expanded, { utcOffsetMinutes }), fresh);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('produce an acyclic task whose series order is a topological order', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const { subtasks } = expandValid(scenario);
        const seriesOf = new Map(subtasks.map((s) => [s.id, s.seriesId]));
        for (const s of subtasks) {
          for (const up of s.upstreams) expect(seriesOf.get(up)).toBeLessThan(s.seriesId);
        }
        // Kahn's algorithm over the subtasks' own lists consumes every subtask.
        const waiting = new Map(subtasks.map((s) => [s.id, s.upstreams.length]));
        const byId = new Map(subtasks.map((s) => [s.id, s]));
        const queue = subtasks.filter((s) => s.upstreams.length === 0).map((s) => s.id);
        let consumed = 0;
        while (queue.length > 0) {
          const id = queue.pop() as number;
          consumed++;
          for (const down of byId.get(id)?.downstreams ?? []) {
            const left = (waiting.get(down) ?? 0) - 1;
            waiting.set(down, left);
            if (left === 0) queue.push(down);
          }
        }
        expect(consumed).toBe(subtasks.length);
      }),
      { numRuns: 200 },
    );
  });

  it('lay out in columns what the records say, building the records only when read', () => {
    fc.assert(
      fc.property(validScenarioArb(), (scenario) => {
        const validated = validateTemplate(scenario.template, validateOptions(scenario));
        const expanded = expandTemplate(validated, scenario.args, {
          ids: recordingAllocator(7, 100).ids,
          creator: 'prop',
          executor: 'e1',
          now: NOW,
        });
        const layout = expanded.layout;
        if (!layout) throw new Error('expandTemplate made no layout');
        // Read one by one before the records exist: each is the record built later.
        const early = Array.from({ length: layout.count }, (_, i) => layout.record(i));
        expect(layout.built).toBe(false);
        const { subtasks } = expanded;
        expect(layout.built).toBe(true);
        expect(expanded.subtasks).toBe(subtasks);
        expect(early).toEqual(subtasks);
        expect(layout.count).toBe(subtasks.length);
        expect(layout.firstId).toBe(100);
        for (const s of subtasks) {
          const i = s.seriesId;
          expect(layout.record(i)).toBe(s);
          expect(layout.nodeAt(i).node.key).toBe(s.nodeKey);
          expect(layout.parallelIdx(i)).toBe(s.parallelIdx);
          expect(layout.status(i)).toBe(s.status);
          expect(
            Array.from({ length: layout.upCount(i) }, (_, j) => layout.upstreamId(i, j)),
          ).toEqual(s.upstreams);
          expect(
            Array.from({ length: layout.downCount(i) }, (_, j) => layout.downstreamId(i, j)),
          ).toEqual(s.downstreams);
          expect(Object.isFrozen(s.upstreams) && Object.isFrozen(s.downstreams)).toBe(true);
        }
        // The nodes cover the series in order, each node's copies consecutive.
        let next = 0;
        for (const { first, size } of layout.nodes) {
          expect(first).toBe(next);
          next += size;
        }
        expect(next).toBe(layout.count);
      }),
      { numRuns: 200 },
    );
  });
});
