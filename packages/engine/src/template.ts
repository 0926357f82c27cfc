import type { SplitMethod } from './status.js';

/**
 * How a node retries a failed attempt. Intervals are in seconds, like node timeouts.
 * The delay before attempt n+1 is `min(initialIntervalSeconds * backoffCoefficient^(n-1),
 * maxIntervalSeconds)`.
 */
export interface RetryPolicy {
  /** Executions allowed in all, the first one included. @default 1 (no retry) */
  readonly maxAttempts?: number;
  /** Delay before the first retry, in seconds. @default 1 */
  readonly initialIntervalSeconds?: number;
  /** Factor applied to the delay after each retry; at least 1. @default 2 */
  readonly backoffCoefficient?: number;
  /** Upper bound of the delay, in seconds. @default 100 × initialIntervalSeconds */
  readonly maxIntervalSeconds?: number;
  /** Error codes that are never retried. @default [] */
  readonly nonRetryableCodes?: readonly (string | number)[];
}

/** One step of a template. Its handler is named by `className`. */
export interface TemplateNode {
  /** Unique within the template; edges refer to it. */
  readonly key: string;
  /** The handler that runs the node, e.g. `com.alipay.ocp.service.task.business.WaitNode`. */
  readonly className: string;
  /** Human name, shown as the subtask's `name`. */
  readonly name: string;
  /** Shown as the subtask's `description`. @default name */
  readonly description?: string;
  /** Bound on one attempt, in seconds (start to close). At most 2,147,483 (setTimeout's range). */
  readonly timeout: number;
  /** Retry policy; overrides the handler's default. */
  readonly retry?: RetryPolicy;
  /** When true, a task that ran this node cannot be rolled back. @default false */
  readonly prohibitRollback?: boolean;
  /** Split the node into one copy per element of `listMap[splitKey]`. */
  readonly splitKey?: string;
  /** How the copies of a split node relate; only with `splitKey`. @default 'PARALLEL' */
  readonly splitMethod?: SplitMethod;
}

/** A dependency: `to` starts only after `from` succeeded. */
export interface TemplateEdge {
  /** Key of the upstream node. */
  readonly from: string;
  /** Key of the downstream node. */
  readonly to: string;
}

/**
 * A task definition as pure, JSON-serialisable data.
 *
 * @example
 * const template: Template = {
 *   name: 'Stop OCP agent',
 *   nodes: [{ key: 'prepare', className: 'x.Prepare', name: 'Prepare', timeout: 60 }],
 *   edges: [],
 * };
 */
export interface Template {
  /** The task's name. */
  readonly name: string;
  /** Free text for people. */
  readonly description?: string;
  /** When true, tasks of this template can never be rolled back. @default false */
  readonly prohibitRollback?: boolean;
  /** At most this many subtasks of one task READY or RUNNING at once. @default 10 */
  readonly concurrency?: number;
  /**
   * When true, a task that fails (not one that is canceled) is rolled back at once, saga style,
   * unless rollback is prohibited. @default false, as in OCP
   */
  readonly autoRollback?: boolean;
  /** The steps. */
  readonly nodes: readonly TemplateNode[];
  /** The dependencies between steps. */
  readonly edges: readonly TemplateEdge[];
}

/** Default of {@link Template.concurrency}, as in OCP. */
export const DEFAULT_TASK_CONCURRENCY = 10;

/** Largest node timeout in seconds: setTimeout cannot wait longer than 2^31−1 ms. */
export const MAX_TIMEOUT_SECONDS = 2_147_483;

/**
 * Most nodes in one template. Templates are small (OCP's have a handful of nodes; fan-out comes
 * from splits); the cap keeps graphlib's recursive algorithms far from the stack limit.
 */
export const MAX_TEMPLATE_NODES = 1_000;

/** Most edges in one template. */
export const MAX_TEMPLATE_EDGES = 10_000;
