import { DagopsError, ErrorCode } from './errors.js';
import { describeValue } from './internal/describe-value.js';

/** A failure as the store keeps it: plain, JSON-serialisable data. */
export interface ErrorInfo {
  /** The error's class name, or what was thrown when it was not an Error (`string`, …). */
  readonly name: string;
  /** Human-readable; at most a few KB. */
  readonly message: string;
  /** A {@link ErrorCode}, or the thrown error's own `code` (e.g. `'ENOENT'`). */
  readonly code?: string | number;
  /** When true, no retry policy retries it. */
  readonly nonRetryable?: boolean;
  /** Stack trace, trimmed. */
  readonly stack?: string;
}

const MAX_MESSAGE = 2_000;
const MAX_STACK = 4_000;

const clip = (text: string, max: number) =>
  text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;

/**
 * Normalises anything a handler throws (an Error, a string, undefined, a circular or huge
 * object) into an {@link ErrorInfo}. Never throws.
 */
export function toErrorInfo(thrown: unknown): ErrorInfo {
  try {
    return describeThrown(thrown);
  } catch {
    // A proxy or exotic object that throws on every access: nothing of it can be read.
    return { name: 'NonError(unreadable)', message: 'a value was thrown that could not be read' };
  }
}

function describeThrown(thrown: unknown): ErrorInfo {
  if (thrown instanceof Error) {
    let message: string;
    let stack: string | undefined;
    let rawCode: unknown;
    let nonRetryable: unknown;
    try {
      message = String(thrown.message);
      stack = typeof thrown.stack === 'string' ? thrown.stack : undefined;
      rawCode = (thrown as { code?: unknown }).code;
      nonRetryable = (thrown as { nonRetryable?: unknown }).nonRetryable;
    } catch {
      message = '(the error could not be read)';
    }
    const code = typeof rawCode === 'string' || typeof rawCode === 'number' ? rawCode : undefined;
    return {
      name: thrown instanceof DagopsError ? thrown.name : thrown.constructor?.name || 'Error',
      message: clip(message, MAX_MESSAGE),
      ...(code === undefined ? {} : { code }),
      ...(nonRetryable === true ? { nonRetryable: true } : {}),
      ...(stack === undefined ? {} : { stack: clip(stack, MAX_STACK) }),
    };
  }
  const kind = thrown === null ? 'null' : typeof thrown;
  return {
    name: `NonError(${kind})`,
    message: clip(`a non-Error value was thrown: ${describeValue(thrown)}`, MAX_MESSAGE),
  };
}

/** The attempt outlived its node's `timeout`. */
export function timeoutErrorInfo(timeoutSeconds: number): ErrorInfo {
  return {
    name: 'TimeoutError',
    message: `the attempt did not finish within its timeout of ${timeoutSeconds} s`,
    code: ErrorCode.ATTEMPT_TIMEOUT,
  };
}
