import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { expandTemplate } from './expand-template.js';
import { createCounterIdAllocator } from './id-allocator.js';
import type { TaskJson } from './task.js';
import { toTaskJson } from './task-json.js';
import type { TaskArguments } from './task-arguments.js';
import type { Template } from './template.js';
import { formatTimestamp } from './time.js';
import { validateTemplate } from './validate-template.js';

/**
 * The engine's output for the three agent operations must have the shape of OCP's answers in
 * the seeds (SPEC §2): the same keys at every level, the same JSON types, the same values where
 * they are not ids or times, and the same DAG up to renaming of subtask ids.
 */

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';
const WAIT_NODE = 'com.alipay.ocp.service.task.business.WaitNode';
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/;
const CHINA_OFFSET_MINUTES = 480;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** What the DAG comparison reads of a subtask, ours or the seed's. */
interface Linked {
  readonly id: number;
  readonly className: string;
  readonly parallelIdx: number;
  readonly upstreams: readonly number[];
  readonly downstreams: readonly number[];
}
interface SeedSubtask extends Linked {
  readonly seriesId: number;
  readonly [key: string]: Json | readonly number[];
}

function loadSeed(file: string): Record<string, Json> {
  const text = readFileSync(new URL(`../test-fixtures/${file}`, import.meta.url), 'utf8');
  return JSON.parse(text) as Record<string, Json>;
}

const prepareStop = {
  className: `${OBAGENT}.PrepareStopOcpAgentTask`,
  name: 'Prepare stop OCP agent',
  timeout: 60,
};
const stopAll = {
  className: `${OBAGENT}.StopAllOcpAgentProcessesTask`,
  name: 'Stop all OCP agent processes',
  timeout: 600,
};
const finish = {
  className: `${OBAGENT}.FinishOcpAgentOperationTask`,
  name: 'Finish OCP agent operation',
  timeout: 60,
};
const waitNode = { className: WAIT_NODE, name: 'Wait node', timeout: 30 };

function chain(keys: readonly string[]) {
  return keys.slice(1).map((to, i) => ({ from: keys[i] as string, to }));
}

interface SeedCase {
  readonly label: string;
  readonly file: string;
  readonly template: Template;
  readonly args: TaskArguments;
  readonly hasHostId: boolean;
}

const cases: readonly SeedCase[] = [
  {
    label: '000 stop OCP agent',
    file: 'seed-000-stop.json',
    template: {
      name: 'Stop OCP agent',
      nodes: [
        { key: 'prepare', ...prepareStop },
        { key: 'stop', ...stopAll },
        { key: 'finish', ...finish },
      ],
      edges: chain(['prepare', 'stop', 'finish']),
    },
    args: { stringMap: { host_id: '2' } },
    hasHostId: true,
  },
  {
    label: '002 batch stop OCP agent',
    file: 'seed-002-batch-stop.json',
    template: {
      name: 'Batch stop OCP agent',
      nodes: [
        { key: 'prepare', ...prepareStop, splitKey: 'host_ids' },
        { key: 'wait1', ...waitNode },
        { key: 'stop', ...stopAll, splitKey: 'host_ids' },
        { key: 'wait2', ...waitNode },
        { key: 'finish', ...finish, splitKey: 'host_ids' },
      ],
      edges: chain(['prepare', 'wait1', 'stop', 'wait2', 'finish']),
    },
    args: { listMap: { host_ids: ['2'] } },
    hasHostId: false,
  },
  {
    label: '004 restart OCP agent',
    file: 'seed-004-restart.json',
    template: {
      name: 'Restart OCP agent',
      nodes: [
        {
          key: 'prepare',
          className: `${OBAGENT}.PrepareRestartOcpAgentTask`,
          name: 'Prepare restart OCP agent',
          timeout: 60,
        },
        {
          key: 'proxy',
          className: `${OBAGENT}.RestartPosProxyTask`,
          name: 'Restart pos proxy',
          timeout: 60,
        },
        { key: 'stop', ...stopAll },
        {
          key: 'start',
          className: `${OBAGENT}.StartAllOcpAgentProcessesTask`,
          name: 'Start all OCP agent processes',
          timeout: 600,
        },
        { key: 'finish', ...finish },
      ],
      edges: chain(['prepare', 'proxy', 'stop', 'start', 'finish']),
    },
    args: { stringMap: { host_id: '2' } },
    hasHostId: true,
  },
];

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Same JSON type and same key set at every level, descending into objects and arrays; the
 * `subtasks` arrays are compared pairwise through `pairs` (ours → seed's) instead of by index.
 */
function expectSameShape(actual: unknown, expected: unknown, path: string): void {
  expect(jsonType(actual), `type of ${path}`).toBe(jsonType(expected));
  if (Array.isArray(expected)) {
    const items = actual as unknown[];
    expect(items.length, `length of ${path}`).toBe(expected.length);
    expected.forEach((item, i) => expectSameShape(items[i], item, `${path}[${i}]`));
  } else if (typeof expected === 'object' && expected !== null) {
    const object = actual as Record<string, unknown>;
    const seed = expected as Record<string, unknown>;
    expect(Object.keys(object).sort(), `keys of ${path}`).toEqual(Object.keys(seed).sort());
    for (const key of Object.keys(seed)) {
      if (key !== 'subtasks') expectSameShape(object[key], seed[key], `${path}.${key}`);
    }
  }
}

/** Longest distance from a root: together with className and parallelIdx it names a subtask. */
function depths(subtasks: readonly Linked[]): Map<number, number> {
  const byId = new Map(subtasks.map((s) => [s.id, s]));
  const memo = new Map<number, number>();
  const depth = (id: number): number => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    const subtask = byId.get(id);
    if (subtask === undefined) throw new Error(`subtask ${id} is referenced but not listed`);
    const value =
      subtask.upstreams.length === 0 ? 0 : 1 + Math.max(...subtask.upstreams.map(depth));
    memo.set(id, value);
    return value;
  };
  for (const subtask of subtasks) depth(subtask.id);
  return memo;
}

function signatures<T extends Linked>(subtasks: readonly T[]): Map<string, T> {
  const depth = depths(subtasks);
  const result = new Map<string, T>();
  for (const subtask of subtasks) {
    const signature = `${subtask.className}|${subtask.parallelIdx}|${depth.get(subtask.id)}`;
    expect(result.has(signature), `signature ${signature} is unique`).toBe(false);
    result.set(signature, subtask);
  }
  return result;
}

function expand(seedCase: SeedCase, seed: Record<string, Json>): TaskJson {
  const validated = validateTemplate(seedCase.template);
  const { task, subtasks } = expandTemplate(validated, seedCase.args, {
    ids: createCounterIdAllocator(1),
    creator: seed['creator'] as string,
    executor: seed['executor'] as string,
    now: Date.parse(seed['startTime'] as string),
  });
  return toTaskJson(task, subtasks, { utcOffsetMinutes: CHINA_OFFSET_MINUTES });
}

describe.each(cases)('seed $label', (seedCase) => {
  const seed = loadSeed(seedCase.file);
  const seedSubtasks = seed['subtasks'] as unknown as SeedSubtask[];

  it('the fixture is the seed sample: hostId only on single-host tasks', () => {
    expect('hostId' in seed).toBe(seedCase.hasHostId);
    expect(seedSubtasks.length).toBe(seedCase.template.nodes.length);
  });

  it('has the same keys and JSON types at every level, in the same order', () => {
    const ours = expand(seedCase, seed);
    expectSameShape(ours, seed, 'data');
    // The seeds list keys alphabetically (hostId between executor and id).
    expect(Object.keys(ours)).toEqual(Object.keys(seed));
    expect(Object.keys(ours.context)).toEqual(Object.keys(seed['context'] as object));
    expect(Object.keys(ours.context.stringMap)).toEqual(
      Object.keys((seed['context'] as Record<string, object>)['stringMap'] as object),
    );
    const seedKeys = Object.keys(seedSubtasks[0] as object);
    for (const subtask of ours.subtasks) expect(Object.keys(subtask)).toEqual(seedKeys);
    // Nothing in the wire shape is lost in JSON (no undefined, no NaN, no class instances).
    expect(JSON.parse(JSON.stringify(ours))).toEqual(ours);
  });

  it('has the same task-level values', () => {
    const ours = expand(seedCase, seed);
    expect(ours.context).toEqual(seed['context']);
    for (const key of ['name', 'creator', 'executor', 'taskDefinitionId', 'type', 'status']) {
      expect(ours[key as keyof TaskJson], key).toEqual(seed[key]);
    }
    expect(ours.operation).toBe(seed['operation']);
    expect(ours.startTime).toMatch(TIME);
    expect(ours.startTime).toBe(seed['startTime']);
    expect(Number.isSafeInteger(ours.id)).toBe(true);
    if (seedCase.hasHostId) {
      expect(ours.hostId).toBe(seed['hostId']);
    } else {
      expect('hostId' in ours).toBe(false);
    }
  });

  it('has the same subtasks and the same DAG up to renaming of ids', () => {
    const ours = expand(seedCase, seed);
    const oursBySignature = signatures(ours.subtasks);
    const seedBySignature = signatures(seedSubtasks);
    expect([...oursBySignature.keys()].sort()).toEqual([...seedBySignature.keys()].sort());

    const toSeedId = new Map<number, number>();
    for (const [signature, subtask] of oursBySignature) {
      toSeedId.set(subtask.id, (seedBySignature.get(signature) as SeedSubtask).id);
    }
    // A bijection between our ids and the seed's.
    expect(new Set(toSeedId.values()).size).toBe(seedSubtasks.length);

    const rename = (ids: readonly number[]) => ids.map((id) => toSeedId.get(id)).sort();
    for (const [signature, subtask] of oursBySignature) {
      const expected = seedBySignature.get(signature) as SeedSubtask;
      for (const key of [
        'className',
        'description',
        'name',
        'nodeType',
        'operation',
        'parallelIdx',
        'prohibitRollback',
        'runTime',
        'status',
        'timeout',
      ]) {
        expect(subtask[key as keyof typeof subtask], `${signature} ${key}`).toEqual(expected[key]);
      }
      expect(rename(subtask.upstreams), `${signature} upstreams`).toEqual(
        [...expected.upstreams].sort(),
      );
      expect(rename(subtask.downstreams), `${signature} downstreams`).toEqual(
        [...expected.downstreams].sort(),
      );
    }
  });

  it('numbers seriesId 0..n-1 like the seed, with distinct ids', () => {
    const ours = expand(seedCase, seed);
    const range = [...seedSubtasks.keys()];
    expect(seedSubtasks.map((s) => s.seriesId).sort()).toEqual(range);
    expect(ours.subtasks.map((s) => s.seriesId)).toEqual(range);
    expect(new Set(ours.subtasks.map((s) => s.id)).size).toBe(ours.subtasks.length);
  });
});

describe('formatTimestamp', () => {
  const seedInstant = Date.UTC(2021, 8, 3, 6, 27, 59, 687); // 2021-09-03T06:27:59.687Z

  it('renders the seed start time at +08:00 exactly as OCP does', () => {
    expect(formatTimestamp(seedInstant, 480)).toBe('2021-09-03T14:27:59.687+08:00');
  });

  it.each([
    [0, '2021-09-03T06:27:59.687+00:00'],
    [-300, '2021-09-03T01:27:59.687-05:00'],
    [-570, '2021-09-02T20:57:59.687-09:30'],
    [345, '2021-09-03T12:12:59.687+05:45'],
    [-720, '2021-09-02T18:27:59.687-12:00'],
    [840, '2021-09-03T20:27:59.687+14:00'],
  ])('renders offset %i minutes as %s', (offset, expected) => {
    const text = formatTimestamp(seedInstant, offset);
    expect(text).toBe(expected);
    expect(text).toMatch(TIME);
    expect(Date.parse(text)).toBe(seedInstant);
  });

  it('crosses a year boundary in local time and pads milliseconds', () => {
    const instant = Date.UTC(2021, 11, 31, 20, 0, 0, 5);
    expect(formatTimestamp(instant, 480)).toBe('2022-01-01T04:00:00.005+08:00');
    expect(formatTimestamp(instant, -60)).toBe('2021-12-31T19:00:00.005-01:00');
  });

  it('defaults to the process offset and still names the same instant', () => {
    const text = formatTimestamp(seedInstant);
    expect(text).toMatch(TIME);
    expect(Date.parse(text)).toBe(seedInstant);
  });
});
