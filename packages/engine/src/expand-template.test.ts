import { describe, it, expect } from 'vitest';
import { DagopsError, ErrorCode, TaskArgumentsError, type ValidationIssue } from './errors.js';
import { countSubtasks, expandTemplate, type ExpandOptions } from './expand-template.js';
import type { IdAllocator } from './id-allocator.js';
import type { SubtaskRecord } from './task.js';
import type { Template, TemplateNode } from './template.js';
import { validateTemplate, type ValidatedTemplate } from './validate-template.js';

function node(key: string, extra: Partial<TemplateNode> = {}): TemplateNode {
  return { key, className: `x.${key}`, name: `Node ${key}`, timeout: 60, ...extra };
}

function split(key: string, listKey = 'hosts', extra: Partial<TemplateNode> = {}): TemplateNode {
  return node(key, { splitKey: listKey, ...extra });
}

function tpl(nodes: TemplateNode[], edges: [string, string][] = [], extra = {}): Template {
  return { name: 'T', nodes, edges: edges.map(([from, to]) => ({ from, to })), ...extra };
}

/** An allocator that records what it was asked for. */
function recordingIds(taskId = 42, base = 7000) {
  const calls: { task: number; reserved: number[] } = { task: 0, reserved: [] };
  const ids: IdAllocator = {
    nextTaskId: () => {
      calls.task++;
      return taskId;
    },
    reserveSubtaskIds: (count) => {
      calls.reserved.push(count);
      return base;
    },
  };
  return { ids, calls };
}

function options(extra: Partial<ExpandOptions> = {}): ExpandOptions {
  return {
    ids: recordingIds().ids,
    creator: 'admin',
    executor: '10.0.0.1',
    now: 1_630_650_479_687,
    ...extra,
  };
}

function expand(template: Template, args?: unknown, extra: Partial<ExpandOptions> = {}) {
  return expandTemplate(validateTemplate(template), args, options(extra));
}

const hosts = (n: number) => ({ listMap: { hosts: Array.from({ length: n }, (_, i) => `h${i}`) } });

/** `key` or `key[i]` for a split copy. */
const label = (s: SubtaskRecord) =>
  s.parallelIdx >= 0 ? `${s.nodeKey}[${s.parallelIdx}]` : s.nodeKey;

/** Every edge as `from->to` labels, sorted; also checks upstreams mirror downstreams. */
function edgesOf(subtasks: readonly SubtaskRecord[]): string[] {
  const byId = new Map(subtasks.map((s) => [s.id, s]));
  const down: string[] = [];
  const up: string[] = [];
  for (const s of subtasks) {
    for (const id of s.downstreams)
      down.push(`${label(s)}->${label(byId.get(id) as SubtaskRecord)}`);
    for (const id of s.upstreams) up.push(`${label(byId.get(id) as SubtaskRecord)}->${label(s)}`);
  }
  expect(up.sort()).toEqual([...down].sort());
  expect(new Set(down).size, 'no duplicate links').toBe(down.length);
  return down.sort();
}

function statuses(subtasks: readonly SubtaskRecord[]): Record<string, string> {
  return Object.fromEntries(subtasks.map((s) => [label(s), s.status]));
}

function argumentsError(fn: () => unknown): TaskArgumentsError {
  let error: unknown;
  try {
    fn();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(TaskArgumentsError);
  const typed = error as TaskArgumentsError;
  expect(typed).toBeInstanceOf(DagopsError);
  expect(typed.code).toBe(ErrorCode.TASK_ARGUMENTS_INVALID);
  expect(typed.code).toBe(20011);
  expect(typed.name).toBe('TaskArgumentsError');
  expect(typed.nonRetryable).toBe(true);
  expect(typed.target).toBe(typed.issues[0]?.path);
  return typed;
}

function expectIssue(
  error: TaskArgumentsError,
  path: string,
  message: string | RegExp,
  value: unknown,
): ValidationIssue {
  const issue = error.issues.find((candidate) => candidate.path === path);
  expect(issue, `issue at ${path} in ${JSON.stringify(error.issues)}`).toBeDefined();
  const found = issue as ValidationIssue;
  expect(found.message).toMatch(message);
  expect(found.value).toEqual(value);
  return found;
}

describe('expandTemplate: wiring (SPEC §3)', () => {
  it('plain -> plain is one link', () => {
    const { subtasks } = expand(tpl([node('a'), node('b')], [['a', 'b']]));
    expect(subtasks.map(label)).toEqual(['a', 'b']);
    expect(edgesOf(subtasks)).toEqual(['a->b']);
  });

  it('plain -> split fans out to every copy', () => {
    const { subtasks } = expand(tpl([node('a'), split('b')], [['a', 'b']]), hosts(3));
    expect(edgesOf(subtasks)).toEqual(['a->b[0]', 'a->b[1]', 'a->b[2]']);
  });

  it('split -> plain fans in from every copy', () => {
    const { subtasks } = expand(tpl([split('a'), node('b')], [['a', 'b']]), hosts(3));
    expect(edgesOf(subtasks)).toEqual(['a[0]->b', 'a[1]->b', 'a[2]->b']);
  });

  it('split -> split over the same list links copy i to copy i only', () => {
    const { subtasks } = expand(tpl([split('a'), split('b')], [['a', 'b']]), hosts(3));
    expect(edgesOf(subtasks)).toEqual(['a[0]->b[0]', 'a[1]->b[1]', 'a[2]->b[2]']);
  });

  it('a SERIAL split is a chain entered at its first copy and left from its last', () => {
    const { subtasks } = expand(
      tpl(
        [node('p'), split('s', 'hosts', { splitMethod: 'SERIAL' }), node('q')],
        [
          ['p', 's'],
          ['s', 'q'],
        ],
      ),
      hosts(3),
    );
    expect(edgesOf(subtasks)).toEqual(['p->s[0]', 's[0]->s[1]', 's[1]->s[2]', 's[2]->q']);
    expect(statuses(subtasks)).toEqual({
      p: 'READY',
      's[0]': 'PENDING',
      's[1]': 'PENDING',
      's[2]': 'PENDING',
      q: 'PENDING',
    });
  });

  it('a SERIAL split as a root makes only its first copy READY', () => {
    const { subtasks } = expand(tpl([split('s', 'hosts', { splitMethod: 'SERIAL' })]), hosts(3));
    expect(edgesOf(subtasks)).toEqual(['s[0]->s[1]', 's[1]->s[2]']);
    expect(statuses(subtasks)).toEqual({ 's[0]': 'READY', 's[1]': 'PENDING', 's[2]': 'PENDING' });
  });

  it('a SERIAL split of one element is a single subtask with no chain', () => {
    const { subtasks } = expand(
      tpl([node('p'), split('s', 'hosts', { splitMethod: 'SERIAL' })], [['p', 's']]),
      hosts(1),
    );
    expect(edgesOf(subtasks)).toEqual(['p->s[0]']);
  });

  it('barrier nodes make each stage wait for the whole previous stage (batch stop)', () => {
    const { subtasks } = expand(
      tpl(
        [split('prepare'), node('wait1'), split('stop'), node('wait2'), split('finish')],
        [
          ['prepare', 'wait1'],
          ['wait1', 'stop'],
          ['stop', 'wait2'],
          ['wait2', 'finish'],
        ],
      ),
      hosts(3),
    );
    expect(subtasks).toHaveLength(11);
    const expected: string[] = [];
    for (let i = 0; i < 3; i++) {
      expected.push(
        `prepare[${i}]->wait1`,
        `wait1->stop[${i}]`,
        `stop[${i}]->wait2`,
        `wait2->finish[${i}]`,
      );
    }
    expect(edgesOf(subtasks)).toEqual(expected.sort());
    const ready = subtasks.filter((s) => s.status === 'READY').map(label);
    expect(ready).toEqual(['prepare[0]', 'prepare[1]', 'prepare[2]']);
  });

  it('a diamond keeps both paths, and a node without edges is its own root', () => {
    const { subtasks } = expand(
      tpl(
        [node('a'), node('b'), node('c'), node('d'), node('alone')],
        [
          ['a', 'b'],
          ['a', 'c'],
          ['b', 'd'],
          ['c', 'd'],
        ],
      ),
    );
    expect(edgesOf(subtasks)).toEqual(['a->b', 'a->c', 'b->d', 'c->d']);
    expect(statuses(subtasks)).toEqual({
      a: 'READY',
      b: 'PENDING',
      c: 'PENDING',
      d: 'PENDING',
      alone: 'READY',
    });
  });

  it('orders subtasks upstreams first, whatever the node order in the template', () => {
    const { subtasks } = expand(
      tpl(
        [node('c'), split('b'), node('a')],
        [
          ['a', 'b'],
          ['b', 'c'],
        ],
      ),
      hosts(2),
    );
    const position = new Map(subtasks.map((s, i) => [s.id, i]));
    for (const s of subtasks) {
      for (const up of s.upstreams) {
        expect(position.get(up) as number).toBeLessThan(position.get(s.id) as number);
      }
    }
    expect(subtasks.map(label)).toEqual(['a', 'b[0]', 'b[1]', 'c']);
  });
});

describe('expandTemplate: subtask and task fields', () => {
  const template = tpl(
    [
      node('a', { description: 'first step', prohibitRollback: true, timeout: 5 }),
      split('b', 'hosts', { timeout: 600 }),
      node('c'),
    ],
    [
      ['a', 'b'],
      ['b', 'c'],
    ],
  );

  it('numbers copies by parallelIdx, -1 when not split', () => {
    const { subtasks } = expand(template, hosts(3));
    expect(subtasks.map((s) => [s.nodeKey, s.parallelIdx])).toEqual([
      ['a', -1],
      ['b', 0],
      ['b', 1],
      ['b', 2],
      ['c', -1],
    ]);
  });

  it('takes ids from one contiguous reservation and sets seriesId to the index', () => {
    const { ids, calls } = recordingIds(42, 7000);
    const { task, subtasks } = expand(template, hosts(3), { ids });
    expect(calls).toEqual({ task: 1, reserved: [5] });
    expect(task.id).toBe(42);
    subtasks.forEach((s, i) => {
      expect(s.seriesId).toBe(i);
      expect(s.id).toBe(7000 + i);
      expect(s.taskId).toBe(42);
    });
  });

  it('copies node fields onto each subtask', () => {
    const { subtasks } = expand(template, hosts(2));
    const [a, b0, b1, c] = subtasks as [SubtaskRecord, SubtaskRecord, SubtaskRecord, SubtaskRecord];
    expect(a).toMatchObject({
      className: 'x.a',
      name: 'Node a',
      description: 'first step',
      timeout: 5,
      prohibitRollback: true,
      nodeType: 'JAVA_TASK',
    });
    for (const copy of [b0, b1]) {
      expect(copy).toMatchObject({
        className: 'x.b',
        name: 'Node b',
        description: 'Node b',
        timeout: 600,
        prohibitRollback: false,
      });
    }
    expect(c.description).toBe('Node c');
    expect(b0.upstreams).not.toBe(b1.upstreams);
    expect(b0.downstreams).not.toBe(b1.downstreams);
  });

  it('submits the task RUNNING/EXECUTE with roots READY and the rest PENDING, runTime 1', () => {
    const { task, subtasks } = expand(template, hosts(2));
    expect(task.status).toBe('RUNNING');
    expect(task.operation).toBe('EXECUTE');
    expect(statuses(subtasks)).toEqual({
      a: 'READY',
      'b[0]': 'PENDING',
      'b[1]': 'PENDING',
      c: 'PENDING',
    });
    for (const s of subtasks) {
      expect(s.operation).toBe('EXECUTE');
      expect(s.runTime).toBe(1);
      expect(s.startTime).toBeUndefined();
      expect(s.endTime).toBeUndefined();
      expect(s.executor).toBeUndefined();
    }
    expect(task.endTime).toBeUndefined();
  });

  it('fills the task from the options, with MANUAL and -1 by default', () => {
    const validated = validateTemplate(template);
    const { task } = expandTemplate(validated, hosts(1), options());
    expect(task).toMatchObject({
      name: 'T',
      creator: 'admin',
      executor: '10.0.0.1',
      startTime: 1_630_650_479_687,
      type: 'MANUAL',
      taskDefinitionId: -1,
    });
    expect(task.template).toBe(validated.template);
    const scheduled = expandTemplate(
      validated,
      hosts(1),
      options({ type: 'SCHEDULED', taskDefinitionId: 7 }),
    );
    expect(scheduled.task.type).toBe('SCHEDULED');
    expect(scheduled.task.taskDefinitionId).toBe(7);
  });
});

describe('expandTemplate: context', () => {
  const plain = tpl([node('a')]);

  it('always holds prohibit_rollback, first, as "false" by default', () => {
    const { task } = expand(plain, { stringMap: { zone: 'z1' }, listMap: { l: ['x'] } });
    expect(task.context).toEqual({
      listMap: { l: ['x'] },
      parallel: false,
      parallelIdx: -1,
      stringMap: { prohibit_rollback: 'false', zone: 'z1' },
    });
    expect(Object.keys(task.context.stringMap)[0]).toBe('prohibit_rollback');
    expect(expand(plain).task.context.stringMap).toEqual({ prohibit_rollback: 'false' });
    expect(expand(plain, {}).task.context.listMap).toEqual({});
  });

  it('is "true" when the template prohibits rollback, whatever the argument says', () => {
    const prohibited = tpl([node('a')], [], { prohibitRollback: true });
    expect(expand(prohibited).task.context.stringMap['prohibit_rollback']).toBe('true');
    const args = { stringMap: { prohibit_rollback: 'false' } };
    expect(expand(prohibited, args).task.context.stringMap['prohibit_rollback']).toBe('true');
  });

  it('follows the argument when the template allows rollback', () => {
    const yes = expand(plain, { stringMap: { prohibit_rollback: 'true', host_id: '2' } });
    expect(yes.task.context.stringMap).toEqual({ prohibit_rollback: 'true', host_id: '2' });
    const no = expand(plain, { stringMap: { prohibit_rollback: 'false' } });
    expect(no.task.context.stringMap['prohibit_rollback']).toBe('false');
  });

  it('sets hostId from a positive integer host_id', () => {
    expect(expand(plain, { stringMap: { host_id: '2' } }).task.hostId).toBe(2);
    expect(expand(plain, { stringMap: { host_id: '1001' } }).task.hostId).toBe(1001);
  });

  it.each(['0', '-3', '02', '2.0', '1e3', ' 2', '2 ', 'abc', '', '9007199254740993'])(
    'leaves hostId out for host_id %j',
    (hostId) => {
      const { task } = expand(plain, { stringMap: { host_id: hostId } });
      expect('hostId' in task).toBe(false);
      expect(task.context.stringMap['host_id']).toBe(hostId);
    },
  );

  it('leaves hostId out without host_id, even with host_ids', () => {
    const { task } = expand(tpl([split('a', 'host_ids')]), { listMap: { host_ids: ['2'] } });
    expect('hostId' in task).toBe(false);
  });

  it('shares no array or object with the caller', () => {
    const list = ['h0', 'h1'];
    const stringMap = { host_id: '2' };
    const args = { stringMap, listMap: { hosts: list } };
    const { task, subtasks } = expand(tpl([split('a')]), args);
    expect(task.context.listMap['hosts']).not.toBe(list);
    expect(task.context.stringMap).not.toBe(stringMap);
    list.push('h2');
    list[0] = 'changed';
    stringMap.host_id = '3';
    expect(task.context.listMap['hosts']).toEqual(['h0', 'h1']);
    expect(task.context.stringMap['host_id']).toBe('2');
    expect(subtasks).toHaveLength(2);
  });

  it('two expansions of one template share no array that can change', () => {
    const validated = validateTemplate(tpl([node('a'), split('b')], [['a', 'b']]));
    const first = expandTemplate(validated, hosts(2), options());
    const second = expandTemplate(validated, hosts(2), options());
    expect(first.task.context.listMap['hosts']).not.toBe(second.task.context.listMap['hosts']);
    first.subtasks.forEach((s, i) => {
      const other = second.subtasks[i] as SubtaskRecord;
      for (const [mine, theirs] of [
        [s.upstreams, other.upstreams],
        [s.downstreams, other.downstreams],
      ] as const) {
        expect(Object.isFrozen(mine)).toBe(true);
        // Only the empty id list is one array for all (frozen: nothing can change it).
        if (mine.length > 0) expect(mine).not.toBe(theirs);
        expect(() => (mine as number[]).push(1)).toThrow(TypeError);
      }
    });
  });

  it('keeps a __proto__ list from JSON arguments as an ordinary list', () => {
    const args = JSON.parse('{"listMap":{"__proto__":["x","y"]}}') as unknown;
    const { task, subtasks } = expand(tpl([split('a', '__proto__')]), args);
    expect(subtasks).toHaveLength(2);
    expect(Object.keys(task.context.listMap)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(task.context.listMap)).toBe(Object.prototype);
  });
});

describe('expandTemplate: split lists', () => {
  const template = tpl([node('a'), split('b')], [['a', 'b']]);

  it('rejects a missing split list, naming the list, the node and the value', () => {
    const error = argumentsError(() => expand(template, { listMap: {} }));
    const issue = expectIssue(error, 'listMap.hosts', /is required/, undefined);
    expect(issue.message).toContain('"b"');
    expect(error.message).toContain('listMap.hosts');
    expect(error.message).toContain('"b"');
    expect(error.message).toContain('got undefined');
    expect(error.issues).toHaveLength(1);
  });

  it('rejects an empty split list', () => {
    const error = argumentsError(() => expand(template, { listMap: { hosts: [] } }));
    const issue = expectIssue(error, 'listMap.hosts', /must not be empty/, []);
    expect(issue.message).toContain('"b"');
    expect(error.message).toContain('got []');
  });

  it('rejects every missing list at once', () => {
    const twoLists = tpl(
      [split('a', 'hosts'), node('w'), split('b', 'zones')],
      [
        ['a', 'w'],
        ['w', 'b'],
      ],
    );
    const error = argumentsError(() => expand(twoLists));
    expect(error.issues.map((i) => i.path).sort()).toEqual(['listMap.hosts', 'listMap.zones']);
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])(
    'does not take Object.prototype.%s for a split list',
    (listKey) => {
      const byName = tpl(
        [node('a'), split('b', listKey), node('c')],
        [
          ['a', 'b'],
          ['b', 'c'],
        ],
      );
      const error = argumentsError(() => expand(byName, { listMap: {} }));
      expectIssue(error, `listMap.${listKey}`, /is required/, undefined);
      const args = { listMap: Object.fromEntries([[listKey, ['x', 'y']]]) };
      expect(expand(byName, args).subtasks.map(label)).toEqual(['a', 'b[0]', 'b[1]', 'c']);
    },
  );

  it('allocates no ids when the arguments are refused', () => {
    const { ids, calls } = recordingIds();
    argumentsError(() => expand(template, { listMap: { hosts: [] } }, { ids }));
    argumentsError(() => expand(template, 'nope', { ids }));
    expect(calls).toEqual({ task: 0, reserved: [] });
  });
});

describe('expandTemplate: malformed arguments', () => {
  const template = tpl([node('a')]);

  it.each([
    ['null', null],
    ['a string', 'host_id=2'],
    ['a number', 2],
    ['an array', [{ stringMap: {} }]],
  ])('rejects arguments that are %s', (_label, args) => {
    const error = argumentsError(() => expand(template, args));
    expectIssue(error, 'arguments', 'must be an object', args);
    expect(error.message).toContain('arguments must be an object');
  });

  it.each([
    [
      'a stringMap value that is not a string',
      { stringMap: { host_id: 2 } },
      'stringMap.host_id',
      2,
    ],
    ['a null stringMap value', { stringMap: { zone: null } }, 'stringMap.zone', null],
    ['a stringMap that is not an object', { stringMap: 'host_id=2' }, 'stringMap', 'host_id=2'],
    ['a stringMap that is an array', { stringMap: ['2'] }, 'stringMap', ['2']],
    ['a listMap that is null', { listMap: null }, 'listMap', null],
    ['a list that is not an array', { listMap: { hosts: 'h1,h2' } }, 'listMap.hosts', 'h1,h2'],
    [
      'a list element that is not a string',
      { listMap: { hosts: ['h1', 7] } },
      'listMap.hosts[1]',
      7,
    ],
    ['an unknown field', { hostIds: ['1'] }, 'hostIds', ['1']],
    [
      'prohibit_rollback "yes"',
      { stringMap: { prohibit_rollback: 'yes' } },
      'stringMap.prohibit_rollback',
      'yes',
    ],
    [
      'prohibit_rollback "TRUE"',
      { stringMap: { prohibit_rollback: 'TRUE' } },
      'stringMap.prohibit_rollback',
      'TRUE',
    ],
  ])('rejects %s, naming the path and the value', (_label, args, path, value) => {
    const error = argumentsError(() => expand(template, args));
    expectIssue(error, path, /./, value);
    expect(error.message).toContain(path);
    expect(error.message).toContain(`got ${JSON.stringify(value)}`);
    expect(error.message).toContain('"T"');
  });

  it('lists every problem', () => {
    const error = argumentsError(() =>
      expand(template, { extra: 1, stringMap: { a: 1 }, listMap: { l: [null] } }),
    );
    expect(error.issues.map((i) => i.path)).toEqual(['extra', 'stringMap.a', 'listMap.l[0]']);
    expect(error.message).toContain('(and 2 more problem(s))');
  });

  it('accepts absent arguments and absent maps', () => {
    expect(expand(template).subtasks).toHaveLength(1);
    expect(expand(template, {}).subtasks).toHaveLength(1);
    expect(expand(template, { stringMap: undefined, listMap: undefined }).subtasks).toHaveLength(1);
  });
});

describe('countSubtasks', () => {
  const cases: [string, Template, unknown][] = [
    ['one plain node', tpl([node('a')]), undefined],
    ['fan-out', tpl([node('a'), split('b')], [['a', 'b']]), hosts(4)],
    [
      'batch stop',
      tpl(
        [split('p'), node('w1'), split('s'), node('w2'), split('f')],
        [
          ['p', 'w1'],
          ['w1', 's'],
          ['s', 'w2'],
          ['w2', 'f'],
        ],
      ),
      hosts(5),
    ],
    [
      'two lists',
      tpl(
        [split('a', 'hosts'), node('w'), split('b', 'zones', { splitMethod: 'SERIAL' })],
        [
          ['a', 'w'],
          ['w', 'b'],
        ],
      ),
      { listMap: { hosts: ['1', '2', '3'], zones: ['z1', 'z2'] } },
    ],
  ];

  it.each(cases)('agrees with the expansion: %s', (_label, template, args) => {
    const validated: ValidatedTemplate = validateTemplate(template);
    const count = countSubtasks(validated, args);
    expect(count).toBe(expandTemplate(validated, args, options()).subtasks.length);
  });

  it('throws like expandTemplate on a missing list', () => {
    const validated = validateTemplate(tpl([split('a')]));
    const error = argumentsError(() => countSubtasks(validated, {}));
    expectIssue(error, 'listMap.hosts', /is required/, undefined);
  });
});
