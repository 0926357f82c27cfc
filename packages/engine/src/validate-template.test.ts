import { describe, it, expect } from 'vitest';
import {
  DagCycleError,
  DagopsError,
  ErrorCode,
  TemplateValidationError,
  type ValidationIssue,
} from './errors.js';
import { MAX_TEMPLATE_NODES, MAX_TIMEOUT_SECONDS } from './template.js';
import { validateTemplate } from './validate-template.js';

type Loose = Record<string, unknown>;

function node(key: string, extra: Loose = {}): Loose {
  return { key, className: `x.${key}`, name: `Node ${key}`, timeout: 60, ...extra };
}

function template(nodes: unknown, edges: unknown = [], extra: Loose = {}): Loose {
  return { name: 'T', nodes, edges, ...extra };
}

function edge(from: string, to: string): Loose {
  return { from, to };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function templateError(input: unknown, options = {}): TemplateValidationError {
  const error = thrown(() => validateTemplate(input, options));
  expect(error).toBeInstanceOf(TemplateValidationError);
  const typed = error as TemplateValidationError;
  expect(typed).toBeInstanceOf(DagopsError);
  expect(typed.code).toBe(ErrorCode.TEMPLATE_INVALID);
  expect(typed.code).toBe(20010);
  expect(typed.name).toBe('TemplateValidationError');
  expect(typed.nonRetryable).toBe(true);
  expect(typed.issues.length).toBeGreaterThan(0);
  expect(typed.target).toBe(typed.issues[0]?.path);
  return typed;
}

function cycleError(input: unknown): DagCycleError {
  const error = thrown(() => validateTemplate(input));
  expect(error).toBeInstanceOf(DagCycleError);
  const typed = error as DagCycleError;
  expect(typed).toBeInstanceOf(DagopsError);
  expect(typed.code).toBe(ErrorCode.TASK_DAG_CYCLE);
  expect(typed.code).toBe(20001);
  expect(typed.name).toBe('DagCycleError');
  expect(typed.nonRetryable).toBe(true);
  return typed;
}

/**
 * Finds the issue at `path` and checks its message and value; the error's message must name
 * the path and show the value as `got <valueText>` when the issue is the first one.
 */
function expectIssue(
  error: TemplateValidationError,
  path: string,
  message: string | RegExp,
  value: unknown,
  valueText?: string,
): ValidationIssue {
  const issue = error.issues.find((candidate) => candidate.path === path);
  expect(issue, `issue at ${path} in ${JSON.stringify(error.issues)}`).toBeDefined();
  const found = issue as ValidationIssue;
  expect(found.message).toMatch(message);
  expect(found.value).toEqual(value);
  if (error.issues[0] === found) {
    expect(error.message).toContain(path);
    if (valueText !== undefined) expect(error.message).toContain(`got ${valueText}`);
  }
  return found;
}

/** A cycle path: at least one step, closed, with every step an edge of the template. */
function expectRealCycle(cycle: readonly string[], edges: readonly Loose[]): void {
  expect(cycle.length).toBeGreaterThanOrEqual(2);
  expect(cycle[0]).toBe(cycle[cycle.length - 1]);
  const open = cycle.slice(0, -1);
  expect(new Set(open).size).toBe(open.length);
  const edgeSet = new Set(edges.map((e) => `${String(e['from'])}->${String(e['to'])}`));
  for (let i = 0; i + 1 < cycle.length; i++) {
    expect(edgeSet.has(`${cycle[i]}->${cycle[i + 1]}`), `${cycle[i]} -> ${cycle[i + 1]}`).toBe(
      true,
    );
  }
}

describe('validateTemplate: accepted templates', () => {
  it('returns a copy of the template and the nodes upstreams first', () => {
    const input = template(
      [node('d'), node('c'), node('b'), node('a')],
      [edge('a', 'b'), edge('a', 'c'), edge('b', 'd'), edge('c', 'd')],
    );
    const validated = validateTemplate(input);
    expect(validated.template).toEqual(input);
    const keys = validated.order.map((n) => n.key);
    expect([...keys].sort()).toEqual(['a', 'b', 'c', 'd']);
    const at = (key: string) => keys.indexOf(key);
    expect(at('a')).toBeLessThan(at('b'));
    expect(at('a')).toBeLessThan(at('c'));
    expect(at('b')).toBeLessThan(at('d'));
    expect(at('c')).toBeLessThan(at('d'));
    // The order's nodes are the validated template's own objects.
    for (const n of validated.order) expect(validated.template.nodes).toContain(n);
    // Deterministic.
    expect(validateTemplate(input).order.map((n) => n.key)).toEqual(keys);
  });

  it('accepts every optional field at its limits', () => {
    const input = {
      $schema: 'https://dagops.dev/schemas/template.json',
      name: 'Everything',
      description: 'all fields',
      prohibitRollback: true,
      concurrency: 1,
      nodes: [
        node('a', {
          description: 'd',
          timeout: MAX_TIMEOUT_SECONDS,
          prohibitRollback: false,
          retry: {
            maxAttempts: 3,
            initialIntervalSeconds: 2,
            backoffCoefficient: 1,
            maxIntervalSeconds: 2,
            nonRetryableCodes: ['E1', 20003],
          },
        }),
        node('b', { timeout: 0.5, splitKey: 'hosts', splitMethod: 'SERIAL' }),
        node('c', { splitKey: 'hosts', splitMethod: 'PARALLEL' }),
      ],
      edges: [edge('a', 'b'), edge('b', 'c')],
    };
    expect(validateTemplate(input).template).toEqual(input);
  });

  it('accepts node keys that are Object.prototype member names without polluting it', () => {
    const keys = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
    const input = JSON.parse(
      JSON.stringify(
        template(
          keys.map((k) => node(k)),
          keys.slice(1).map((k, i) => edge(keys[i] as string, k)),
        ),
      ),
    ) as unknown;
    const validated = validateTemplate(input);
    expect(validated.order.map((n) => n.key)).toEqual(keys);
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Loose)['constructor']).toBe(Object);
  });

  it('validates a chain of MAX_TEMPLATE_NODES nodes without overflowing the stack', () => {
    const count = MAX_TEMPLATE_NODES;
    const keys = Array.from({ length: count }, (_, i) => `k${i}`);
    const input = template(
      keys.map((k) => node(k)),
      keys.slice(1).map((k, i) => edge(keys[i] as string, k)),
    );
    expect(validateTemplate(input).order.map((n) => n.key)).toEqual(keys);
  });

  it('calls hasHandler with each className and accepts when all are known', () => {
    const seen: string[] = [];
    const validated = validateTemplate(template([node('a'), node('b')], [edge('a', 'b')]), {
      hasHandler: (className) => {
        seen.push(className);
        return true;
      },
    });
    expect(validated.order).toHaveLength(2);
    expect(seen.sort()).toEqual(['x.a', 'x.b']);
  });
});

describe('validateTemplate: cycles (code 20001)', () => {
  it('reports a cycle in a larger graph with its node path, leaving out the acyclic parts', () => {
    const edges = [
      edge('root', 'a'),
      edge('a', 'b'),
      edge('b', 'c'),
      edge('c', 'a'),
      edge('c', 'sink'),
      edge('root', 'side'),
      edge('side', 'sink'),
    ];
    const input = template(
      ['root', 'side', 'a', 'b', 'c', 'sink'].map((k) => node(k)),
      edges,
    );
    const error = cycleError(input);
    expectRealCycle(error.cycle, edges);
    expect([...error.cycle.slice(0, -1)].sort()).toEqual(['a', 'b', 'c']);
    expect(error.message).toContain(error.cycle.join(' -> '));
    expect(error.message).toContain('"T"');
    expect(error.target).toBe(error.cycle[0]);
  });

  it('reports a self-loop as [key, key]', () => {
    const error = cycleError(template([node('a'), node('b')], [edge('a', 'b'), edge('b', 'b')]));
    expect(error.cycle).toEqual(['b', 'b']);
    expect(error.message).toContain('b -> b');
  });

  it('reports a two-node cycle', () => {
    const edges = [edge('a', 'b'), edge('b', 'a')];
    const error = cycleError(template([node('a'), node('b')], edges));
    expectRealCycle(error.cycle, edges);
    expect(error.cycle).toHaveLength(3);
  });

  it('finds a cycle that no sink leads to (every node is on it)', () => {
    const edges = [edge('a', 'b'), edge('b', 'c'), edge('c', 'a')];
    const error = cycleError(template([node('a'), node('b'), node('c')], edges));
    expectRealCycle(error.cycle, edges);
    expect(error.cycle).toHaveLength(4);
  });

  it('reports cycles through keys named like Object.prototype members', () => {
    const edges = [edge('constructor', '__proto__'), edge('__proto__', 'constructor')];
    const input = JSON.parse(
      JSON.stringify(template([node('constructor'), node('__proto__')], edges)),
    ) as unknown;
    const error = cycleError(input);
    expectRealCycle(error.cycle, edges);
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('refuses more than MAX_TEMPLATE_NODES nodes, naming the limit and the count', () => {
    const keys = Array.from({ length: MAX_TEMPLATE_NODES + 1 }, (_, i) => `k${i}`);
    const error = templateError(
      template(
        keys.map((k) => node(k)),
        [],
      ),
    );
    expect(error.issues[0]?.path).toBe('nodes');
    expect(error.message).toContain(`must NOT have more than ${MAX_TEMPLATE_NODES} items`);
  });

  it('reports a cycle through MAX_TEMPLATE_NODES nodes without overflowing the stack', () => {
    const count = MAX_TEMPLATE_NODES;
    const keys = Array.from({ length: count }, (_, i) => `k${i}`);
    const edges = keys.map((k, i) => edge(k, keys[(i + 1) % count] as string));
    const error = cycleError(
      template(
        keys.map((k) => node(k)),
        edges,
      ),
    );
    expect(error.cycle).toHaveLength(count + 1);
    expectRealCycle(error.cycle, edges);
  });

  it('checks the other rules before acyclicity', () => {
    const error = templateError(
      template([node('a'), node('b')], [edge('a', 'b'), edge('b', 'a'), edge('a', 'ghost')]),
    );
    expectIssue(error, 'edges[2].to', 'names no node', 'ghost');
  });
});

describe('validateTemplate: graph rules (code 20010)', () => {
  it('rejects an edge from an unknown node', () => {
    const error = templateError(template([node('a')], [edge('ghost', 'a')]));
    expectIssue(error, 'edges[0].from', 'names no node', 'ghost', '"ghost"');
    expect(error.issues).toHaveLength(1);
  });

  it('rejects an edge to an unknown node', () => {
    const error = templateError(template([node('a'), node('b')], [edge('a', 'b'), edge('a', 'z')]));
    expectIssue(error, 'edges[1].to', 'names no node', 'z', '"z"');
    expect(error.issues).toHaveLength(1);
  });

  it('rejects a duplicate node key, naming the second one', () => {
    const error = templateError(template([node('a'), node('b'), node('a', { name: 'again' })]));
    expectIssue(error, 'nodes[2] ("a").key', 'duplicates an earlier node key', 'a', '"a"');
  });

  it('rejects a duplicate edge', () => {
    const error = templateError(template([node('a'), node('b')], [edge('a', 'b'), edge('a', 'b')]));
    expectIssue(error, 'edges[1]', 'duplicates an earlier edge', { from: 'a', to: 'b' });
    expect(error.message).toContain('{"from":"a","to":"b"}');
  });

  it('rejects split -> split over different lists and suggests a barrier', () => {
    const error = templateError(
      template(
        [node('a', { splitKey: 'hosts' }), node('b', { splitKey: 'zones' })],
        [edge('a', 'b')],
      ),
    );
    const issue = expectIssue(error, 'edges[0]', /barrier/, { from: 'a', to: 'b' });
    expect(issue.message).toContain('"hosts"');
    expect(issue.message).toContain('"zones"');
  });

  it('accepts split -> split over the same list, and different lists through a barrier', () => {
    expect(() =>
      validateTemplate(
        template(
          [
            node('a', { splitKey: 'hosts' }),
            node('b', { splitKey: 'hosts' }),
            node('wait'),
            node('c', { splitKey: 'zones' }),
          ],
          [edge('a', 'b'), edge('b', 'wait'), edge('wait', 'c')],
        ),
      ),
    ).not.toThrow();
  });

  it('rejects splitMethod without splitKey', () => {
    const error = templateError(template([node('a', { splitMethod: 'SERIAL' })]));
    expectIssue(error, 'nodes[0] ("a").splitMethod', 'needs a splitKey', 'SERIAL', '"SERIAL"');
  });

  it('rejects retry.maxIntervalSeconds below initialIntervalSeconds', () => {
    const error = templateError(
      template([node('a', { retry: { initialIntervalSeconds: 10, maxIntervalSeconds: 5 } })]),
    );
    const issue = expectIssue(error, 'nodes[0] ("a").retry.maxIntervalSeconds', />=/, 5, '5');
    expect(issue.message).toContain('initialIntervalSeconds (10)');
  });

  it('rejects a className without a handler when hasHandler is given', () => {
    const known = new Set(['x.a']);
    const error = templateError(template([node('a'), node('b')], [edge('a', 'b')]), {
      hasHandler: (className: string) => known.has(className),
    });
    expectIssue(error, 'nodes[1] ("b").className', 'has no registered handler', 'x.b', '"x.b"');
    expect(error.issues).toHaveLength(1);
  });

  it('lists every problem in document order and counts the rest in the message', () => {
    const error = templateError(
      template([node('a'), node('a'), node('b', { splitMethod: 'PARALLEL' })], [edge('a', 'q')]),
    );
    expect(error.issues.map((i) => i.path)).toEqual([
      'nodes[1] ("a").key',
      'nodes[2] ("b").splitMethod',
      'edges[0].to',
    ]);
    expect(error.message).toContain('(and 2 more problem(s))');
  });
});

describe('validateTemplate: schema rules (code 20010)', () => {
  const timeoutPath = 'nodes[0] ("a").timeout';

  it.each([
    ['zero', 0, '0'],
    ['negative', -5, '-5'],
    ['NaN', Number.NaN, 'NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'Infinity'],
    ['-Infinity', Number.NEGATIVE_INFINITY, '-Infinity'],
    ['a string', '60', '"60"'],
    ['above MAX_TIMEOUT_SECONDS', MAX_TIMEOUT_SECONDS + 1, String(MAX_TIMEOUT_SECONDS + 1)],
    ['null', null, 'null'],
  ])('rejects a timeout that is %s', (_label, timeout, text) => {
    const error = templateError(template([node('a', { timeout })]));
    expectIssue(error, timeoutPath, /./, timeout, text);
    expect(error.issues).toHaveLength(1);
  });

  it('rejects an unknown field at template level', () => {
    const error = templateError(template([node('a')], [], { owner: 'me' }));
    expectIssue(error, 'owner', 'is not a known field', 'me', '"me"');
  });

  it('rejects an unknown field at node level', () => {
    const error = templateError(template([node('a', { retries: 3 })]));
    expectIssue(error, 'nodes[0] ("a").retries', 'is not a known field', 3, '3');
  });

  it('rejects an unknown field at edge level', () => {
    const error = templateError(template([node('a'), node('b')], [{ ...edge('a', 'b'), w: 2 }]));
    expectIssue(error, 'edges[0].w', 'is not a known field', 2, '2');
  });

  it('rejects an unknown field at retry level', () => {
    const error = templateError(template([node('a', { retry: { jitter: true } })]));
    expectIssue(error, 'nodes[0] ("a").retry.jitter', 'is not a known field', true, 'true');
  });

  it('rejects a __proto__ field parsed from JSON as unknown', () => {
    const input = JSON.parse(
      '{"name":"T","nodes":[{"key":"a","className":"x","name":"a","timeout":1}],' +
        '"edges":[],"__proto__":{"polluted":true}}',
    ) as unknown;
    const error = templateError(input);
    expectIssue(error, '__proto__', 'is not a known field', { polluted: true });
    expect(({} as Loose)['polluted']).toBeUndefined();
  });

  it.each(['name', 'nodes', 'edges'])('rejects a template without %s', (field) => {
    const input = template([node('a')]);
    delete input[field];
    const error = templateError(input);
    expectIssue(error, field, 'is required', undefined, 'undefined');
  });

  it.each(['className', 'name', 'timeout'])('rejects a node without %s', (field) => {
    const bad = node('a');
    delete bad[field];
    const error = templateError(template([bad]));
    expectIssue(error, `nodes[0] ("a").${field}`, 'is required', undefined);
  });

  it('rejects a node without key, naming it by index', () => {
    const bad = node('a');
    delete bad['key'];
    const error = templateError(template([bad]));
    expectIssue(error, 'nodes[0].key', 'is required', undefined);
  });

  it.each(['from', 'to'])('rejects an edge without %s', (field) => {
    const bad = edge('a', 'b');
    delete bad[field];
    const error = templateError(template([node('a'), node('b')], [bad]));
    expectIssue(error, `edges[0].${field}`, 'is required', undefined);
  });

  it('rejects a numeric name', () => {
    const error = templateError({ name: 42, nodes: [node('a')], edges: [] });
    expectIssue(error, 'name', 'must be string', 42, '42');
    expect(error.message).toContain('(unnamed)');
  });

  it('rejects an empty name and an empty key', () => {
    const error = templateError({ name: '', nodes: [node('')], edges: [] });
    expectIssue(error, 'name', /fewer than 1/, '');
    expectIssue(error, 'nodes[0] ("").key', /fewer than 1/, '');
  });

  it('rejects nodes that are not an array', () => {
    const error = templateError(template({ a: node('a') }));
    expectIssue(error, 'nodes', 'must be array', { a: node('a') });
  });

  it('rejects an empty nodes array', () => {
    const error = templateError(template([]));
    expectIssue(error, 'nodes', /fewer than 1/, [], '[]');
  });

  it('rejects a null node and a null edge', () => {
    const error = templateError(template([node('a'), null], [null]));
    expectIssue(error, 'nodes[1]', 'must be object', null, 'null');
    expectIssue(error, 'edges[0]', 'must be object', null);
  });

  it('rejects an edge end that is not a string', () => {
    const error = templateError(template([node('a')], [{ from: 1, to: 'a' }]));
    expectIssue(error, 'edges[0].from', 'must be string', 1, '1');
  });

  it.each([
    ['null', null, 'null'],
    ['an array', [], '[]'],
    ['a string', 'template', '"template"'],
    ['a number', 7, '7'],
    ['undefined', undefined, 'undefined'],
  ])('rejects a template that is %s', (_label, input, text) => {
    const error = templateError(input);
    expectIssue(error, '(root)', 'must be object', input, text);
    expect(error.message).toContain('(unnamed)');
  });

  it('rejects an unknown splitMethod, listing the allowed ones', () => {
    const error = templateError(template([node('a', { splitKey: 'k', splitMethod: 'RANDOM' })]));
    const issue = expectIssue(error, 'nodes[0] ("a").splitMethod', /PARALLEL/, 'RANDOM');
    expect(issue.message).toContain('"SERIAL"');
  });

  it.each([
    ['maxAttempts', 0],
    ['maxAttempts', 1.5],
    ['initialIntervalSeconds', -1],
    ['initialIntervalSeconds', Number.NaN],
    ['backoffCoefficient', 0.5],
    ['maxIntervalSeconds', Number.POSITIVE_INFINITY],
    ['nonRetryableCodes', 'E1'],
  ])('rejects retry.%s = %s', (field, value) => {
    const error = templateError(template([node('a', { retry: { [field]: value } })]));
    expectIssue(error, `nodes[0] ("a").retry.${field}`, /./, value);
  });

  it('rejects a retry policy that is not an object', () => {
    const error = templateError(template([node('a', { retry: null })]));
    expectIssue(error, 'nodes[0] ("a").retry', 'must be object', null);
  });

  it.each([0, 1.5, -1])('rejects concurrency %s', (concurrency) => {
    const error = templateError(template([node('a')], [], { concurrency }));
    expectIssue(error, 'concurrency', /./, concurrency);
  });
});

describe('validateTemplate: malformed input never escapes as a bare error', () => {
  class WithGetter {
    readonly name = 'T';
    readonly edges = [];
    get nodes() {
      return [node('a')];
    }
  }
  const circular: Loose = template([node('a')]);
  circular['self'] = circular;
  const symbolKey = Symbol('s');

  const inputs: [string, unknown][] = [
    ['null', null],
    ['undefined', undefined],
    ['a number', 1],
    ['a bigint', 1n],
    ['a symbol', symbolKey],
    ['a function', () => template([node('a')])],
    ['a Date', new Date(0)],
    ['a Map', new Map([['name', 'T']])],
    ['an array of nodes', [node('a')]],
    ['nodes as a string', template('a')],
    ['nodes as null', template(null)],
    ['edges as an object', template([node('a')], {})],
    ['edges as null', template([node('a')], null)],
    ['a node as a string', template(['a'])],
    ['a node as an array', template([[]])],
    ['a sparse nodes array', template([, node('a')])], // eslint-disable-line no-sparse-arrays
    ['a node key as a number', template([node('a', { key: 1 })])],
    ['a node key as an object', template([node('a', { key: { toString: () => 'a' } })])],
    ['a timeout as a bigint', template([node('a', { timeout: 60n })])],
    ['a timeout as a symbol', template([node('a', { timeout: symbolKey })])],
    ['a className as a function', template([node('a', { className: () => 'x' })])],
    ['a description as a WeakMap', template([node('a', { description: new WeakMap() })])],
    ['retry as an array', template([node('a', { retry: [] })])],
    [
      'nonRetryableCodes with null',
      template([node('a', { retry: { nonRetryableCodes: [null] } })]),
    ],
    ['an edge as a string', template([node('a')], ['a->a'])],
    ['an edge with numeric ends', template([node('a')], [{ from: 0, to: 1 }])],
    ['a circular object', circular],
    ['a class instance whose nodes is a getter', new WithGetter()],
    [
      'non-enumerable nodes',
      Object.defineProperty({ name: 'T', edges: [] }, 'nodes', { value: [node('a')] }),
    ],
    ['a proxy', new Proxy(template([node('a')]), {})],
    ['a splitKey as a number', template([node('a', { splitKey: 3 })])],
    ['prohibitRollback as a string', template([node('a', { prohibitRollback: 'false' })])],
  ];

  it.each(inputs)('%s throws a DagopsError', (_label, input) => {
    const error = thrown(() => validateTemplate(input));
    expect(error).toBeInstanceOf(DagopsError);
    expect(error).toBeInstanceOf(TemplateValidationError);
    expect((error as DagopsError).code).toBe(ErrorCode.TEMPLATE_INVALID);
  });

  it('a getter-only template is judged by its data: nodes is missing', () => {
    const error = templateError(new WithGetter());
    expectIssue(error, 'nodes', 'is required', undefined);
  });

  it('a proxy is refused as not plain data', () => {
    const error = templateError(new Proxy(template([node('a')]), {}));
    expectIssue(error, '(root)', 'must be plain JSON data', expect.anything());
  });
});

describe('validateTemplate: keeps no reference to the caller', () => {
  it('later changes to the input do not reach the validated template', () => {
    const retry = { maxAttempts: 2 };
    const nodes = [node('a', { retry }), node('b', { splitKey: 'hosts' })];
    const edges = [edge('a', 'b')];
    const input = template(nodes, edges);
    const snapshot = structuredClone(input);
    const validated = validateTemplate(input);

    expect(validated.template).not.toBe(input);
    expect(validated.template.nodes).not.toBe(nodes);
    expect(validated.template.edges).not.toBe(edges);

    input['name'] = 'changed';
    (nodes[0] as Loose)['timeout'] = -1;
    (nodes[1] as Loose)['key'] = 'z';
    retry.maxAttempts = 99;
    nodes.push(node('c'));
    edges.push(edge('b', 'c'));
    (edges[0] as Loose)['to'] = 'nowhere';

    expect(validated.template).toEqual(snapshot);
    expect(validated.order.map((n) => n.key)).toEqual(['a', 'b']);
    expect(validated.order[0]?.timeout).toBe(60);
    expect(validated.order[0]?.retry?.maxAttempts).toBe(2);
  });
});
