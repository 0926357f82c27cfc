import type { ErrorInfo } from './error-info.js';
import type { RetryPolicy } from './template.js';

/** A {@link RetryPolicy} with every field filled in. */
export interface ResolvedRetryPolicy {
  readonly maxAttempts: number;
  readonly initialIntervalSeconds: number;
  readonly backoffCoefficient: number;
  readonly maxIntervalSeconds: number;
  readonly nonRetryableCodes: readonly (string | number)[];
}

/** No retry: one attempt. */
export const NO_RETRY: ResolvedRetryPolicy = Object.freeze({
  maxAttempts: 1,
  initialIntervalSeconds: 1,
  backoffCoefficient: 2,
  maxIntervalSeconds: 100,
  nonRetryableCodes: Object.freeze([]),
});

/**
 * Merges a node's policy over its handler's default, field by field, and fills the rest with
 * defaults (one attempt; 1 s initial interval; coefficient 2; max 100 × initial).
 */
export function resolveRetryPolicy(
  nodePolicy: RetryPolicy | undefined,
  handlerPolicy: RetryPolicy | undefined,
): ResolvedRetryPolicy {
  if (!nodePolicy && !handlerPolicy) return NO_RETRY;
  const merged = { ...handlerPolicy, ...nodePolicy };
  const initial = merged.initialIntervalSeconds ?? NO_RETRY.initialIntervalSeconds;
  return {
    maxAttempts: merged.maxAttempts ?? 1,
    initialIntervalSeconds: initial,
    backoffCoefficient: merged.backoffCoefficient ?? NO_RETRY.backoffCoefficient,
    maxIntervalSeconds: merged.maxIntervalSeconds ?? Math.max(initial * 100, initial),
    nonRetryableCodes: merged.nonRetryableCodes ?? [],
  };
}

/** Delay before the retry that follows failed attempt number `attempt` (1-based), in ms. */
export function retryDelayMs(policy: ResolvedRetryPolicy, attempt: number): number {
  const seconds = Math.min(
    policy.initialIntervalSeconds * policy.backoffCoefficient ** Math.max(0, attempt - 1),
    policy.maxIntervalSeconds,
  );
  return Math.round(seconds * 1000);
}

/** Whether failed attempt number `attempt` (1-based, within the current round) may be retried. */
export function canRetry(policy: ResolvedRetryPolicy, attempt: number, error: ErrorInfo): boolean {
  if (attempt >= policy.maxAttempts || error.nonRetryable) return false;
  return error.code === undefined || !policy.nonRetryableCodes.includes(error.code);
}
