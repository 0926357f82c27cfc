/**
 * fast-check arbitraries for templates and task arguments, shared by the property suites
 * (expansion now, the runner later). Pair them with `template-oracle.ts`, which says what the
 * engine should do with a generated scenario without asking the engine.
 *
 * Two families:
 * - {@link validTemplateArb} / {@link validScenarioArb}: well-formed, acyclic templates and
 *   arguments that expand (every split list present and non-empty).
 * - {@link anyTemplateArb} / {@link anyScenarioArb}: the same, then sometimes broken on
 *   purpose (back edges, split→split over different lists, unknown nodes, duplicate keys, bad
 *   timeouts, …) with arguments whose lists may be empty, missing or malformed. Whether a
 *   given value is really broken is for the oracle to say, not the generator.
 */
import fc from 'fast-check';
import type { TaskArguments } from '../task-arguments.js';
import type { RetryPolicy, Template, TemplateEdge, TemplateNode } from '../template.js';

/** Handler class names the generated nodes use. */
export const CLASS_NAMES = [
  'com.alipay.ocp.service.task.business.obagent.PrepareStopAgentTask',
  'com.alipay.ocp.service.task.business.obagent.StopAgentTask',
  'com.alipay.ocp.service.task.business.WaitNode',
  'com.example.Noop',
] as const;

/** A className outside {@link CLASS_NAMES}: no handler is registered for it. */
export const UNREGISTERED_CLASS_NAME = 'com.example.Unregistered';

/**
 * Pools of list keys a scenario splits over; one pool is drawn per scenario. The last pool holds
 * names that `Object.prototype` also has, which a plain-object lookup would wrongly find.
 */
export const LIST_KEY_POOLS: readonly (readonly string[])[] = [
  ['host_ids', 'zone_ids'],
  ['host_ids', 'zone_ids', 'disk_ids'],
  ['host_ids', 'constructor', '__proto__'],
];

/**
 * Node keys that break code which keeps keys in plain objects (`Object.prototype` names) or
 * joins them with a separator (`\u0001`, graphlib's edge-id delimiter), plus integer-like keys,
 * which plain objects iterate out of insertion order.
 */
export const TRICKY_NODE_KEYS = [
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  '0',
  '1',
  '10',
  'x',
  'z',
  'x\u0001y',
  'y\u0001z',
] as const;

/** Node keys: mostly readable identifiers, sometimes {@link TRICKY_NODE_KEYS} or any text. */
export const nodeKeyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-z][a-z0-9_-]{0,7}$/) },
  { weight: 2, arbitrary: fc.constantFrom(...TRICKY_NODE_KEYS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }) },
);

/** Largest timeout the schema admits, derived here from setTimeout's 2^31−1 ms bound. */
const MAX_TIMEOUT = Math.floor((2 ** 31 - 1) / 1000);

/** Valid node timeouts in seconds: small integers mostly, any positive double up to the bound. */
export const timeoutArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 3600 }) },
  { weight: 2, arbitrary: fc.double({ min: Number.MIN_VALUE, max: MAX_TIMEOUT, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(MAX_TIMEOUT, Number.MIN_VALUE, 0.001) },
);

/** Timeouts every template must reject: zero, negative, non-finite, or past the bound. */
export const badTimeoutArb: fc.Arbitrary<number> = fc.constantFrom(
  0,
  -0,
  -1,
  -0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  MAX_TIMEOUT + 1,
  MAX_TIMEOUT + 0.5,
  Number.MAX_VALUE,
);

/** Valid retry policies (every field optional, `maxIntervalSeconds >= initialIntervalSeconds`). */
export const retryPolicyArb: fc.Arbitrary<RetryPolicy> = fc
  .record({
    maxAttempts: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    initial: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
    backoffCoefficient: fc.option(fc.constantFrom(1, 1.5, 2), { nil: undefined }),
    extra: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    nonRetryableCodes: fc.option(fc.array(fc.oneof(fc.integer(), fc.string()), { maxLength: 2 }), {
      nil: undefined,
    }),
  })
  .map((r) => ({
    ...(r.maxAttempts === undefined ? {} : { maxAttempts: r.maxAttempts }),
    ...(r.initial === undefined ? {} : { initialIntervalSeconds: r.initial }),
    ...(r.backoffCoefficient === undefined ? {} : { backoffCoefficient: r.backoffCoefficient }),
    ...(r.extra === undefined ? {} : { maxIntervalSeconds: (r.initial ?? 0) + r.extra }),
    ...(r.nonRetryableCodes === undefined ? {} : { nonRetryableCodes: r.nonRetryableCodes }),
  }));

/** Options of the template arbitraries. */
export interface TemplateArbOptions {
  /** Fewest nodes. @default 1 */
  readonly minNodes?: number;
  /** Most nodes. @default 12 */
  readonly maxNodes?: number;
  /** List keys split nodes use. @default LIST_KEY_POOLS[1] */
  readonly listKeys?: readonly string[];
  /** Node keys. @default nodeKeyArb */
  readonly nodeKey?: fc.Arbitrary<string>;
  /** Class names nodes use. @default CLASS_NAMES */
  readonly classNames?: readonly string[];
  /** Chance, 0..1, that a node is split. @default 0.4 */
  readonly splitRatio?: number;
}

function nodeArb(
  key: string,
  listKeys: readonly string[],
  classNames: readonly string[],
  splitRatio: number,
): fc.Arbitrary<TemplateNode> {
  const splitWeight = Math.round(splitRatio * 100);
  return fc
    .record({
      className: fc.constantFrom(...classNames),
      name: fc.string({ minLength: 1, maxLength: 12 }),
      description: fc.option(fc.string({ maxLength: 12 }), { nil: undefined, freq: 2 }),
      timeout: timeoutArb,
      retry: fc.option(retryPolicyArb, { nil: undefined, freq: 2 }),
      prohibitRollback: fc.option(fc.boolean(), { nil: undefined, freq: 2 }),
      split: fc.oneof(
        { weight: 100 - splitWeight, arbitrary: fc.constant(undefined) },
        {
          weight: splitWeight,
          arbitrary: fc.record({
            splitKey: fc.constantFrom(...listKeys),
            splitMethod: fc.constantFrom(undefined, 'PARALLEL' as const, 'SERIAL' as const),
          }),
        },
      ),
    })
    .map((n) => ({
      key,
      className: n.className,
      name: n.name,
      ...(n.description === undefined ? {} : { description: n.description }),
      timeout: n.timeout,
      ...(n.retry === undefined ? {} : { retry: n.retry }),
      ...(n.prohibitRollback === undefined ? {} : { prohibitRollback: n.prohibitRollback }),
      ...(n.split === undefined ? {} : { splitKey: n.split.splitKey }),
      ...(n.split?.splitMethod === undefined ? {} : { splitMethod: n.split.splitMethod }),
    }));
}

/** Two split nodes over different lists may not be joined directly (SPEC §3). */
function mayJoin(from: TemplateNode, to: TemplateNode): boolean {
  return from.splitKey === undefined || to.splitKey === undefined || from.splitKey === to.splitKey;
}

/**
 * Well-formed, acyclic templates: 1..12 nodes with unique keys, classNames from a small pool,
 * positive timeouts, some nodes split (some SERIAL) over one of the list keys, and a random
 * set of edges, without duplicates, that all go forward in a random node order (so the graph
 * is acyclic), listed in random order. Split→split edges only join nodes over the same list.
 */
export function validTemplateArb(options: TemplateArbOptions = {}): fc.Arbitrary<Template> {
  const listKeys = options.listKeys ?? LIST_KEY_POOLS[1] ?? [];
  const classNames = options.classNames ?? CLASS_NAMES;
  const splitRatio = options.splitRatio ?? 0.4;
  const keys = fc.uniqueArray(options.nodeKey ?? nodeKeyArb, {
    minLength: options.minNodes ?? 1,
    maxLength: options.maxNodes ?? 12,
  });
  return keys
    .chain((nodeKeys) =>
      fc.record({
        name: fc.string({ minLength: 1, maxLength: 16 }),
        description: fc.option(fc.string({ maxLength: 16 }), { nil: undefined, freq: 3 }),
        prohibitRollback: fc.option(fc.boolean(), { nil: undefined, freq: 3 }),
        concurrency: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined, freq: 3 }),
        nodes: fc.tuple(...nodeKeys.map((k) => nodeArb(k, listKeys, classNames, splitRatio))),
        rank: fc.shuffledSubarray(
          nodeKeys.map((_, i) => i),
          { minLength: nodeKeys.length, maxLength: nodeKeys.length },
        ),
      }),
    )
    .chain(({ rank, nodes, ...head }) => {
      const pairs: TemplateEdge[] = [];
      for (let i = 0; i < rank.length; i++) {
        for (let j = i + 1; j < rank.length; j++) {
          const from = nodes[rank[i] as number] as TemplateNode;
          const to = nodes[rank[j] as number] as TemplateNode;
          if (mayJoin(from, to)) pairs.push({ from: from.key, to: to.key });
        }
      }
      return fc.shuffledSubarray(pairs).map((edges): Template => ({
        name: head.name,
        ...(head.description === undefined ? {} : { description: head.description }),
        ...(head.prohibitRollback === undefined ? {} : { prohibitRollback: head.prohibitRollback }),
        ...(head.concurrency === undefined ? {} : { concurrency: head.concurrency }),
        nodes,
        edges,
      }));
    });
}

/**
 * One way to break a template. Node and edge positions are drawn as naturals and taken modulo
 * the template's size when applied, so a mutation fits any template.
 */
export type TemplateMutation =
  /** Adds the reverse of an existing edge: a two-node cycle. */
  | { readonly kind: 'reverse-edge'; readonly edge: number }
  /** Adds an edge between two nodes in either direction: a cycle when a path runs back. */
  | { readonly kind: 'random-edge'; readonly from: number; readonly to: number }
  /** Adds `a → a`. */
  | { readonly kind: 'self-edge'; readonly node: number }
  /** Splits two nodes over different lists and joins them. */
  | { readonly kind: 'cross-split-edge'; readonly from: number; readonly to: number }
  /** Points one end of an edge, or a new edge, at a key no node has. */
  | { readonly kind: 'unknown-node'; readonly node: number; readonly end: 'from' | 'to' }
  /** Gives a node the key of another node. */
  | { readonly kind: 'duplicate-key'; readonly node: number; readonly copyOf: number }
  /** Gives a node a timeout that must be rejected. */
  | { readonly kind: 'bad-timeout'; readonly node: number; readonly timeout: number }
  /** Repeats an existing edge. */
  | { readonly kind: 'duplicate-edge'; readonly edge: number }
  /** Sets a splitMethod on a node without a splitKey (or removes the splitKey). */
  | { readonly kind: 'method-without-key'; readonly node: number }
  /** Uses {@link UNREGISTERED_CLASS_NAME}: an error only when handlers are checked. */
  | { readonly kind: 'unregistered-class'; readonly node: number }
  /** Gives a node a retry policy whose max interval is below its initial interval. */
  | { readonly kind: 'bad-retry'; readonly node: number };

/** Any {@link TemplateMutation}. */
export const templateMutationArb: fc.Arbitrary<TemplateMutation> = fc.oneof(
  fc.record({ kind: fc.constant('reverse-edge' as const), edge: fc.nat() }),
  fc.record({ kind: fc.constant('random-edge' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant('self-edge' as const), node: fc.nat() }),
  fc.record({ kind: fc.constant('cross-split-edge' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({
    kind: fc.constant('unknown-node' as const),
    node: fc.nat(),
    end: fc.constantFrom('from' as const, 'to' as const),
  }),
  fc.record({ kind: fc.constant('duplicate-key' as const), node: fc.nat(), copyOf: fc.nat() }),
  fc.record({ kind: fc.constant('bad-timeout' as const), node: fc.nat(), timeout: badTimeoutArb }),
  fc.record({ kind: fc.constant('duplicate-edge' as const), edge: fc.nat() }),
  fc.record({ kind: fc.constant('method-without-key' as const), node: fc.nat() }),
  fc.record({ kind: fc.constant('unregistered-class' as const), node: fc.nat() }),
  fc.record({ kind: fc.constant('bad-retry' as const), node: fc.nat() }),
);

type MutableNode = { -readonly [K in keyof TemplateNode]: TemplateNode[K] };
type MutableEdge = { -readonly [K in keyof TemplateEdge]: TemplateEdge[K] };

/**
 * Applies mutations in order to a copy of `template`. `listKeys` must hold two keys for
 * `cross-split-edge` to have an effect.
 */
export function applyMutations(
  template: Template,
  mutations: readonly TemplateMutation[],
  listKeys: readonly string[],
): Template {
  const nodes: MutableNode[] = template.nodes.map((node) => ({ ...node }));
  const edges: MutableEdge[] = template.edges.map((edge) => ({ ...edge }));
  const nodeAt = (i: number) => nodes[i % nodes.length] as MutableNode;
  const ghost = () => {
    let key = 'ghost';
    while (nodes.some((node) => node.key === key)) key += '!';
    return key;
  };
  for (const m of mutations) {
    switch (m.kind) {
      case 'reverse-edge': {
        const edge = edges[m.edge % Math.max(edges.length, 1)];
        if (edge) edges.push({ from: edge.to, to: edge.from });
        break;
      }
      case 'random-edge':
        edges.push({ from: nodeAt(m.from).key, to: nodeAt(m.to).key });
        break;
      case 'self-edge': {
        const key = nodeAt(m.node).key;
        edges.push({ from: key, to: key });
        break;
      }
      case 'cross-split-edge': {
        const [first, second] = listKeys;
        const from = nodeAt(m.from);
        const to = nodeAt(m.to);
        if (first === undefined || second === undefined || from === to) break;
        from.splitKey = first;
        to.splitKey = second;
        edges.push({ from: from.key, to: to.key });
        break;
      }
      case 'unknown-node': {
        const edge = edges[m.node % Math.max(edges.length, 1)];
        const key = nodeAt(m.node).key;
        if (edge && m.node % 2 === 0) edge[m.end] = ghost();
        else edges.push(m.end === 'from' ? { from: ghost(), to: key } : { from: key, to: ghost() });
        break;
      }
      case 'duplicate-key':
        nodeAt(m.node).key = nodeAt(m.copyOf).key;
        break;
      case 'bad-timeout':
        nodeAt(m.node).timeout = m.timeout;
        break;
      case 'duplicate-edge': {
        const edge = edges[m.edge % Math.max(edges.length, 1)];
        if (edge) edges.splice(m.edge % edges.length, 0, { ...edge });
        break;
      }
      case 'method-without-key': {
        const node = nodeAt(m.node);
        delete node.splitKey;
        node.splitMethod = 'SERIAL';
        break;
      }
      case 'unregistered-class':
        nodeAt(m.node).className = UNREGISTERED_CLASS_NAME;
        break;
      case 'bad-retry':
        nodeAt(m.node).retry = { initialIntervalSeconds: 10, maxIntervalSeconds: 5 };
        break;
    }
  }
  return { ...template, nodes, edges };
}

/**
 * Templates that are often, but not always, broken: a {@link validTemplateArb} value with zero
 * to three {@link TemplateMutation}s applied (none about 40% of the time).
 */
export function anyTemplateArb(options: TemplateArbOptions = {}): fc.Arbitrary<Template> {
  const listKeys = options.listKeys ?? LIST_KEY_POOLS[1] ?? [];
  return fc
    .tuple(
      validTemplateArb(options),
      fc.oneof(
        { weight: 2, arbitrary: fc.constant([]) },
        { weight: 3, arbitrary: fc.array(templateMutationArb, { minLength: 1, maxLength: 3 }) },
      ),
    )
    .map(([template, mutations]) => applyMutations(template, mutations, listKeys));
}

/** Options of {@link taskArgumentsArb}. */
export interface TaskArgumentsArbOptions {
  /** Shortest list. @default 0 */
  readonly minListLength?: number;
  /** Longest list. @default 6 */
  readonly maxListLength?: number;
  /** Whether a list key may be left out of `listMap` (or `listMap`, or the arguments). @default true */
  readonly mayOmit?: boolean;
  /** Whether the arguments may be malformed (a non-array list, a bad `prohibit_rollback`). @default false */
  readonly mayBeMalformed?: boolean;
}

/** Well-formed `stringMap`s: sometimes `host_id`, `prohibit_rollback`, another string. */
export const stringMapArb: fc.Arbitrary<Record<string, string>> = fc
  .record({
    host_id: fc.option(fc.oneof(fc.integer({ min: 1, max: 9999 }).map(String), fc.string()), {
      nil: undefined,
      freq: 2,
    }),
    prohibit_rollback: fc.option(fc.constantFrom('true', 'false'), { nil: undefined, freq: 2 }),
    cluster: fc.option(fc.string(), { nil: undefined, freq: 2 }),
  })
  .map((r) =>
    Object.fromEntries(Object.entries(r).filter((entry) => entry[1] !== undefined)),
  ) as fc.Arbitrary<Record<string, string>>;

/**
 * Task arguments with one list per key in `listKeys`, each 0..6 strings long; lists, the
 * `listMap`, or the arguments themselves may be missing. `listMap` is built with
 * `Object.fromEntries`, so a key like `__proto__` is an own property, as `JSON.parse` makes it.
 */
export function taskArgumentsArb(
  listKeys: readonly string[],
  options: TaskArgumentsArbOptions = {},
): fc.Arbitrary<TaskArguments | undefined> {
  const minLength = options.minListLength ?? 0;
  const maxLength = options.maxListLength ?? 6;
  const mayOmit = options.mayOmit ?? true;
  const item = fc.oneof(fc.integer({ min: 1, max: 9999 }).map(String), fc.string());
  const list = fc.array(item, { minLength, maxLength });
  const entry = mayOmit ? fc.option(list, { nil: undefined, freq: 4 }) : list;
  const listMap = fc
    .tuple(...listKeys.map((key) => entry.map((value) => [key, value] as const)))
    .map((entries) => Object.fromEntries(entries.filter(([, value]) => value !== undefined)));
  const wellFormed = fc
    .record({
      stringMap: fc.option(stringMapArb, { nil: undefined, freq: 2 }),
      listMap: mayOmit ? fc.option(listMap, { nil: undefined, freq: 8 }) : listMap,
    })
    .map((r): TaskArguments => ({
      ...(r.stringMap === undefined ? {} : { stringMap: r.stringMap }),
      ...(r.listMap === undefined ? {} : { listMap: r.listMap as Record<string, string[]> }),
    }));
  const args = mayOmit ? fc.option(wellFormed, { nil: undefined, freq: 10 }) : wellFormed;
  if (!(options.mayBeMalformed ?? false)) return args;
  const malformed = wellFormed.chain((good) =>
    fc.constantFrom<TaskArguments>(
      { ...good, stringMap: { ...good.stringMap, prohibit_rollback: 'yes' } },
      { ...good, listMap: { ...good.listMap, host_ids: 'h1' as unknown as string[] } },
      { ...good, listMap: { ...good.listMap, host_ids: [1] as unknown as string[] } },
      { ...good, stringMap: { ...good.stringMap, host_id: 2 as unknown as string } },
      { ...good, hostIds: ['1'] } as TaskArguments,
    ),
  );
  return fc.oneof({ weight: 12, arbitrary: args }, { weight: 1, arbitrary: malformed });
}

/** A template, the arguments of a task of it, and the registered handlers, if checked. */
export interface TemplateScenario {
  /** The template, possibly broken. */
  readonly template: Template;
  /** The task arguments. */
  readonly args: TaskArguments | undefined;
  /** The list keys the template and arguments draw from. */
  readonly listKeys: readonly string[];
  /** When set, validation is given `hasHandler` answering for exactly these class names. */
  readonly registeredClassNames?: readonly string[];
}

/** Options of the scenario arbitraries. */
export type ScenarioArbOptions = Omit<TemplateArbOptions, 'listKeys'> & {
  /** Pools of list keys; one is drawn per scenario. @default LIST_KEY_POOLS */
  readonly listKeyPools?: readonly (readonly string[])[];
};

/**
 * Scenarios that expand: a {@link validTemplateArb} template and arguments with every list
 * 1..6 long. Handlers, when checked, cover every class name.
 */
export function validScenarioArb(options: ScenarioArbOptions = {}): fc.Arbitrary<TemplateScenario> {
  const pools = options.listKeyPools ?? LIST_KEY_POOLS;
  return fc.constantFrom(...pools).chain((listKeys) =>
    fc
      .record({
        template: validTemplateArb({ ...options, listKeys }),
        args: taskArgumentsArb(listKeys, { minListLength: 1, mayOmit: false }),
        checkHandlers: fc.boolean(),
      })
      .map(({ template, args, checkHandlers }) => ({
        template,
        args,
        listKeys,
        ...(checkHandlers ? { registeredClassNames: options.classNames ?? CLASS_NAMES } : {}),
      })),
  );
}

/**
 * Scenarios of every kind: an {@link anyTemplateArb} template, arguments whose lists may be
 * empty, missing or (rarely) malformed, and sometimes a handler check.
 */
export function anyScenarioArb(options: ScenarioArbOptions = {}): fc.Arbitrary<TemplateScenario> {
  const pools = options.listKeyPools ?? LIST_KEY_POOLS;
  return fc.constantFrom(...pools).chain((listKeys) =>
    fc
      .record({
        template: anyTemplateArb({ ...options, listKeys }),
        args: taskArgumentsArb(listKeys, { mayBeMalformed: true }),
        checkHandlers: fc.boolean(),
      })
      .map(({ template, args, checkHandlers }) => ({
        template,
        args,
        listKeys,
        ...(checkHandlers ? { registeredClassNames: options.classNames ?? CLASS_NAMES } : {}),
      })),
  );
}
