import { readFileSync } from 'node:fs';
import {
  createCounterIdAllocator,
  createManualClock,
  Engine,
  expandTemplate,
  HandlerRegistry,
  templateJsonSchema,
  toTaskJson,
  validateTemplate,
  type SubtaskJson,
  type TaskArguments,
  type TaskJson,
  type Template,
} from '@dagops/engine';
import { describe, expect, it } from 'vitest';
import {
  batchStopAgentArguments,
  restartAgentArguments,
  stopAgentArguments,
} from './agent-arguments.js';
import { AgentClassName } from './agent-class-names.js';
import { registerAgentHandlers } from './agent-handlers.js';
import {
  agentTemplates,
  batchStopAgentTemplate,
  restartAgentTemplate,
  stopAgentTemplate,
} from './agent-templates.js';
import { SimulatedAgent } from './simulated-agent.js';

/**
 * Golden tests: each shipped template, submitted through a real Engine with the seed's sample
 * input, gives the task JSON of the seed's `data`, up to ids and times.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type SeedSubtask = SubtaskJson & Record<string, Json>;

function loadSeed(file: string): Record<string, Json> {
  const text = readFileSync(new URL(`../test-fixtures/${file}`, import.meta.url), 'utf8');
  return JSON.parse(text) as Record<string, Json>;
}

interface GoldenCase {
  readonly seed: string;
  readonly template: Template;
  readonly args: TaskArguments;
  readonly hosts: readonly number[];
}

const cases: readonly GoldenCase[] = [
  {
    seed: 'seed-000-stop.json',
    template: stopAgentTemplate,
    args: stopAgentArguments({ hostId: 2 }),
    hosts: [2],
  },
  {
    seed: 'seed-001-stop.json',
    template: stopAgentTemplate,
    args: stopAgentArguments({ hostId: 2 }),
    hosts: [2],
  },
  {
    seed: 'seed-002-batch-stop.json',
    template: batchStopAgentTemplate,
    args: batchStopAgentArguments({ hostIds: [2] }),
    hosts: [2],
  },
  {
    seed: 'seed-004-restart.json',
    template: restartAgentTemplate,
    args: restartAgentArguments({ hostId: 2 }),
    hosts: [2],
  },
];

const jsonType = (value: unknown) =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;

/** Same JSON type and same key set at every level; `subtasks` are compared by the caller. */
function expectSameShape(actual: unknown, expected: unknown, path: string): void {
  expect(jsonType(actual), `type of ${path}`).toBe(jsonType(expected));
  if (Array.isArray(expected)) {
    const items = actual as unknown[];
    expect(items.length, `length of ${path}`).toBe(expected.length);
    expected.forEach((item, i) => expectSameShape(items[i], item, `${path}[${i}]`));
  } else if (typeof expected === 'object' && expected !== null) {
    const object = actual as Record<string, unknown>;
    expect(Object.keys(object).sort(), `keys of ${path}`).toEqual(Object.keys(expected).sort());
    for (const [key, value] of Object.entries(expected)) {
      if (key !== 'subtasks') expectSameShape(object[key], value, `${path}.${key}`);
    }
  }
}

/**
 * A name for each subtask that does not depend on ids: className, branch, and longest distance
 * from a root (the two Wait nodes of Batch stop differ only in depth).
 */
function bySignature<T extends SubtaskJson>(subtasks: readonly T[]): Map<string, T> {
  const byId = new Map(subtasks.map((s) => [s.id, s]));
  const depth = (s: SubtaskJson): number =>
    s.upstreams.length === 0
      ? 0
      : 1 + Math.max(...s.upstreams.map((id) => depth(byId.get(id) as SubtaskJson)));
  const result = new Map<string, T>();
  for (const s of subtasks) {
    const signature = `${s.className}|${s.parallelIdx}|${depth(s)}`;
    expect(result.has(signature), `${signature} is unique`).toBe(false);
    result.set(signature, s);
  }
  return result;
}

async function submitLikeSeed(golden: GoldenCase, seed: Record<string, Json>) {
  const agent = new SimulatedAgent({ hostIds: golden.hosts });
  const engine = new Engine({
    handlers: registerAgentHandlers(new HandlerRegistry(), agent),
    executor: seed['executor'] as string,
    utcOffsetMinutes: 480,
    // The seed's instant; the manual clock never fires the attempts' timeout timers.
    clock: createManualClock(Date.parse(seed['startTime'] as string)),
  });
  const submitted = await engine.submit(golden.template, golden.args, {
    creator: seed['creator'] as string,
  });
  return { engine, agent, submitted };
}

describe.each(cases)('golden: $template.name vs $seed', (golden) => {
  const seed = loadSeed(golden.seed);
  const seedSubtasks = seed['subtasks'] as unknown as SeedSubtask[];

  it('submits to the seed task: same keys and JSON types at every level, same task values', async () => {
    const { engine, submitted } = await submitLikeSeed(golden, seed);
    expectSameShape(submitted, seed, 'data');
    for (const subtask of submitted.subtasks) {
      expect(Object.keys(subtask).sort()).toEqual(Object.keys(seedSubtasks[0] as object).sort());
    }
    expect(submitted.context).toEqual(seed['context']);
    expect(Object.keys(submitted.context.stringMap)).toEqual(
      Object.keys((seed['context'] as { stringMap: object }).stringMap),
    );
    for (const key of [
      'name',
      'creator',
      'executor',
      'operation',
      'startTime',
      'status',
      'taskDefinitionId',
      'type',
    ] as const) {
      expect(submitted[key], key).toEqual(seed[key]);
    }
    expect('hostId' in submitted).toBe('hostId' in seed);
    if ('hostId' in seed) expect(submitted.hostId).toBe(seed['hostId']);
    expect((await engine.waitForTask(submitted.id)).status).toBe('SUCCESSFUL');
    await engine.close();
  });

  it('has the seed subtasks (name, className, timeout, parallelIdx, status…) and DAG up to id renaming', async () => {
    const { engine, submitted } = await submitLikeSeed(golden, seed);
    const ours = bySignature(submitted.subtasks);
    const theirs = bySignature(seedSubtasks);
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    const rename = new Map<number, number>();
    for (const [signature, subtask] of ours) {
      rename.set(subtask.id, (theirs.get(signature) as SeedSubtask).id);
    }
    expect(new Set(rename.values()).size).toBe(seedSubtasks.length);
    const renamed = (ids: readonly number[]) => ids.map((id) => rename.get(id)).sort();
    for (const [signature, subtask] of ours) {
      const expected = theirs.get(signature) as SeedSubtask;
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
      ] as const) {
        expect(subtask[key], `${signature} ${key}`).toEqual(expected[key]);
      }
      expect(renamed(subtask.upstreams), `${signature} upstreams`).toEqual(
        [...expected.upstreams].sort(),
      );
      expect(renamed(subtask.downstreams), `${signature} downstreams`).toEqual(
        [...expected.downstreams].sort(),
      );
    }
    await engine.waitForTask(submitted.id);
    await engine.close();
  });
});

describe('shipped templates', () => {
  const expand = (template: unknown, args: TaskArguments): TaskJson => {
    const { task, subtasks } = expandTemplate(validateTemplate(template), args, {
      ids: createCounterIdAllocator(100),
      creator: 'admin',
      executor: '127.0.0.1',
      now: 0,
    });
    return toTaskJson(task, subtasks, { utcOffsetMinutes: 0 });
  };
  const argsOf = (template: Template): TaskArguments =>
    template === batchStopAgentTemplate
      ? batchStopAgentArguments({ hostIds: [1001, 1002, 1003] })
      : stopAgentArguments({ hostId: 7 });

  it.each(agentTemplates.map((t) => [t.name, t] as const))(
    '%s round-trips through JSON: it validates and expands identically',
    (_, template) => {
      const copy = JSON.parse(JSON.stringify(template)) as unknown;
      expect(copy).toEqual(template);
      expect(validateTemplate(copy).template).toEqual(validateTemplate(template).template);
      expect(expand(copy, argsOf(template))).toEqual(expand(template, argsOf(template)));
    },
  );

  it('name only classNames that registerAgentHandlers registers, plus the Wait node', () => {
    const registry = registerAgentHandlers(new HandlerRegistry(), new SimulatedAgent());
    for (const template of agentTemplates) {
      validateTemplate(template, { hasHandler: (name) => registry.has(name) });
    }
    const used = new Set(agentTemplates.flatMap((t) => t.nodes.map((n) => n.className)));
    for (const className of Object.values(AgentClassName)) expect(used.has(className)).toBe(true);
  });

  it('are frozen plain data matching the published template schema', () => {
    for (const template of agentTemplates) {
      expect(Object.isFrozen(template)).toBe(true);
      expect(Object.isFrozen(template.nodes[0])).toBe(true);
      expect(Object.keys(template).every((key) => key in templateJsonSchema.properties)).toBe(true);
    }
  });

  it('batch stop fans out per host and waits for each whole stage', () => {
    const task = expand(batchStopAgentTemplate, argsOf(batchStopAgentTemplate));
    expect(task.subtasks).toHaveLength(3 * 3 + 2);
    const waits = task.subtasks.filter((s) => s.name === 'Wait node');
    expect(waits.map((w) => [w.upstreams.length, w.downstreams.length])).toEqual([
      [3, 3],
      [3, 3],
    ]);
    expect(task.context.listMap).toEqual({ host_ids: ['1001', '1002', '1003'] });
  });
});
