import { describeValue } from './internal/describe-value.js';

/**
 * Error codes. 20000–20004 are OCP's task-engine codes; the rest are dagops' own, in the
 * same range so that one number identifies one failure everywhere (logs, HTTP, events).
 */
export const ErrorCode = {
  /** Unknown task or subtask (OCP 20000). */
  TASK_NOT_FOUND: 20000,
  /** The template's graph has a cycle (OCP 20001). */
  TASK_DAG_CYCLE: 20001,
  /** Two upstream outputs disagree on a context key (OCP 20002). */
  TASK_CONTEXT_ERROR: 20002,
  /** The operation is illegal in the current state (OCP 20003). */
  TASK_STATE_INVALID: 20003,
  /** Rollback refused because the template or an executed node prohibits it (OCP 20004). */
  TASK_PROHIBIT_ROLLBACK: 20004,
  /** The template is malformed: wrong types, missing or unknown fields, bad references. */
  TEMPLATE_INVALID: 20010,
  /** The task arguments are malformed, or a split list is missing or empty. */
  TASK_ARGUMENTS_INVALID: 20011,
  /** No handler is registered for a node's className. */
  HANDLER_NOT_FOUND: 20012,
  /** An attempt outlived its node's `timeout`. */
  ATTEMPT_TIMEOUT: 20020,
  /** An attempt was canceled. */
  ATTEMPT_CANCELED: 20021,
  /** An attempt's lease expired before it finished (another engine may run it again). */
  ATTEMPT_LEASE_LOST: 20022,
  /** Engine options are malformed. */
  OPTIONS_INVALID: 20030,
  /** A host agent could not carry out an action (spawn, signal, an injected fault). */
  AGENT_OPERATION_FAILED: 20040,
} as const;
/** One of the {@link ErrorCode} values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** One problem found while validating input: where, what, and the value received. */
export interface ValidationIssue {
  /** Where the problem is, e.g. `nodes[2] ("stop").timeout`. */
  readonly path: string;
  /** What is wrong, e.g. `must be > 0`. */
  readonly message: string;
  /** The offending value, as received. */
  readonly value: unknown;
}

/** Options common to every {@link DagopsError}. */
export interface DagopsErrorOptions {
  /** The error that caused this one. */
  readonly cause?: unknown;
  /** What the error is about (a node key, a subtask id, a field path). */
  readonly target?: string;
  /** When true, a retry policy never retries this failure. */
  readonly nonRetryable?: boolean;
}

/**
 * The base of every error dagops throws: a numeric {@link ErrorCode}, an optional `target`,
 * and the preserved `cause`.
 */
export class DagopsError extends Error {
  override name = 'DagopsError';
  /** Machine-readable code. */
  readonly code: ErrorCode;
  /** What the error is about, when there is one thing to name. */
  readonly target: string | undefined;
  /** When true, a retry policy never retries this failure. */
  readonly nonRetryable: boolean;

  constructor(code: ErrorCode, message: string, options: DagopsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.target = options.target;
    this.nonRetryable = options.nonRetryable ?? false;
  }
}

function summarize(subject: string, issues: readonly ValidationIssue[]): string {
  const [first] = issues;
  if (first === undefined) return `${subject} is invalid`;
  const head = `${subject}: ${formatIssue(first)}`;
  return issues.length === 1 ? head : `${head} (and ${issues.length - 1} more problem(s))`;
}

/** Renders one issue as `path must …, got VALUE`. */
export function formatIssue(issue: ValidationIssue): string {
  return `${issue.path} ${issue.message}, got ${describeValue(issue.value)}`;
}

/** A template that is not well-formed; `issues` lists every problem found. */
export class TemplateValidationError extends DagopsError {
  override name = 'TemplateValidationError';
  /** Every problem found, in document order. */
  readonly issues: readonly ValidationIssue[];

  constructor(templateName: string, issues: readonly ValidationIssue[]) {
    super(ErrorCode.TEMPLATE_INVALID, summarize(`invalid template ${templateName}`, issues), {
      nonRetryable: true,
      ...(issues[0] ? { target: issues[0].path } : {}),
    });
    this.issues = issues;
  }
}

/** The template's graph has a cycle; `cycle` is the node path, first node repeated at the end. */
export class DagCycleError extends DagopsError {
  override name = 'DagCycleError';
  /** The node keys along the cycle, e.g. `['a', 'b', 'a']`. */
  readonly cycle: readonly string[];

  constructor(templateName: string, cycle: readonly string[]) {
    super(
      ErrorCode.TASK_DAG_CYCLE,
      `invalid template ${templateName}: the graph has a cycle: ${cycle.join(' -> ')}`,
      { nonRetryable: true, target: cycle[0] ?? '' },
    );
    this.cycle = cycle;
  }
}

/** Task arguments that do not fit the template; `issues` lists every problem found. */
export class TaskArgumentsError extends DagopsError {
  override name = 'TaskArgumentsError';
  /** Every problem found. */
  readonly issues: readonly ValidationIssue[];

  constructor(templateName: string, issues: readonly ValidationIssue[]) {
    super(
      ErrorCode.TASK_ARGUMENTS_INVALID,
      summarize(`invalid arguments for template ${templateName}`, issues),
      { nonRetryable: true, ...(issues[0] ? { target: issues[0].path } : {}) },
    );
    this.issues = issues;
  }
}
