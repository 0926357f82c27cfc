import type { FastifyInstance } from 'fastify';
import {
  DagopsError,
  ErrorCode,
  formatTimestamp,
  readTask,
  renderDot,
  renderMermaid,
  toTaskJson,
  type TaskJson,
  type TaskStatus,
} from '@dagops/engine';
import { ApiError, ServiceErrorCode } from '../api-error.js';
import type { ServiceContext } from '../build-server.js';
import { FinishedTaskCache } from '../finished-task-cache.js';
import { Permission } from '../permissions.js';
import {
  MAX_PAGE_SIZE,
  auditSchema,
  logSchema,
  pageOf,
  pictureQuery,
  pictureSchema,
  responses,
  routeSchema,
  subtaskParams,
  taskListQuery,
  taskParams,
  taskSchema,
  taskSummarySchema,
} from '../schemas.js';
import { pathId } from './host-routes.js';

/** Operations need TASK_MANAGER; reading a task is also open to HOST_MANAGER (who started it). */
const OPERATE = [Permission.TASK_MANAGER] as const;
const READ = [Permission.TASK_MANAGER, Permission.HOST_MANAGER] as const;
const TAG = 'tasks';
const BASE = '/api/v2/tasks/instances';

type TaskParams = { Params: { id: string } };
type SubtaskParams = { Params: { id: string; sid: string } };

/** OCP's task management (SPEC §7), the DAG picture and the audit trail. */
export function registerTaskRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { engine, lister } = context.options;
  const offset = context.options.utcOffsetMinutes;
  const jsonOptions = offset === undefined ? {} : { utcOffsetMinutes: offset };
  const finished = new FinishedTaskCache(context.options.taskCacheSize);

  app.get<{ Querystring: { status?: TaskStatus; name?: string; page?: string; size?: string } }>(
    BASE,
    {
      schema: routeSchema({
        summary: 'List tasks, newest first',
        tags: [TAG],
        querystring: taskListQuery,
        response: responses(pageOf(taskSummarySchema)),
      }),
      config: { dagops: { permissions: READ } },
    },
    async (request, reply) => {
      const { status, name } = request.query;
      const page = Number(request.query.page ?? 1);
      const size = Number(request.query.size ?? 10);
      if (size > MAX_PAGE_SIZE) {
        throw new ApiError(
          ServiceErrorCode.REQUEST_INVALID,
          `size must be at most ${MAX_PAGE_SIZE}, got ${size}`,
          { target: 'size' },
        );
      }
      const found = await lister.listTasks({
        ...(status === undefined ? {} : { status }),
        ...(name === undefined ? {} : { name }),
        offset: (page - 1) * size,
        limit: size,
      });
      const contents = found.tasks.map((task) => {
        const summary: Partial<TaskJson> = toTaskJson(task, [], jsonOptions);
        delete summary.subtasks;
        return summary;
      });
      return context.ok(request, reply, {
        contents,
        page: {
          totalElements: found.total,
          totalPages: Math.ceil(found.total / size),
          number: page,
          size,
        },
      });
    },
  );

  app.get<TaskParams>(
    `${BASE}/:id`,
    {
      schema: routeSchema({
        summary: 'Get a task with its subtasks',
        tags: [TAG],
        params: taskParams,
        response: responses(taskSchema),
      }),
      config: { dagops: { permissions: READ } },
    },
    async (request, reply) => {
      const taskId = pathId(request.params.id, 'id');
      const cached = finished.get(taskId);
      if (cached) return context.ok(request, reply, cached);
      const read = await readTask(engine.store, taskId);
      if (!read) {
        throw new DagopsError(ErrorCode.TASK_NOT_FOUND, `task ${taskId} does not exist`, {
          target: 'id',
        });
      }
      return context.ok(
        request,
        reply,
        finished.offer(toTaskJson(read.task, read.subtasks, jsonOptions)),
      );
    },
  );

  const taskOperation = (
    verb: string,
    summary: string,
    apply: (taskId: number, actor: string) => Promise<TaskJson>,
  ) =>
    app.post<TaskParams>(
      `${BASE}/:id/${verb}`,
      {
        schema: routeSchema({
          summary,
          tags: [TAG],
          params: taskParams,
          response: responses(taskSchema),
        }),
        config: { dagops: { permissions: OPERATE, noBody: true } },
      },
      async (request, reply) => {
        const taskId = pathId(request.params.id, 'id');
        return context.ok(request, reply, await apply(taskId, context.callerOf(request).name));
      },
    );

  taskOperation('retry', 'Retry a FAILED task: every FAILED subtask runs again', (id, actor) =>
    engine.retryTask(id, actor),
  );
  taskOperation(
    'rollback',
    'Roll back a FAILED task: what ran is undone, downstreams first',
    (id, actor) => engine.rollbackTask(id, actor),
  );
  taskOperation(
    'cancel',
    'Cancel a RUNNING task: running subtasks are canceled, nothing new starts',
    (id, actor) => engine.cancelTask(id, actor),
  );

  const subtaskOperation = (
    verb: string,
    summary: string,
    apply: (taskId: number, subtaskId: number, actor: string) => Promise<TaskJson>,
  ) =>
    app.post<SubtaskParams>(
      `${BASE}/:id/subtasks/:sid/${verb}`,
      {
        schema: routeSchema({
          summary,
          tags: [TAG],
          params: subtaskParams,
          response: responses(taskSchema),
        }),
        config: { dagops: { permissions: OPERATE, noBody: true } },
      },
      async (request, reply) => {
        const taskId = pathId(request.params.id, 'id');
        const subtaskId = pathId(request.params.sid, 'sid');
        return context.ok(
          request,
          reply,
          await apply(taskId, subtaskId, context.callerOf(request).name),
        );
      },
    );

  subtaskOperation('retry', 'Retry a FAILED subtask', (id, sid, actor) =>
    engine.retrySubtask(id, sid, actor),
  );
  subtaskOperation(
    'skip',
    'Skip a FAILED subtask (in a rollback: skip its failed rollback)',
    (id, sid, actor) => engine.skipSubtask(id, sid, actor),
  );
  subtaskOperation('cancel', 'Cancel a RUNNING subtask', (id, sid, actor) =>
    engine.cancelSubtask(id, sid, actor),
  );

  app.get<SubtaskParams>(
    `${BASE}/:id/subtasks/:sid/log`,
    {
      schema: routeSchema({
        summary: "A subtask's log lines, oldest first",
        description: '404 unless the subtask belongs to the task.',
        tags: [TAG],
        params: subtaskParams,
        response: responses(logSchema),
      }),
      config: { dagops: { permissions: READ } },
    },
    async (request, reply) => {
      const taskId = pathId(request.params.id, 'id');
      const subtaskId = pathId(request.params.sid, 'sid');
      const entries = await engine.getSubtaskLogs(taskId, subtaskId);
      return context.ok(request, reply, {
        taskId,
        subtaskId,
        lines: entries.map((entry) => ({
          runTime: entry.runTime,
          time: formatTimestamp(entry.time, offset),
          message: entry.message,
        })),
      });
    },
  );

  app.get<TaskParams & { Querystring: { format?: 'mermaid' | 'dot' } }>(
    `${BASE}/:id/picture`,
    {
      schema: routeSchema({
        summary: "The task's DAG, coloured by subtask status",
        description:
          'A Mermaid flowchart (paste it into any Mermaid renderer) or a Graphviz DOT digraph.',
        tags: [TAG],
        params: taskParams,
        querystring: pictureQuery,
        response: responses(pictureSchema),
      }),
      config: { dagops: { permissions: READ } },
    },
    async (request, reply) => {
      const taskId = pathId(request.params.id, 'id');
      const format = request.query.format ?? 'mermaid';
      const task = await engine.store.getTask(taskId);
      if (!task) {
        throw new DagopsError(ErrorCode.TASK_NOT_FOUND, `task ${taskId} does not exist`, {
          target: 'id',
        });
      }
      const drawable = { name: task.name, subtasks: await engine.store.listSubtasks(taskId) };
      const picture = format === 'dot' ? renderDot(drawable) : renderMermaid(drawable);
      return context.ok(request, reply, { taskId, format, picture });
    },
  );

  app.get<TaskParams>(
    `${BASE}/:id/audit`,
    {
      schema: routeSchema({
        summary: 'Who did what to a task, and when (the submission first)',
        tags: [TAG],
        params: taskParams,
        response: responses(auditSchema),
      }),
      config: { dagops: { permissions: READ } },
    },
    async (request, reply) => {
      const taskId = pathId(request.params.id, 'id');
      const trail = await engine.getAuditTrail(taskId);
      return context.ok(request, reply, {
        taskId,
        entries: trail.map((entry) => ({
          ...(entry.subtaskId === undefined ? {} : { subtaskId: entry.subtaskId }),
          operation: entry.operation,
          actor: entry.actor,
          time: formatTimestamp(entry.now, offset),
        })),
      });
    },
  );
}
