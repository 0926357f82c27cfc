import { createHash } from 'node:crypto';
import { ApiError, ServiceErrorCode } from './api-error.js';

/** The request header that makes a POST idempotent. */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/** The response header set on a replayed answer. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';

/** Printable ASCII without spaces, 1 to 255 characters (a UUID fits). */
const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The `Idempotency-Key` of a request, if any.
 * @throws ApiError 20100 (400) when the header is repeated or malformed.
 */
export function readIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) {
    throw new ApiError(ServiceErrorCode.REQUEST_INVALID, 'Idempotency-Key must be sent once', {
      target: 'Idempotency-Key',
    });
  }
  if (!KEY.test(header)) {
    throw new ApiError(
      ServiceErrorCode.REQUEST_INVALID,
      'Idempotency-Key must be 1 to 255 printable ASCII characters without spaces',
      { target: 'Idempotency-Key' },
    );
  }
  return header;
}

/** What identifies a request for idempotency: method, path and query, and the parsed body. */
export function requestFingerprint(method: string, url: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${url}\n`)
    .update(JSON.stringify(body ?? null))
    .digest('base64');
}
