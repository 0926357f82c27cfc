/**
 * An independent model of SPEC §3 for property tests: what validation and expansion must do
 * with a template and arguments, computed from the rules directly, without calling the engine
 * (no schema, no graph library, no expansion code). Keys live in `Map`s and `Set`s, and list
 * arguments are read as own properties only.
 */
import type { TaskArguments } from '../task-arguments.js';
import type { Template, TemplateNode } from '../template.js';

/** Largest node timeout in seconds: setTimeout cannot wait more than 2^31−1 ms. */
const MAX_TIMEOUT = Math.floor((2 ** 31 - 1) / 1000);

/** What validating and expanding a scenario must give. */
export type ExpectedOutcome =
  /** Expansion succeeds; `sizes` is the number of copies of each node. */
  | { readonly kind: 'expands'; readonly sizes: ReadonlyMap<string, number> }
  /** `TemplateValidationError`, code 20010; `reasons` says why, for failure messages. */
  | { readonly kind: 'invalid-template'; readonly reasons: readonly string[] }
  /** `DagCycleError`, code 20001. */
  | { readonly kind: 'cycle'; readonly cycle: readonly string[] }
  /** `TaskArgumentsError`, code 20011. */
  | { readonly kind: 'invalid-arguments'; readonly reasons: readonly string[] };

const isNonEmptyString = (value: unknown): boolean => typeof value === 'string' && value !== '';
const isFiniteNumber = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value);

function retryViolations(at: string, retry: TemplateNode['retry']): string[] {
  if (retry === undefined) return [];
  const out: string[] = [];
  const { maxAttempts, initialIntervalSeconds: initial, maxIntervalSeconds: max } = retry;
  if (maxAttempts !== undefined && !(Number.isInteger(maxAttempts) && maxAttempts >= 1))
    out.push(`${at}: maxAttempts ${maxAttempts}`);
  if (initial !== undefined && !(isFiniteNumber(initial) && initial >= 0))
    out.push(`${at}: initialIntervalSeconds ${initial}`);
  if (max !== undefined && !(isFiniteNumber(max) && max >= 0))
    out.push(`${at}: maxIntervalSeconds ${max}`);
  const coefficient = retry.backoffCoefficient;
  if (coefficient !== undefined && !(isFiniteNumber(coefficient) && coefficient >= 1))
    out.push(`${at}: backoffCoefficient ${coefficient}`);
  if (initial !== undefined && max !== undefined && max < initial)
    out.push(`${at}: maxIntervalSeconds below initialIntervalSeconds`);
  return out;
}

/**
 * Every rule of the template that does not need the graph's shape: well-formed fields, unique
 * keys, known edge ends, no duplicate edges, no split→split edge over different lists, and,
 * when `registeredClassNames` is given, a handler for every className. Empty when none fails.
 */
export function templateRuleViolations(
  template: Template,
  registeredClassNames?: readonly string[],
): string[] {
  const out: string[] = [];
  if (!isNonEmptyString(template.name)) out.push('template name empty');
  const { concurrency } = template;
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1))
    out.push(`concurrency ${concurrency}`);
  if (template.nodes.length === 0) out.push('no nodes');
  const byKey = new Map<string, TemplateNode>();
  template.nodes.forEach((node, i) => {
    const at = `nodes[${i}]`;
    if (!isNonEmptyString(node.key)) out.push(`${at}: empty key`);
    if (byKey.has(node.key)) out.push(`${at}: duplicate key ${JSON.stringify(node.key)}`);
    else byKey.set(node.key, node);
    if (!isNonEmptyString(node.className)) out.push(`${at}: empty className`);
    if (!isNonEmptyString(node.name)) out.push(`${at}: empty name`);
    const t = node.timeout;
    if (!(isFiniteNumber(t) && t > 0 && t <= MAX_TIMEOUT)) out.push(`${at}: timeout ${t}`);
    if (node.splitKey !== undefined && !isNonEmptyString(node.splitKey))
      out.push(`${at}: empty splitKey`);
    if (node.splitMethod !== undefined) {
      if (node.splitMethod !== 'PARALLEL' && node.splitMethod !== 'SERIAL')
        out.push(`${at}: splitMethod ${String(node.splitMethod)}`);
      if (node.splitKey === undefined) out.push(`${at}: splitMethod without splitKey`);
    }
    out.push(...retryViolations(`${at}.retry`, node.retry));
    if (registeredClassNames && !registeredClassNames.includes(node.className))
      out.push(`${at}: no handler for ${node.className}`);
  });
  const seen = new Set<string>();
  template.edges.forEach((edge, i) => {
    const at = `edges[${i}]`;
    const from = byKey.get(edge.from);
    const to = byKey.get(edge.to);
    if (!from) out.push(`${at}: unknown from ${JSON.stringify(edge.from)}`);
    if (!to) out.push(`${at}: unknown to ${JSON.stringify(edge.to)}`);
    const id = JSON.stringify([edge.from, edge.to]);
    if (seen.has(id)) out.push(`${at}: duplicate edge`);
    seen.add(id);
    if (from?.splitKey !== undefined && to?.splitKey !== undefined)
      if (from.splitKey !== to.splitKey) out.push(`${at}: split over different lists`);
  });
  return out;
}

/** Successor keys of every node key, from the template's edges (in edge order). */
export function successorMap(template: Template): Map<string, string[]> {
  const next = new Map<string, string[]>(template.nodes.map((node) => [node.key, []]));
  for (const edge of template.edges) {
    const list = next.get(edge.from);
    if (list) list.push(edge.to);
    else next.set(edge.from, [edge.to]);
  }
  return next;
}

/**
 * A cycle of the template's graph as a key path with the first key repeated at the end
 * (`['a', 'b', 'a']`, or `['a', 'a']` for a self edge), or undefined when it is acyclic.
 * Iterative three-colour depth-first search.
 */
export function findTemplateCycle(template: Template): string[] | undefined {
  const next = successorMap(template);
  const state = new Map<string, 'open' | 'done'>();
  for (const root of next.keys()) {
    if (state.has(root)) continue;
    const path: string[] = [root];
    const cursor: number[] = [0];
    state.set(root, 'open');
    while (path.length > 0) {
      const key = path[path.length - 1] as string;
      const successors = next.get(key) ?? [];
      const i = cursor[cursor.length - 1] as number;
      if (i >= successors.length) {
        state.set(key, 'done');
        path.pop();
        cursor.pop();
        continue;
      }
      cursor[cursor.length - 1] = i + 1;
      const succ = successors[i] as string;
      const seen = state.get(succ);
      if (seen === 'open') return [...path.slice(path.lastIndexOf(succ)), succ];
      if (seen === undefined) {
        state.set(succ, 'open');
        path.push(succ);
        cursor.push(0);
      }
    }
  }
  return undefined;
}

/** Whether `path` is a cycle of the template: first key repeated last, each step an edge. */
export function isTemplateCycle(template: Template, path: readonly string[]): boolean {
  if (path.length < 2 || path[0] !== path[path.length - 1]) return false;
  const edges = new Set(template.edges.map((edge) => JSON.stringify([edge.from, edge.to])));
  for (let i = 0; i + 1 < path.length; i++) {
    if (!edges.has(JSON.stringify([path[i], path[i + 1]]))) return false;
  }
  return true;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** What is wrong with the arguments' shape (before any list is looked up). */
export function argumentViolations(args: unknown): string[] {
  if (args === undefined) return [];
  if (!isRecord(args)) return ['arguments not an object'];
  const out: string[] = [];
  for (const field of Object.keys(args)) {
    if (field !== 'stringMap' && field !== 'listMap') out.push(`unknown field ${field}`);
  }
  const { stringMap, listMap } = args;
  if (stringMap !== undefined) {
    if (!isRecord(stringMap)) out.push('stringMap not an object');
    else {
      for (const [key, value] of Object.entries(stringMap))
        if (typeof value !== 'string') out.push(`stringMap.${key} not a string`);
      const prohibit = Object.hasOwn(stringMap, 'prohibit_rollback')
        ? stringMap['prohibit_rollback']
        : undefined;
      if (prohibit !== undefined && prohibit !== 'true' && prohibit !== 'false')
        out.push('prohibit_rollback not "true"/"false"');
    }
  }
  if (listMap !== undefined) {
    if (!isRecord(listMap)) out.push('listMap not an object');
    else {
      for (const [key, value] of Object.entries(listMap))
        if (!Array.isArray(value) || value.some((item) => typeof item !== 'string'))
          out.push(`listMap.${key} not a list of strings`);
    }
  }
  return out;
}

/** The list `listMap[key]` as an own property of the arguments, or undefined. */
export function listArgument(args: TaskArguments | undefined, key: string): unknown {
  const listMap = args?.listMap;
  return listMap !== undefined && Object.hasOwn(listMap, key) ? listMap[key] : undefined;
}

/**
 * The outcome SPEC §3 prescribes for validating `template` (with a handler check when
 * `registeredClassNames` is given) and then expanding it with `args`. Rule violations win
 * over a cycle, because a graph with unknown or duplicate nodes has no well-defined cycles;
 * template problems win over argument problems, because validation runs first.
 */
export function expectedOutcome(scenario: {
  readonly template: Template;
  readonly args: TaskArguments | undefined;
  readonly registeredClassNames?: readonly string[];
}): ExpectedOutcome {
  const { template, args } = scenario;
  const reasons = templateRuleViolations(template, scenario.registeredClassNames);
  if (reasons.length > 0) return { kind: 'invalid-template', reasons };
  const cycle = findTemplateCycle(template);
  if (cycle) return { kind: 'cycle', cycle };
  const argReasons = argumentViolations(args);
  if (argReasons.length > 0) return { kind: 'invalid-arguments', reasons: argReasons };
  const sizes = new Map<string, number>();
  for (const node of template.nodes) {
    if (node.splitKey === undefined) {
      sizes.set(node.key, 1);
      continue;
    }
    const list = listArgument(args, node.splitKey);
    if (!Array.isArray(list)) argReasons.push(`list ${JSON.stringify(node.splitKey)} missing`);
    else if (list.length === 0) argReasons.push(`list ${JSON.stringify(node.splitKey)} empty`);
    else sizes.set(node.key, list.length);
  }
  if (argReasons.length > 0) return { kind: 'invalid-arguments', reasons: argReasons };
  return { kind: 'expands', sizes };
}

/** A subtask's identity independent of ids: its node key and branch index. */
export function subtaskLabel(nodeKey: string, parallelIdx: number): string {
  return JSON.stringify([nodeKey, parallelIdx]);
}

/** One dependency between two subtask labels. */
export function edgeLabel(from: string, to: string): string {
  return `${from} -> ${to}`;
}

/** The subtasks SPEC §3 prescribes: one per plain node (index -1), one per list element. */
export function expectedSubtaskLabels(
  template: Template,
  sizes: ReadonlyMap<string, number>,
): string[] {
  const out: string[] = [];
  for (const node of template.nodes) {
    if (node.splitKey === undefined) out.push(subtaskLabel(node.key, -1));
    else for (let i = 0; i < (sizes.get(node.key) ?? 0); i++) out.push(subtaskLabel(node.key, i));
  }
  return out;
}

/**
 * Every dependency SPEC §3 prescribes between subtasks, as {@link edgeLabel}s: plain→plain
 * 1:1; plain→split to every copy (a SERIAL target is entered at copy 0 only); split→plain from
 * every copy (a SERIAL source is left from its last copy only); split→split over the same list
 * copy i → copy i; and a SERIAL split's chain, copy i → copy i+1.
 */
export function expectedEdgeLabels(
  template: Template,
  sizes: ReadonlyMap<string, number>,
): Set<string> {
  const byKey = new Map(template.nodes.map((node) => [node.key, node]));
  const out = new Set<string>();
  const add = (a: string, i: number, b: string, j: number) =>
    out.add(edgeLabel(subtaskLabel(a, i), subtaskLabel(b, j)));
  const copies = (key: string) => sizes.get(key) ?? 0;
  for (const { from, to } of template.edges) {
    const a = byKey.get(from) as TemplateNode;
    const b = byKey.get(to) as TemplateNode;
    const aSplit = a.splitKey !== undefined;
    const bSplit = b.splitKey !== undefined;
    if (aSplit && bSplit) {
      for (let i = 0; i < copies(from); i++) add(from, i, to, i);
    } else if (bSplit) {
      if (b.splitMethod === 'SERIAL') add(from, -1, to, 0);
      else for (let j = 0; j < copies(to); j++) add(from, -1, to, j);
    } else if (aSplit) {
      if (a.splitMethod === 'SERIAL') add(from, copies(from) - 1, to, -1);
      else for (let i = 0; i < copies(from); i++) add(from, i, to, -1);
    } else {
      add(from, -1, to, -1);
    }
  }
  for (const node of template.nodes) {
    if (node.splitKey === undefined || node.splitMethod !== 'SERIAL') continue;
    for (let i = 1; i < copies(node.key); i++) add(node.key, i - 1, node.key, i);
  }
  return out;
}
