import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from '../build-server.js';
import { healthSchema, responses, routeSchema } from '../schemas.js';

/**
 * `GET /health` (public, enveloped) and `GET /openapi.json` (public; the bare OpenAPI 3
 * document, as tools expect it, not wrapped in the envelope).
 */
export function registerMetaRoutes(
  app: FastifyInstance,
  context: ServiceContext,
  openApi: () => unknown,
): void {
  app.get(
    '/health',
    {
      schema: routeSchema({
        summary: 'Liveness: answers while the service takes requests',
        tags: ['meta'],
        response: responses(healthSchema),
      }),
    },
    async (request, reply) => context.ok(request, reply, { status: 'UP' }),
  );

  app.get(
    '/openapi.json',
    { schema: routeSchema({ summary: 'This document', tags: ['meta'] }) },
    async (_request, reply) => reply.header('cache-control', 'no-cache').send(openApi()),
  );
}
