import { describe, expect, it } from 'vitest';
import { DagopsError, ErrorCode, TaskArgumentsError } from '@dagops/engine';
import {
  ApiError,
  HTTP_STATUS_BY_CODE,
  httpStatusOf,
  ServiceErrorCode,
  toFailure,
} from './api-error.js';

describe('the code → HTTP status table', () => {
  it('maps every engine and service code, each to a status SPEC §7 names', () => {
    for (const code of [...Object.values(ErrorCode), ...Object.values(ServiceErrorCode)]) {
      expect([400, 401, 403, 404, 409, 413, 500, 503]).toContain(HTTP_STATUS_BY_CODE[code]);
    }
    expect(httpStatusOf(ErrorCode.TASK_NOT_FOUND)).toBe(404);
    expect(httpStatusOf(ErrorCode.TASK_STATE_INVALID)).toBe(409);
    expect(httpStatusOf(ErrorCode.TASK_PROHIBIT_ROLLBACK)).toBe(409);
    expect(httpStatusOf(ServiceErrorCode.UNAUTHENTICATED)).toBe(401);
    expect(httpStatusOf(ServiceErrorCode.PERMISSION_DENIED)).toBe(403);
    expect(httpStatusOf(ServiceErrorCode.PAYLOAD_TOO_LARGE)).toBe(413);
    expect(httpStatusOf(12345)).toBe(500);
  });
});

describe('toFailure', () => {
  it('answers an ApiError with its code, target, sub-errors and headers', () => {
    const error = new ApiError(ServiceErrorCode.UNAUTHENTICATED, 'who?', {
      headers: { 'WWW-Authenticate': 'Basic' },
    });
    expect(toFailure(error)).toEqual({
      status: 401,
      body: { code: 20101, message: 'who?' },
      headers: { 'WWW-Authenticate': 'Basic' },
      unexpected: false,
    });
  });

  it('answers a DagopsError, its issues as sub-errors', () => {
    const error = new TaskArgumentsError('"Stop OCP agent"', [
      { path: 'hostId', message: 'must be a positive safe integer', value: 0 },
    ]);
    expect(toFailure(error)).toMatchObject({
      status: 400,
      body: {
        code: 20011,
        target: 'hostId',
        subErrors: [
          { code: 20011, message: 'hostId must be a positive safe integer', target: 'hostId' },
        ],
      },
    });
    expect(toFailure(new DagopsError(ErrorCode.TASK_STATE_INVALID, 'no')).status).toBe(409);
  });

  it('hides the details of what is unexpected', () => {
    const secret = new DagopsError(ErrorCode.OPTIONS_INVALID, 'password=hunter2', { target: 'x' });
    expect(toFailure(secret)).toEqual({
      status: 500,
      body: { code: ErrorCode.OPTIONS_INVALID, message: 'internal error' },
      unexpected: true,
    });
    expect(toFailure(new Error('boom at /srv/x'))).toEqual({
      status: 500,
      body: { code: ServiceErrorCode.INTERNAL, message: 'internal error' },
      unexpected: true,
    });
    expect(toFailure('a string').status).toBe(500);
    expect(toFailure(undefined).status).toBe(500);
  });

  it("turns Fastify's validation errors into field paths", () => {
    const failure = toFailure({
      code: 'FST_ERR_VALIDATION',
      statusCode: 400,
      validationContext: 'body',
      validation: [
        {
          instancePath: '',
          keyword: 'additionalProperties',
          params: { additionalProperty: 'x' },
          message: 'must NOT have additional properties',
        },
        { instancePath: '/hostIds/2', keyword: 'minimum', params: {}, message: 'must be >= 1' },
        {
          instancePath: '',
          keyword: 'required',
          params: { missingProperty: 'hostIds' },
          message: "must have required property 'hostIds'",
        },
      ],
    });
    expect(failure.status).toBe(400);
    expect(failure.body.subErrors).toEqual([
      { code: 20100, message: 'x is not a known field', target: 'x' },
      { code: 20100, message: 'hostIds[2] must be >= 1', target: 'hostIds[2]' },
      { code: 20100, message: 'hostIds is required', target: 'hostIds' },
    ]);
    expect(failure.body.message).toBe(
      'invalid body: x is not a known field (and 2 more problem(s))',
    );
  });

  it("maps Fastify's body errors: too large is 413, the rest 400", () => {
    expect(
      toFailure({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'big' }).status,
    ).toBe(413);
    expect(
      toFailure({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415, message: 'x' }).status,
    ).toBe(400);
    expect(toFailure({ code: 'FST_ERR_SOMETHING', statusCode: 405, message: 'x' }).status).toBe(
      400,
    );
  });
});
