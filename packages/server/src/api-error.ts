import { DagopsError, ErrorCode } from '@dagops/engine';
import { ID_PATTERN } from './schemas.js';

/**
 * The HTTP service's own error codes, beside the engine's {@link ErrorCode} (20000–20030): one
 * number names one failure in responses and logs.
 */
export const ServiceErrorCode = {
  /** The request is malformed: bad path id, query, body, header or content type. */
  REQUEST_INVALID: 20100,
  /** No credentials, unknown user or wrong password. */
  UNAUTHENTICATED: 20101,
  /** The caller lacks the permission the endpoint needs. */
  PERMISSION_DENIED: 20102,
  /** The body is larger than the service accepts. */
  PAYLOAD_TOO_LARGE: 20103,
  /** The `Idempotency-Key` was used before with a different request. */
  IDEMPOTENCY_KEY_REUSED: 20104,
  /** A request with the same `Idempotency-Key` is still being processed. */
  IDEMPOTENCY_KEY_IN_USE: 20105,
  /** No endpoint has this method and path. */
  ROUTE_NOT_FOUND: 20106,
  /** The service is shutting down and takes no new requests. */
  SERVICE_CLOSING: 20107,
  /** Anything unexpected; the log has the details under the response's traceId. */
  INTERNAL: 20199,
} as const;
/** One of the {@link ServiceErrorCode} values. */
export type ServiceErrorCode = (typeof ServiceErrorCode)[keyof typeof ServiceErrorCode];

/** Every code a response can carry: the engine's and the service's. */
export type ApiErrorCode = ErrorCode | ServiceErrorCode;

/**
 * The one table from error codes to HTTP statuses (SPEC §7): 400 bad input, 401
 * unauthenticated, 403 missing permission, 404 unknown host/task/route, 409 state conflict, 413
 * body too large, 500 unexpected, 503 shutting down.
 */
export const HTTP_STATUS_BY_CODE: Readonly<Record<ApiErrorCode, number>> = Object.freeze({
  [ErrorCode.TASK_NOT_FOUND]: 404,
  [ErrorCode.TASK_DAG_CYCLE]: 400,
  [ErrorCode.TASK_CONTEXT_ERROR]: 409,
  [ErrorCode.TASK_STATE_INVALID]: 409,
  [ErrorCode.TASK_PROHIBIT_ROLLBACK]: 409,
  [ErrorCode.TEMPLATE_INVALID]: 400,
  [ErrorCode.TASK_ARGUMENTS_INVALID]: 400,
  [ErrorCode.HANDLER_NOT_FOUND]: 500,
  [ErrorCode.ATTEMPT_TIMEOUT]: 500,
  [ErrorCode.ATTEMPT_CANCELED]: 409,
  [ErrorCode.ATTEMPT_LEASE_LOST]: 500,
  [ErrorCode.OPTIONS_INVALID]: 500,
  [ErrorCode.AGENT_OPERATION_FAILED]: 500,
  [ServiceErrorCode.REQUEST_INVALID]: 400,
  [ServiceErrorCode.UNAUTHENTICATED]: 401,
  [ServiceErrorCode.PERMISSION_DENIED]: 403,
  [ServiceErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ServiceErrorCode.IDEMPOTENCY_KEY_REUSED]: 409,
  [ServiceErrorCode.IDEMPOTENCY_KEY_IN_USE]: 409,
  [ServiceErrorCode.ROUTE_NOT_FOUND]: 404,
  [ServiceErrorCode.SERVICE_CLOSING]: 503,
  [ServiceErrorCode.INTERNAL]: 500,
});

/** The HTTP status of a code; 500 for a code the table does not know. */
export function httpStatusOf(code: number): number {
  return (HTTP_STATUS_BY_CODE as Readonly<Record<number, number>>)[code] ?? 500;
}

/** One problem inside a refused request: an unknown host, a bad field. */
export interface SubError {
  readonly code: ApiErrorCode;
  readonly message: string;
  /** Where: a field path (`hostIds[2]`), a parameter name. */
  readonly target?: string;
}

/** The `error` member of a failed response. */
export interface ErrorBody {
  readonly code: ApiErrorCode;
  readonly message: string;
  readonly target?: string;
  readonly subErrors?: readonly SubError[];
}

/** Options of an {@link ApiError}. */
export interface ApiErrorOptions {
  readonly target?: string;
  readonly subErrors?: readonly SubError[];
  readonly cause?: unknown;
  /** Extra response headers, e.g. `WWW-Authenticate`. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A refusal by the HTTP layer (authentication, permission, request shape, idempotency). Errors
 * of the engine and the host agents stay {@link DagopsError}s; both map to a status through
 * {@link HTTP_STATUS_BY_CODE}.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly target: string | undefined;
  readonly subErrors: readonly SubError[] | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(code: ApiErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.target = options.target;
    this.subErrors = options.subErrors;
    this.headers = options.headers;
  }

  /** The HTTP status this error is answered with. */
  get status(): number {
    return httpStatusOf(this.code);
  }
}

/** A refused request, as answered: status, the `error` body, extra headers. */
export interface Failure {
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers?: Readonly<Record<string, string>>;
  /** True for a 5xx whose details belong in the log, not in the response. */
  readonly unexpected: boolean;
}

interface FastifyLikeError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly message?: unknown;
  readonly validation?: readonly AjvLikeError[];
  readonly validationContext?: unknown;
}

interface AjvLikeError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly message?: string;
  readonly params: Record<string, unknown>;
  /** The offending value (ajv's `verbose` option). */
  readonly data?: unknown;
}

/** A value for a message: JSON, clipped to 80 characters. */
function shown(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 80)}… (${text.length} chars)` : text;
}

/** What an ajv keyword says, in words a caller reads. */
function ruleOf(error: AjvLikeError): string {
  if (error.keyword === 'pattern' && error.params['pattern'] === ID_PATTERN) {
    return 'must be a positive integer (decimal digits, no sign, no leading zero)';
  }
  return error.message ?? 'is invalid';
}

/** `/hostIds/3` in `body` → `hostIds[3]`; `/id` in `params` → `id`. */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (extra !== undefined) parts.push(extra);
  let path = '';
  for (const part of parts) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    path += /^\d+$/.test(key) ? `[${key}]` : path === '' ? key : `.${key}`;
  }
  return path;
}

const PART_NAMES: Readonly<Record<string, string>> = {
  body: 'body',
  params: 'path parameter',
  querystring: 'query parameter',
  headers: 'header',
};

function validationSubErrors(errors: readonly AjvLikeError[], part: string): SubError[] {
  return errors.map((e) => {
    if (e.keyword === 'additionalProperties') {
      const target = fieldPath(e.instancePath, String(e.params['additionalProperty']));
      return {
        code: ServiceErrorCode.REQUEST_INVALID,
        message: `${target} is not a known ${part === 'body' ? 'field' : (PART_NAMES[part] ?? part)}`,
        target,
      };
    }
    if (e.keyword === 'required') {
      const target = fieldPath(e.instancePath, String(e.params['missingProperty']));
      return { code: ServiceErrorCode.REQUEST_INVALID, message: `${target} is required`, target };
    }
    const target = fieldPath(e.instancePath);
    const subject = target === '' ? (PART_NAMES[part] ?? part) : target;
    const got = 'data' in e ? `, got ${shown(e.data)}` : '';
    return {
      code: ServiceErrorCode.REQUEST_INVALID,
      message: `${subject} ${ruleOf(e)}${got}`,
      ...(target === '' ? {} : { target }),
    };
  });
}

/** Fastify's own error codes that mean "bad request", and what to say. */
const FASTIFY_CLIENT_ERRORS: Readonly<Record<string, ServiceErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ServiceErrorCode.PAYLOAD_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ServiceErrorCode.REQUEST_INVALID,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ServiceErrorCode.REQUEST_INVALID,
  FST_ERR_CTP_EMPTY_JSON_BODY: ServiceErrorCode.REQUEST_INVALID,
  FST_ERR_CTP_INVALID_JSON_BODY: ServiceErrorCode.REQUEST_INVALID,
  FST_ERR_CTP_INSTANCE_ALREADY_STARTED: ServiceErrorCode.INTERNAL,
};

/**
 * Turns anything thrown while answering a request into the answer: the status (from
 * {@link HTTP_STATUS_BY_CODE}) and the `error` body. Unexpected errors get a generic message;
 * the caller logs them.
 */
export function toFailure(error: unknown): Failure {
  if (error instanceof ApiError) {
    return {
      status: error.status,
      body: {
        code: error.code,
        message: error.message,
        ...(error.target === undefined ? {} : { target: error.target }),
        ...(error.subErrors === undefined ? {} : { subErrors: error.subErrors }),
      },
      ...(error.headers === undefined ? {} : { headers: error.headers }),
      unexpected: false,
    };
  }
  if (error instanceof DagopsError) {
    const status = httpStatusOf(error.code);
    const issues = (error as { issues?: readonly { path: string; message: string }[] }).issues;
    return {
      status,
      body: {
        code: error.code,
        message: status >= 500 ? 'internal error' : error.message,
        ...(error.target === undefined || status >= 500 ? {} : { target: error.target }),
        ...(issues === undefined || status >= 500
          ? {}
          : {
              subErrors: issues.map((issue) => ({
                code: error.code,
                message: `${issue.path} ${issue.message}`,
                target: issue.path,
              })),
            }),
      },
      unexpected: status >= 500,
    };
  }
  const fastify = (typeof error === 'object' && error !== null ? error : {}) as FastifyLikeError;
  if (Array.isArray(fastify.validation)) {
    const part = typeof fastify.validationContext === 'string' ? fastify.validationContext : 'body';
    const subErrors = validationSubErrors(fastify.validation, part);
    const first = subErrors[0];
    const more = subErrors.length > 1 ? ` (and ${subErrors.length - 1} more problem(s))` : '';
    return {
      status: 400,
      body: {
        code: ServiceErrorCode.REQUEST_INVALID,
        message: `invalid ${PART_NAMES[part] ?? part}: ${first?.message ?? 'is invalid'}${more}`,
        ...(first?.target === undefined ? {} : { target: first.target }),
        subErrors,
      },
      unexpected: false,
    };
  }
  const code = typeof fastify.code === 'string' ? FASTIFY_CLIENT_ERRORS[fastify.code] : undefined;
  if (code !== undefined && code !== ServiceErrorCode.INTERNAL) {
    return {
      status: httpStatusOf(code),
      body: {
        code,
        message: typeof fastify.message === 'string' ? fastify.message : 'bad request',
      },
      unexpected: false,
    };
  }
  const status = typeof fastify.statusCode === 'number' ? fastify.statusCode : 500;
  if (status >= 400 && status < 500) {
    // Any other client error Fastify raises (a malformed request line or header, …).
    return {
      status: 400,
      body: {
        code: ServiceErrorCode.REQUEST_INVALID,
        message: typeof fastify.message === 'string' ? fastify.message : 'bad request',
      },
      unexpected: false,
    };
  }
  return {
    status: 500,
    body: { code: ServiceErrorCode.INTERNAL, message: 'internal error' },
    unexpected: true,
  };
}
