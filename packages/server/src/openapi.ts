import type { Permission } from './permissions.js';

/** A route as the OpenAPI document needs it. */
export interface CollectedRoute {
  readonly method: string | readonly string[];
  readonly url: string;
  readonly schema: unknown;
  readonly permissions: readonly Permission[] | undefined;
}

type Schema = Record<string, unknown>;

interface RouteSchema {
  readonly summary?: string;
  readonly description?: string;
  readonly tags?: readonly string[];
  readonly params?: Schema;
  readonly querystring?: Schema;
  readonly body?: Schema;
  readonly response?: Record<string, Schema>;
}

const DESCRIPTIONS: Readonly<Record<string, string>> = {
  '200': 'Success: the envelope with `data`',
  '4xx':
    'Refused: 400 bad input, 401 unauthenticated, 403 missing permission, 404 unknown host/task/route, 409 state conflict or idempotency key reuse, 413 body too large',
  '5xx': 'Failed: 500 unexpected (the log has the details under the traceId), 503 shutting down',
};

function parameters(where: 'path' | 'query', schema: Schema | undefined): Schema[] {
  const properties = (schema?.['properties'] ?? {}) as Record<string, Schema>;
  const required = (schema?.['required'] ?? []) as string[];
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || required.includes(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

/**
 * Builds the OpenAPI 3.1 document of the collected routes: their JSON Schemas as Fastify
 * validates and serialises with them, HTTP Basic security, and the `Idempotency-Key` header on
 * every POST.
 */
export function buildOpenApiDocument(routes: readonly CollectedRoute[]): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const schema = (route.schema ?? {}) as RouteSchema;
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods as string[]) {
      const lower = method.toLowerCase();
      const params = [
        ...parameters('path', schema.params),
        ...parameters('query', schema.querystring),
      ];
      if (lower === 'post') {
        params.push({
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description:
            'Repeating a POST with the same key returns the first answer (24 h); the same key with another request is refused (409).',
          schema: { type: 'string', minLength: 1, maxLength: 255 },
        });
      }
      const responses = Object.fromEntries(
        Object.entries(schema.response ?? {}).map(([status, body]) => [
          status.toUpperCase(),
          {
            description: DESCRIPTIONS[status] ?? status,
            content: { 'application/json': { schema: body } },
          },
        ]),
      );
      (paths[path] ??= {})[lower] = {
        ...(schema.summary === undefined ? {} : { summary: schema.summary }),
        ...(schema.description === undefined ? {} : { description: schema.description }),
        ...(schema.tags === undefined ? {} : { tags: schema.tags }),
        ...(params.length === 0 ? {} : { parameters: params }),
        ...(schema.body === undefined
          ? {}
          : {
              requestBody: {
                required: true,
                content: { 'application/json': { schema: schema.body } },
              },
            }),
        responses:
          Object.keys(responses).length > 0 ? responses : { '200': { description: 'Success' } },
        ...(route.permissions === undefined
          ? { security: [] }
          : {
              security: [{ basic: [] }],
              'x-permissions': route.permissions,
            }),
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'dagops OCP agent service',
      version: '0.1.0',
      description:
        "OCP's agent operations (stop, batch stop, restart, stop one process) as DAG tasks, and task management. Every answer but this document is the envelope {data, successful, timestamp, duration, status, traceId, server}; failures carry error {code, message, target?, subErrors?} instead of data.",
    },
    components: {
      securitySchemes: { basic: { type: 'http', scheme: 'basic' } },
    },
    security: [{ basic: [] }],
    paths,
  };
}
