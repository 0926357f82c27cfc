import type { Clock } from '../clock.js';
import { toErrorInfo, timeoutErrorInfo, type ErrorInfo } from '../error-info.js';
import { DagopsError, ErrorCode } from '../errors.js';
import type { Handler } from '../handler.js';
import type { AttemptContext } from './attempt-context.js';

/** How an attempt ended, as far as the handler is concerned. */
export type AttemptOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: ErrorInfo; readonly timedOut?: true };

/** How a handler settled after its attempt was already over. */
export type LateOutcome = { readonly ok: true } | { readonly ok: false; readonly error: ErrorInfo };

const OK: AttemptOutcome = Object.freeze({ ok: true });

/**
 * Runs `handler.execute` bounded by `timeoutSeconds`: at the deadline the attempt fails with a
 * timeout error and the context's signal is aborted, whatever the handler does; a result that
 * arrives later is passed to `onLate` and otherwise discarded.
 */
export function runHandler(
  handler: Handler,
  context: AttemptContext,
  timeoutSeconds: number,
  clock: Clock,
  onLate: (outcome: LateOutcome) => void,
): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    let settled = false;
    const timer = clock.setTimeout(() => {
      if (settled) return;
      settled = true;
      const error = timeoutErrorInfo(timeoutSeconds);
      context.abort(new DagopsError(ErrorCode.ATTEMPT_TIMEOUT, error.message));
      resolve({ ok: false, error, timedOut: true });
    }, timeoutSeconds * 1000);
    const settle = (outcome: AttemptOutcome) => {
      if (settled) {
        onLate(outcome);
        return;
      }
      settled = true;
      clock.clearTimeout(timer);
      resolve(outcome);
    };
    const fail = (thrown: unknown) => settle({ ok: false, error: toErrorInfo(thrown) });
    let result: unknown;
    try {
      result = handler.execute(context);
    } catch (thrown) {
      fail(thrown);
      return;
    }
    if (result !== null && typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      (result as PromiseLike<unknown>).then(() => settle(OK), fail);
    } else {
      settle(OK);
    }
  });
}
