import { Ajv, type ValidateFunction } from 'ajv';
import { Graph, alg } from '@dagrejs/graphlib';
import { DagCycleError, TemplateValidationError, type ValidationIssue } from './errors.js';
import { schemaIssues } from './internal/schema-issues.js';
import type { Template, TemplateNode } from './template.js';
import { templateJsonSchema } from './template-schema.js';

declare const validatedBrand: unique symbol;

/**
 * A template that passed {@link validateTemplate}: a private deep copy of the input (later
 * changes to the caller's object do not reach it) with its nodes in topological order.
 */
export interface ValidatedTemplate {
  /** The template, as validated. */
  readonly template: Template;
  /** Every node, upstreams before downstreams; the same order for the same template. */
  readonly order: readonly TemplateNode[];
  readonly [validatedBrand]: true;
}

/** Options of {@link validateTemplate}. */
export interface ValidateTemplateOptions {
  /** When given, a node whose className is not in it is an error (no handler to run it). */
  readonly hasHandler?: (className: string) => boolean;
}

let compiled: ValidateFunction | undefined;
function schemaValidator(): ValidateFunction {
  compiled ??= new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(
    templateJsonSchema,
  );
  return compiled;
}

function templateLabel(input: unknown): string {
  const name = (input as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? JSON.stringify(name) : '(unnamed)';
}

function nodePath(index: number, node: TemplateNode): string {
  return `nodes[${index}] (${JSON.stringify(node.key)})`;
}

/** Checks that need the whole document: references, uniqueness, numbers, split keys. */
function graphIssues(template: Template, hasHandler?: (className: string) => boolean) {
  const issues: ValidationIssue[] = [];
  const byKey = new Map<string, TemplateNode>();
  template.nodes.forEach((node, i) => {
    const at = nodePath(i, node);
    if (byKey.has(node.key)) {
      issues.push({
        path: `${at}.key`,
        message: 'duplicates an earlier node key',
        value: node.key,
      });
    } else {
      byKey.set(node.key, node);
    }
    if (node.splitMethod !== undefined && node.splitKey === undefined) {
      issues.push({
        path: `${at}.splitMethod`,
        message: 'needs a splitKey',
        value: node.splitMethod,
      });
    }
    const retry = node.retry;
    if (retry) {
      const { initialIntervalSeconds: initial, maxIntervalSeconds: max } = retry;
      if (initial !== undefined && max !== undefined && max < initial) {
        issues.push({
          path: `${at}.retry.maxIntervalSeconds`,
          message: `must be >= initialIntervalSeconds (${initial})`,
          value: max,
        });
      }
    }
    if (hasHandler && !hasHandler(node.className)) {
      issues.push({
        path: `${at}.className`,
        message: 'has no registered handler',
        value: node.className,
      });
    }
  });
  const seen = new Set<string>();
  template.edges.forEach((edge, i) => {
    const at = `edges[${i}]`;
    const from = byKey.get(edge.from);
    const to = byKey.get(edge.to);
    if (!from) issues.push({ path: `${at}.from`, message: 'names no node', value: edge.from });
    if (!to) issues.push({ path: `${at}.to`, message: 'names no node', value: edge.to });
    const id = JSON.stringify([edge.from, edge.to]);
    if (seen.has(id)) {
      issues.push({ path: at, message: 'duplicates an earlier edge', value: edge });
    }
    seen.add(id);
    if (
      from?.splitKey !== undefined &&
      to?.splitKey !== undefined &&
      from.splitKey !== to.splitKey
    ) {
      issues.push({
        path: at,
        message:
          `joins nodes split over different lists (${JSON.stringify(from.splitKey)} and ` +
          `${JSON.stringify(to.splitKey)}); insert a barrier node between them`,
        value: edge,
      });
    }
  });
  return issues;
}

/**
 * The template as a graphlib graph. Nodes are named by their index, never by their key:
 * graphlib keeps nodes in plain objects, where a key such as `__proto__` or `constructor`
 * would meet `Object.prototype`.
 */
function toGraph(template: Template): Graph {
  const index = new Map(template.nodes.map((node, i) => [node.key, String(i)]));
  const graph = new Graph({ directed: true });
  template.nodes.forEach((_, i) => graph.setNode(String(i)));
  for (const edge of template.edges) {
    graph.setEdge(index.get(edge.from) as string, index.get(edge.to) as string);
  }
  return graph;
}

/** Walks inside one strongly connected component to produce an ordered cycle path. */
function cyclePath(graph: Graph, component: readonly string[]): string[] {
  const members = new Set(component);
  const start = component[0] as string;
  if ((graph.successors(start) ?? []).includes(start)) return [start, start];
  const path: string[] = [start];
  const seen = new Map<string, number>([[start, 0]]);
  // In a strongly connected component every node has a successor inside it, so this walk
  // must revisit a node; the part from that node's first visit on is a cycle.
  for (;;) {
    const current = path[path.length - 1] as string;
    const next = (graph.successors(current) ?? []).find((n) => members.has(n)) as string;
    const at = seen.get(next);
    if (at !== undefined) return [...path.slice(at), next];
    seen.set(next, path.length);
    path.push(next);
  }
}

/**
 * Validates a template: the JSON Schema first, then the graph rules (unique keys, known edge
 * ends, finite numbers, split compatibility, acyclicity, optionally a handler per className).
 * Throws {@link TemplateValidationError} listing every problem, or {@link DagCycleError} with
 * the cycle's node path. Graph work uses graphlib on the template, which has at most
 * MAX_TEMPLATE_NODES nodes; expansion never builds a graph.
 */
export function validateTemplate(
  input: unknown,
  options: ValidateTemplateOptions = {},
): ValidatedTemplate {
  const validate = schemaValidator();
  // Validate and keep a private copy. structuredClone keeps own enumerable data only, so a
  // getter, a proxy or a non-enumerable field cannot pass the check and then go missing.
  let copy: unknown;
  try {
    copy = structuredClone(input);
  } catch {
    // Functions, symbols, proxies: name the field when the schema can.
    const label = templateLabel(input);
    if (!validate(input)) {
      throw new TemplateValidationError(label, schemaIssues(input, validate.errors ?? [], ''));
    }
    const issue = { path: '(root)', message: 'must be plain JSON data', value: input };
    throw new TemplateValidationError(label, [issue]);
  }
  const label = templateLabel(copy);
  if (!validate(copy)) {
    throw new TemplateValidationError(label, schemaIssues(copy, validate.errors ?? [], ''));
  }
  const template = copy as Template;
  const issues = graphIssues(template, options.hasHandler);
  if (issues.length > 0) throw new TemplateValidationError(label, issues);

  // graphlib recurses; the schema's cap on nodes (MAX_TEMPLATE_NODES) keeps it far from the
  // stack limit (PERF-NOTES: ~5,000 nodes).
  const graph = toGraph(template);
  const nodeAt = (id: string) => template.nodes[Number(id)] as TemplateNode;
  if (!alg.isAcyclic(graph)) {
    const [component] = alg.findCycles(graph);
    throw new DagCycleError(
      label,
      cyclePath(graph, component ?? []).map((id) => nodeAt(id).key),
    );
  }
  const order = alg.topsort(graph).map(nodeAt);
  return { template, order } as unknown as ValidatedTemplate;
}
