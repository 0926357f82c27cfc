import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RouteOptions,
} from 'fastify';
import { Ajv } from 'ajv';
import { pino } from 'pino';
import fastJson, { type Schema as SerializerSchema } from 'fast-json-stringify';
import { ErrorCode, TaskStatus, type EngineEvents } from '@dagops/engine';
import { HOST_ID_KEY, HOST_IDS_KEY } from '@dagops/definitions';
import { ApiError, ServiceErrorCode, toFailure } from './api-error.js';
import { Authenticator, type Caller } from './authenticator.js';
import { errorEnvelope, successEnvelope, traceIdFrom, type EnvelopeMeta } from './envelope.js';
import { HostGuard } from './host-guard.js';
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  readIdempotencyKey,
  requestFingerprint,
} from './idempotency.js';
import { buildOpenApiDocument, type CollectedRoute } from './openapi.js';
import type { Permission } from './permissions.js';
import { registerHostRoutes } from './routes/host-routes.js';
import { registerMetaRoutes } from './routes/meta-routes.js';
import { registerTaskRoutes } from './routes/task-routes.js';
import {
  resolveServerOptions,
  type ResolvedServerOptions,
  type ServerOptions,
} from './server-options.js';

/** What a route asks of the request pipeline, in its `config.dagops`. */
export interface DagopsRouteConfig {
  /** The caller must hold one of these; absent: the route is public. */
  readonly permissions?: readonly Permission[];
  /** The route takes no body: anything but an empty JSON object is refused. */
  readonly noBody?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** dagops' per-route requirements (see DagopsRouteConfig). */
    dagops?: DagopsRouteConfig;
  }
}

/** What route modules share: resolved options, the host guard, and envelope helpers. */
export interface ServiceContext {
  readonly options: ResolvedServerOptions;
  readonly guard: HostGuard;
  /** The authenticated caller of a route that requires permissions. */
  callerOf(request: FastifyRequest): Caller;
  /** Wraps `data` in the success envelope. */
  ok<T>(request: FastifyRequest, reply: FastifyReply, data: T): unknown;
  /** @throws DagopsError-shaped ApiError 20000 (404) naming every unregistered host. */
  requireHosts(hostIds: readonly number[], targetOf: (index: number) => string): Promise<void>;
}

interface IdempotencyClaimed {
  readonly owner: string;
  readonly key: string;
}

/**
 * Builds the OCP agent service on Fastify, without listening: `app.inject()` for unit tests,
 * `app.listen()` to serve. Routes: the seeds' host endpoints, OCP's task management, the DAG
 * picture, `/openapi.json` and `/health`. Every answer is the seeds' envelope; every request is
 * logged as one JSON line with its traceId.
 *
 * @example
 * const app = buildServer({ engine, agent, state });
 * await app.listen({ port: 8080 });
 */
export function buildServer(serverOptions: ServerOptions): FastifyInstance {
  const options = resolveServerOptions(serverOptions);
  const { engine, agent, state, lister } = options;
  const logger =
    options.logger === false
      ? false
      : {
          level: options.logger.level ?? 'info',
          // stdout is written asynchronously (flushed at exit): a line per request must not
          // cost a blocking write each.
          stream: options.logger.stream ?? pino.destination({ dest: 1, sync: false }),
          // Never log credentials, even if a header serialiser is added later.
          redact: {
            paths: ['req.headers.authorization', 'headers.authorization', 'password'],
            censor: '[redacted]',
          },
        };
  const app = Fastify({
    logger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'traceId' }),
    genReqId: (request) => traceIdFrom(request.headers['x-trace-id']),
    bodyLimit: options.bodyLimitBytes,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });

  // No coercion ("2" is not 2), unknown fields refused (not stripped), every problem reported.
  const ajv = new Ajv({
    coerceTypes: false,
    removeAdditional: false,
    useDefaults: false,
    allErrors: true,
    // Errors carry the offending value, for messages that name it.
    verbose: true,
    strict: true,
  });
  app.setValidatorCompiler(({ schema }) => ajv.compile(schema));
  // fast-json-stringify writes required keys first; without `required` it keeps the schema's
  // order, which is the seeds' (optional keys such as hostId sit between required ones).
  app.setSerializerCompiler(({ schema }) => fastJson(withoutRequired(schema) as SerializerSchema));

  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // A POST without a body but with a JSON content type (some clients send one) has no body.
    if (body === '') done(null, undefined);
    else void defaultJson(request, body as string, done);
  });

  const authenticator = new Authenticator(state, options.auth);
  const guard = new HostGuard(agent, engine.store);
  const callers = new WeakMap<FastifyRequest, Caller>();
  const claims = new WeakMap<FastifyRequest, IdempotencyClaimed>();
  const failureCodes = new WeakMap<FastifyRequest, number>();
  const routes: CollectedRoute[] = [];
  let closing = false;

  const meta = (request: FastifyRequest, reply: FastifyReply): EnvelopeMeta => ({
    server: options.serverName,
    traceId: request.id,
    elapsedMs: reply.elapsedTime,
    utcOffsetMinutes: options.utcOffsetMinutes,
  });
  const knownHosts = new Set<number>();
  const context: ServiceContext = {
    options,
    guard,
    callerOf(request) {
      const caller = callers.get(request);
      if (!caller) throw new Error('route has no authenticated caller: check its permissions');
      return caller;
    },
    ok: (request, reply, data) => successEnvelope(data, meta(request, reply)),
    async requireHosts(hostIds, targetOf) {
      const unknown = await state.unknownHosts(hostIds.filter((id) => !knownHosts.has(id)));
      const missing = new Set(unknown);
      for (const id of hostIds) if (!missing.has(id)) knownHosts.add(id);
      if (unknown.length === 0) return;
      const subErrors = hostIds.flatMap((id, i) =>
        missing.has(id)
          ? [
              {
                code: ErrorCode.TASK_NOT_FOUND,
                message: `host ${id} does not exist`,
                target: targetOf(i),
              },
            ]
          : [],
      );
      const shown = unknown.slice(0, 20).join(', ');
      const more = unknown.length > 20 ? ` and ${unknown.length - 20} more` : '';
      throw new ApiError(
        ErrorCode.TASK_NOT_FOUND,
        unknown.length === 1
          ? `host ${shown} does not exist`
          : `${unknown.length} hosts do not exist: ${shown}${more}`,
        { target: subErrors[0]?.target ?? 'hostId', subErrors },
      );
    },
  };

  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.method === 'HEAD') return;
    routes.push({
      method: route.method,
      url: route.url,
      schema: route.schema,
      permissions: route.config?.dagops?.permissions,
    });
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-trace-id', request.id);
    if (closing) {
      reply.header('connection', 'close');
      throw new ApiError(ServiceErrorCode.SERVICE_CLOSING, 'the service is shutting down');
    }
    const required = request.routeOptions.config.dagops?.permissions;
    if (required === undefined) return;
    const caller = await authenticator.authenticate(request.headers.authorization);
    callers.set(request, caller);
    if (!required.some((permission) => caller.permissions.includes(permission))) {
      throw new ApiError(
        ServiceErrorCode.PERMISSION_DENIED,
        `${caller.name} lacks the ${required.join(' or ')} permission`,
        { target: required.join(' | ') },
      );
    }
  });

  app.addHook('preValidation', (request, _reply, done) => {
    const { body } = request;
    if (!request.routeOptions.config.dagops?.noBody || body === undefined) return done();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return done(new ApiError(ServiceErrorCode.REQUEST_INVALID, 'this endpoint takes no body'));
    }
    const fields = Object.keys(body);
    if (fields.length === 0) return done();
    done(
      new ApiError(
        ServiceErrorCode.REQUEST_INVALID,
        `${fields[0]} is not a known field: this endpoint takes no body`,
        {
          target: fields[0] as string,
          subErrors: fields.map((field) => ({
            code: ServiceErrorCode.REQUEST_INVALID,
            message: `${field} is not a known field`,
            target: field,
          })),
        },
      ),
    );
  });

  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST') return;
    const key = readIdempotencyKey(request.headers[IDEMPOTENCY_KEY_HEADER]);
    if (key === undefined) return;
    const owner = callers.get(request)?.name ?? '';
    const claim = await state.claimIdempotencyKey({
      owner,
      key,
      fingerprint: requestFingerprint(request.method, request.url, request.body),
      now: Date.now(),
      ttlMs: options.idempotencyTtlMs,
      pendingTimeoutMs: options.idempotencyPendingTimeoutMs,
    });
    switch (claim.kind) {
      case 'claimed':
        claims.set(request, { owner, key });
        return;
      case 'replay':
        reply
          .code(claim.status)
          .header('content-type', 'application/json; charset=utf-8')
          .header(IDEMPOTENT_REPLAYED_HEADER, 'true');
        return reply.send(claim.body);
      case 'mismatch':
        throw new ApiError(
          ServiceErrorCode.IDEMPOTENCY_KEY_REUSED,
          'this Idempotency-Key was used with a different request (method, path or body)',
          { target: 'Idempotency-Key' },
        );
      case 'inProgress':
        throw new ApiError(
          ServiceErrorCode.IDEMPOTENCY_KEY_IN_USE,
          'a request with this Idempotency-Key is still being processed; retry later',
          { target: 'Idempotency-Key' },
        );
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    // Once closing, a kept-alive connection would hold the shutdown until its timeout.
    if (closing) reply.header('connection', 'close');
    const claim = claims.get(request);
    if (!claim) return payload;
    claims.delete(request);
    const status = reply.statusCode;
    if (status >= 200 && status < 300 && typeof payload === 'string') {
      await state.completeIdempotencyKey(claim.owner, claim.key, { status, body: payload });
    } else {
      // A refused or failed request leaves nothing behind, its key included.
      await state.releaseIdempotencyKey(claim.owner, claim.key);
    }
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    const code = failureCodes.get(request);
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
        ...(callers.has(request) ? { user: callers.get(request)?.name } : {}),
        ...(code === undefined ? {} : { code }),
      },
      'request',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const failure = toFailure(error);
    failureCodes.set(request, failure.body.code);
    if (failure.unexpected) request.log.error({ err: error }, 'request failed unexpectedly');
    if (failure.headers) reply.headers(failure.headers);
    return reply
      .code(failure.status)
      .send(errorEnvelope(failure.body, failure.status, meta(request, reply)));
  });

  app.setNotFoundHandler((request, reply) => {
    const body = {
      code: ServiceErrorCode.ROUTE_NOT_FOUND,
      message: `no endpoint ${request.method} ${request.url.split('?')[0] ?? ''}`,
    };
    failureCodes.set(request, body.code);
    return reply.code(404).send(errorEnvelope(body, 404, meta(request, reply)));
  });

  registerHostRoutes(app, context);
  registerTaskRoutes(app, context);
  let openApi: unknown;
  registerMetaRoutes(app, context, () => {
    openApi ??= buildOpenApiDocument(routes);
    return openApi;
  });

  // A task that is no longer RUNNING frees its hosts (their operation marks still count).
  const onFinished = ({ taskId }: EngineEvents['task.finished'][0]) => guard.finished(taskId);
  engine.on('task.finished', onFinished);

  app.addHook('onReady', async () => {
    for (const id of await state.listHostIds()) knownHosts.add(id);
    // Tasks left RUNNING by an earlier run of the service (resumed by the engine) own their hosts.
    for (let offset = 0; ; offset += 100) {
      const page = await lister.listTasks({ status: TaskStatus.RUNNING, offset, limit: 100 });
      for (const task of page.tasks) {
        const single = task.context.stringMap[HOST_ID_KEY];
        const hosts =
          single !== undefined ? [Number(single)] : (task.context.listMap[HOST_IDS_KEY] ?? []);
        guard.adopt(task.id, hosts.map(Number));
      }
      if (page.tasks.length < 100) break;
    }
  });
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    engine.off('task.finished', onFinished);
    done();
  });
  return app;
}

/** A copy of a JSON Schema without its `required` lists (the serializer's key order needs it). */
function withoutRequired(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutRequired);
  if (typeof schema !== 'object' || schema === null) return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key, value]) => !(key === 'required' && Array.isArray(value)))
      .map(([key, value]) => [key, withoutRequired(value)]),
  );
}
