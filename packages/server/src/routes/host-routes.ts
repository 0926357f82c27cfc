import type { FastifyInstance } from 'fastify';
import type { Template, TaskArguments, TaskJson } from '@dagops/engine';
import {
  batchStopAgentArguments,
  batchStopAgentTemplate,
  restartAgentArguments,
  restartAgentTemplate,
  stopAgentArguments,
  stopAgentProcess,
  stopAgentTemplate,
} from '@dagops/definitions';
import { ApiError, ServiceErrorCode, type SubError } from '../api-error.js';
import type { ServiceContext } from '../build-server.js';
import { Permission } from '../permissions.js';
import {
  MAX_ID,
  batchStopBody,
  hostAgentProcessSchema,
  hostParams,
  hostProcessParams,
  pageOf,
  responses,
  routeSchema,
  taskSchema,
} from '../schemas.js';

const HOSTS = [Permission.HOST_MANAGER] as const;
const TAG = 'hosts';

/**
 * A path id as a number. The schema already holds it to 1–16 digits without a leading zero;
 * 16 digits can still exceed 2^53 − 1.
 * @throws ApiError 20100 (400) past 2^53 − 1.
 */
export function pathId(text: string, name: string): number {
  const id = Number(text);
  if (!Number.isSafeInteger(id) || id > MAX_ID) {
    throw new ApiError(
      ServiceErrorCode.REQUEST_INVALID,
      `${name} must be at most ${MAX_ID} (2^53 − 1), got ${text}`,
      { target: name },
    );
  }
  return id;
}

/** The seeds' host endpoints (SPEC §7), all under `HOST_MANAGER`. */
export function registerHostRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { engine, agent, lister } = context.options;

  /** Submits a task on hosts that exist and are free; answers the task at submission. */
  async function submitOnHosts(
    hostIds: readonly number[],
    targetOf: (index: number) => string,
    creator: string,
    template: Template,
    args: () => TaskArguments,
  ): Promise<TaskJson> {
    await context.requireHosts(hostIds, targetOf);
    const reservation = await context.guard.reserve(hostIds, targetOf);
    let task: TaskJson;
    try {
      task = await engine.submit(template, args(), { creator });
    } catch (error) {
      reservation.release();
      throw error;
    }
    reservation.bind(task.id);
    lister.noteSubmitted(task.id);
    return task;
  }

  const singleHost = (path: string, template: Template, argsOf: typeof stopAgentArguments) =>
    app.post<{ Params: { hostId: string } }>(
      path,
      {
        schema: routeSchema({
          summary: template.name,
          description: `${template.description ?? ''} Asynchronous: answers the task at submission (RUNNING; its first step READY, the others PENDING); poll GET /api/v2/tasks/instances/{id}.`,
          tags: [TAG],
          params: hostParams,
          response: responses(taskSchema),
        }),
        config: { dagops: { permissions: HOSTS, noBody: true } },
      },
      async (request, reply) => {
        const hostId = pathId(request.params.hostId, 'hostId');
        const task = await submitOnHosts(
          [hostId],
          () => 'hostId',
          context.callerOf(request).name,
          template,
          () => argsOf({ hostId }),
        );
        return context.ok(request, reply, task);
      },
    );

  singleHost('/compute/hosts/:hostId/agent/stop', stopAgentTemplate, stopAgentArguments);
  singleHost('/compute/hosts/:hostId/agent/restart', restartAgentTemplate, restartAgentArguments);

  app.post<{ Body: { hostIds: number[] } }>(
    '/compute/hosts/batchStopAgents',
    {
      schema: routeSchema({
        summary: batchStopAgentTemplate.name,
        description: `${batchStopAgentTemplate.description ?? ''} Asynchronous: answers the task at submission.`,
        tags: [TAG],
        body: batchStopBody(context.options.maxBatchHosts),
        response: responses(taskSchema),
      }),
      config: { dagops: { permissions: HOSTS } },
    },
    async (request, reply) => {
      const { hostIds } = request.body;
      const targetOf = (i: number) => `hostIds[${i}]`;
      const firstIndex = new Map<number, number>();
      const duplicates: SubError[] = [];
      hostIds.forEach((id, i) => {
        const first = firstIndex.get(id);
        if (first === undefined) firstIndex.set(id, i);
        else {
          duplicates.push({
            code: ServiceErrorCode.REQUEST_INVALID,
            message: `hostIds[${i}] (${id}) duplicates hostIds[${first}]`,
            target: targetOf(i),
          });
        }
      });
      if (duplicates.length > 0) {
        const more = duplicates.length > 1 ? ` (and ${duplicates.length - 1} more)` : '';
        throw new ApiError(
          ServiceErrorCode.REQUEST_INVALID,
          `invalid body: ${(duplicates[0] as SubError).message}${more}`,
          { target: (duplicates[0] as SubError).target ?? 'hostIds', subErrors: duplicates },
        );
      }
      const task = await submitOnHosts(
        hostIds,
        targetOf,
        context.callerOf(request).name,
        batchStopAgentTemplate,
        () => batchStopAgentArguments({ hostIds }),
      );
      return context.ok(request, reply, task);
    },
  );

  app.get<{ Params: { hostId: string } }>(
    '/compute/hosts/:hostId/agent/processes',
    {
      schema: routeSchema({
        summary: "List a host's OCP agent processes",
        tags: [TAG],
        params: hostParams,
        response: responses(pageOf(hostAgentProcessSchema)),
      }),
      config: { dagops: { permissions: HOSTS } },
    },
    async (request, reply) => {
      const hostId = pathId(request.params.hostId, 'hostId');
      await context.requireHosts([hostId], () => 'hostId');
      const processes = await agent.listProcesses(hostId);
      return context.ok(request, reply, {
        contents: processes,
        page: {
          totalElements: processes.length,
          totalPages: 1,
          number: 1,
          size: processes.length,
        },
      });
    },
  );

  app.post<{ Params: { hostId: string; agentProcessId: string } }>(
    '/compute/hosts/:hostId/agent/processes/:agentProcessId/stop',
    {
      schema: routeSchema({
        summary: 'Stop one OCP agent process',
        description:
          'Synchronous: stops the process (SIGTERM, then SIGKILL after the grace period) and answers its HostAgentProcess (pid 0, STOPPED). Refused (409) while an operation holds the host.',
        tags: [TAG],
        params: hostProcessParams,
        response: responses(hostAgentProcessSchema),
      }),
      config: { dagops: { permissions: HOSTS, noBody: true } },
    },
    async (request, reply) => {
      const hostId = pathId(request.params.hostId, 'hostId');
      const processId = pathId(request.params.agentProcessId, 'agentProcessId');
      await context.requireHosts([hostId], () => 'hostId');
      const reservation = await context.guard.reserve([hostId]);
      try {
        const record = await stopAgentProcess(agent, hostId, processId);
        return context.ok(request, reply, record);
      } finally {
        reservation.release();
      }
    },
  );
}
