import { DagopsError, ErrorCode } from './errors.js';
import type { RetryPolicy } from './template.js';

/**
 * What a handler sees during one attempt: who it is, its input, a place to write its output,
 * a log, and an `AbortSignal` that fires on timeout or cancel.
 */
export interface HandlerContext {
  /** The task's id. */
  readonly taskId: number;
  /** The subtask's id. */
  readonly subtaskId: number;
  /** Execution number of the subtask, counting every execution (manual retries too). */
  readonly runTime: number;
  /**
   * Stable per attempt: `${taskId}:${subtaskId}:${runTime}`. Execution is at-least-once; use
   * this to make side effects idempotent.
   */
  readonly idempotencyKey: string;
  /** The template node the subtask came from. */
  readonly nodeKey: string;
  /** Branch index of a split node, -1 otherwise. */
  readonly parallelIdx: number;
  /** Aborted when the attempt times out or is canceled; `reason` says which. */
  readonly signal: AbortSignal;
  /**
   * Reads a string from the input. With `listKey`, a split subtask reads its own element of
   * that list (OCP's `get("host_id", "host_ids")`); otherwise `key` from the string map.
   */
  get(key: string, listKey?: string): string | undefined;
  /** Reads a list from the input. */
  getList(key: string): readonly string[] | undefined;
  /** Writes a string to the output (seen by downstream subtasks). */
  set(key: string, value: string): void;
  /** Writes a list to the output (lists of sibling branches are united downstream). */
  setList(key: string, values: readonly string[]): void;
  /** Appends a line to this attempt's log. */
  log(message: string): void;
}

/**
 * The code behind a `className`. `execute` must be idempotent: execution is at-least-once.
 * Throwing (or rejecting) fails the attempt; set `nonRetryable: true` or a `code` listed in the
 * retry policy's `nonRetryableCodes` on the error to stop retries.
 *
 * @example
 * registry.register('com.example.Ping', {
 *   async execute(ctx) {
 *     ctx.log(`pinging ${ctx.get('host_id', 'host_ids')}`);
 *   },
 * });
 */
export interface Handler {
  /** Runs the step. */
  execute(context: HandlerContext): Promise<void> | void;
  /** Undoes a successful `execute` during a task rollback. */
  rollback?(context: HandlerContext): Promise<void> | void;
  /** Called when a running attempt is canceled, after its signal was aborted. */
  cancel?(context: HandlerContext): Promise<void> | void;
  /** Default retry policy for nodes of this className; a node's own policy overrides it. */
  readonly retry?: RetryPolicy;
}

/** OCP's barrier node: a no-op that waits for all its upstreams. */
export const WAIT_NODE_CLASS_NAME = 'com.alipay.ocp.service.task.business.WaitNode';

/** The built-in {@link WAIT_NODE_CLASS_NAME} handler: does nothing. */
export const waitNodeHandler: Handler = Object.freeze({
  execute(): void {},
  rollback(): void {},
});

/** Handlers by className. The barrier handler is registered from the start. */
export class HandlerRegistry {
  private readonly handlers = new Map<string, Handler>([[WAIT_NODE_CLASS_NAME, waitNodeHandler]]);

  /** Registers `handler` for `className`; a className can be registered once. */
  register(className: string, handler: Handler): this {
    if (typeof className !== 'string' || className.length === 0) {
      throw new DagopsError(
        ErrorCode.OPTIONS_INVALID,
        `className must be a non-empty string, got ${JSON.stringify(className)}`,
      );
    }
    if (typeof (handler as { execute?: unknown } | null)?.execute !== 'function') {
      throw new DagopsError(
        ErrorCode.OPTIONS_INVALID,
        `handler for ${className} must have an execute function`,
        { target: className },
      );
    }
    if (this.handlers.has(className) && className !== WAIT_NODE_CLASS_NAME) {
      throw new DagopsError(
        ErrorCode.OPTIONS_INVALID,
        `a handler for ${className} is already registered`,
        { target: className },
      );
    }
    this.handlers.set(className, handler);
    return this;
  }

  /** The handler for `className`, if any. */
  get(className: string): Handler | undefined {
    return this.handlers.get(className);
  }

  /** Whether a handler is registered for `className`. */
  has(className: string): boolean {
    return this.handlers.has(className);
  }
}
