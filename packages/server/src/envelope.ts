import { randomFillSync } from 'node:crypto';
import { formatTimestamp } from '@dagops/engine';
import type { ErrorBody } from './api-error.js';

/** The answer to every request that succeeded (seeds 000–004). */
export interface SuccessEnvelope<T> {
  readonly data: T;
  /** Time the server took, ms. */
  readonly duration: number;
  /** The server that answered. */
  readonly server: string;
  /** The HTTP status, repeated. */
  readonly status: number;
  readonly successful: true;
  /** When the server completed the request, ISO-8601 with offset. */
  readonly timestamp: string;
  /** 16 hex characters; the request's log lines carry it. */
  readonly traceId: string;
}

/** The answer to every request that failed: no `data`, an `error`. */
export interface ErrorEnvelope {
  readonly duration: number;
  readonly error: ErrorBody;
  readonly server: string;
  readonly status: number;
  readonly successful: false;
  readonly timestamp: string;
  readonly traceId: string;
}

/** What every envelope repeats about the request: who answered, when, how fast. */
export interface EnvelopeMeta {
  readonly server: string;
  readonly traceId: string;
  /** ms since the request arrived. */
  readonly elapsedMs: number;
  /** UTC offset of `timestamp`, minutes east; this process's offset when undefined. */
  readonly utcOffsetMinutes: number | undefined;
}

/** Wraps `data` in the success envelope (keys in the seeds' order). */
export function successEnvelope<T>(data: T, meta: EnvelopeMeta, status = 200): SuccessEnvelope<T> {
  return {
    data,
    duration: Math.round(meta.elapsedMs),
    server: meta.server,
    status,
    successful: true,
    timestamp: formatTimestamp(Date.now(), meta.utcOffsetMinutes),
    traceId: meta.traceId,
  };
}

/** The failure envelope for `error`. */
export function errorEnvelope(error: ErrorBody, status: number, meta: EnvelopeMeta): ErrorEnvelope {
  return {
    duration: Math.round(meta.elapsedMs),
    error,
    server: meta.server,
    status,
    successful: false,
    timestamp: formatTimestamp(Date.now(), meta.utcOffsetMinutes),
    traceId: meta.traceId,
  };
}

const TRACE_ID = /^[0-9a-f]{16}$/;
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/**
 * A new trace id: 16 lowercase hex characters (64 random bits), from a pool of random bytes
 * refilled 512 ids at a time.
 */
export function newTraceId(): string {
  if (used + 8 > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const id = pool.toString('hex', used, used + 8);
  used += 8;
  return id;
}

/** The caller's own trace id (`X-Trace-Id`), when it is 16 hex characters; else a new one. */
export function traceIdFrom(header: unknown): string {
  return typeof header === 'string' && TRACE_ID.test(header) ? header : newTraceId();
}
