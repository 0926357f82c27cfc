/**
 * JSON Schemas of the HTTP API: what Fastify validates requests against (ajv, no type
 * coercion, unknown fields refused), what it serialises responses with (fast-json-stringify, keys
 * in the seeds' order), and what `/openapi.json` publishes.
 */
import { Operation, SubtaskStatus, TaskStatus, TaskType, NodeType } from '@dagops/engine';
import { AgentProcessStatus } from '@dagops/definitions';
import type { FastifySchema } from 'fastify';

/** Largest id the API accepts: 2^53 − 1, the largest integer JSON numbers carry exactly. */
export const MAX_ID = Number.MAX_SAFE_INTEGER;

/** A positive integer id in a path: decimal digits, no sign, no leading zero. */
export const ID_PATTERN = '^[1-9][0-9]{0,15}$';

type Schema = Record<string, unknown>;

/** A route's schema with its documentation (`summary`, `description`, `tags`) for OpenAPI. */
export interface RouteSchema extends FastifySchema {
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
}

/** Types a route's schema with its documentation (Fastify's type has no `summary`). */
export const routeSchema = (schema: RouteSchema): FastifySchema => schema;

const idParam = (description: string): Schema => ({
  type: 'string',
  pattern: ID_PATTERN,
  description: `${description}: a positive integer up to 2^53 − 1 (decimal digits, no sign, no leading zero)`,
});

const params = (properties: Record<string, Schema>): Schema => ({
  type: 'object',
  required: Object.keys(properties),
  additionalProperties: false,
  properties,
});

export const hostParams = params({ hostId: idParam('The ID of the host') });
export const hostProcessParams = params({
  hostId: idParam('The ID of the host'),
  agentProcessId: idParam('The ID of the agent process'),
});
export const taskParams = params({ id: idParam('The ID of the task') });
export const subtaskParams = params({
  id: idParam('The ID of the task'),
  sid: idParam('The ID of the subtask'),
});

/** Body of `POST /compute/hosts/batchStopAgents`. */
export function batchStopBody(maxHosts: number): Schema {
  return {
    type: 'object',
    required: ['hostIds'],
    additionalProperties: false,
    properties: {
      hostIds: {
        type: 'array',
        description: `The list of host IDs: at least 1, at most ${maxHosts}, no duplicates`,
        minItems: 1,
        maxItems: maxHosts,
        items: { type: 'integer', minimum: 1, maximum: MAX_ID },
      },
    },
  };
}

/** Most tasks one page of `GET /api/v2/tasks/instances` holds. */
export const MAX_PAGE_SIZE = 100;

export const taskListQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: {
      type: 'string',
      enum: Object.values(TaskStatus),
      description: 'Only tasks in this status',
    },
    name: {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: 'Only tasks whose name contains this text (case-insensitive)',
    },
    page: {
      type: 'string',
      pattern: '^[1-9][0-9]{0,8}$',
      description: 'Page number, from 1 (default 1)',
    },
    size: {
      type: 'string',
      pattern: '^[1-9][0-9]{0,2}$',
      description: `Tasks per page, 1..${MAX_PAGE_SIZE} (default 10)`,
    },
  },
};

export const pictureQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    format: {
      type: 'string',
      enum: ['mermaid', 'dot'],
      description: 'Mermaid flowchart (default) or Graphviz DOT',
    },
  },
};

const timestamp: Schema = {
  type: 'string',
  description: 'ISO-8601 with milliseconds and UTC offset, e.g. 2021-09-03T14:27:59.687+08:00',
};
const idArray: Schema = { type: 'array', items: { type: 'integer' } };

export const subtaskSchema: Schema = {
  type: 'object',
  required: [
    'className',
    'description',
    'downstreams',
    'id',
    'name',
    'nodeType',
    'operation',
    'parallelIdx',
    'prohibitRollback',
    'runTime',
    'seriesId',
    'status',
    'timeout',
    'upstreams',
  ],
  additionalProperties: false,
  properties: {
    className: { type: 'string' },
    description: { type: 'string' },
    downstreams: idArray,
    endTime: timestamp,
    executor: { type: 'string' },
    id: { type: 'integer' },
    name: { type: 'string' },
    nodeType: { type: 'string', enum: Object.values(NodeType) },
    operation: { type: 'string', enum: Object.values(Operation) },
    parallelIdx: { type: 'integer' },
    prohibitRollback: { type: 'boolean' },
    runTime: { type: 'integer' },
    seriesId: { type: 'integer' },
    startTime: timestamp,
    status: { type: 'string', enum: Object.values(SubtaskStatus) },
    timeout: { type: 'number', description: 'seconds' },
    upstreams: idArray,
  },
};

const taskProperties: Record<string, Schema> = {
  context: {
    type: 'object',
    required: ['listMap', 'parallel', 'parallelIdx', 'stringMap'],
    additionalProperties: false,
    properties: {
      listMap: {
        type: 'object',
        additionalProperties: { type: 'array', items: { type: 'string' } },
      },
      parallel: { type: 'boolean' },
      parallelIdx: { type: 'integer' },
      stringMap: { type: 'object', additionalProperties: { type: 'string' } },
    },
  },
  creator: { type: 'string' },
  endTime: timestamp,
  executor: { type: 'string' },
  hostId: { type: 'integer', description: 'Single-host tasks only' },
  id: { type: 'integer' },
  name: { type: 'string' },
  operation: { type: 'string', enum: Object.values(Operation) },
  startTime: timestamp,
  status: { type: 'string', enum: Object.values(TaskStatus) },
  subtasks: { type: 'array', items: subtaskSchema },
  taskDefinitionId: { type: 'integer' },
  type: { type: 'string', enum: Object.values(TaskType) },
};
const taskRequired = [
  'context',
  'creator',
  'executor',
  'id',
  'name',
  'operation',
  'startTime',
  'status',
  'subtasks',
  'taskDefinitionId',
  'type',
];

/** A task in OCP's wire shape (seeds 000, 002, 004). */
export const taskSchema: Schema = {
  type: 'object',
  required: taskRequired,
  additionalProperties: false,
  properties: taskProperties,
};

/** A task without its subtasks, as lists show it. */
export const taskSummarySchema: Schema = {
  type: 'object',
  required: taskRequired.filter((key) => key !== 'subtasks'),
  additionalProperties: false,
  properties: Object.fromEntries(
    Object.entries(taskProperties).filter(([key]) => key !== 'subtasks'),
  ),
};

const nullableString: Schema = { type: ['string', 'null'] };

/** OCP's HostAgentProcess (seed 003). */
export const hostAgentProcessSchema: Schema = {
  type: 'object',
  required: [
    'alias',
    'createTime',
    'elapsedTime',
    'hostId',
    'id',
    'lastActiveTime',
    'logFilePattern',
    'operable',
    'pid',
    'ports',
    'startCommand',
    'status',
    'updateTime',
    'user',
  ],
  additionalProperties: false,
  properties: {
    alias: { type: 'string' },
    createTime: { type: 'string' },
    elapsedTime: { type: 'integer', description: 'seconds' },
    hostId: { type: 'integer' },
    id: { type: 'integer' },
    lastActiveTime: nullableString,
    logFilePattern: nullableString,
    operable: { type: 'boolean' },
    pid: { type: 'integer', description: '0 when stopped' },
    ports: nullableString,
    startCommand: nullableString,
    status: { type: 'string', enum: Object.values(AgentProcessStatus) },
    updateTime: { type: 'string' },
    user: nullableString,
  },
};

/** `{contents, page}`, OCP's shape of a list. */
export function pageOf(item: Schema): Schema {
  return {
    type: 'object',
    required: ['contents', 'page'],
    additionalProperties: false,
    properties: {
      contents: { type: 'array', items: item },
      page: {
        type: 'object',
        required: ['totalElements', 'totalPages', 'number', 'size'],
        additionalProperties: false,
        properties: {
          totalElements: { type: 'integer' },
          totalPages: { type: 'integer' },
          number: { type: 'integer', description: 'this page, from 1' },
          size: { type: 'integer' },
        },
      },
    },
  };
}

export const logSchema: Schema = {
  type: 'object',
  required: ['taskId', 'subtaskId', 'lines'],
  additionalProperties: false,
  properties: {
    taskId: { type: 'integer' },
    subtaskId: { type: 'integer' },
    lines: {
      type: 'array',
      items: {
        type: 'object',
        required: ['runTime', 'time', 'message'],
        additionalProperties: false,
        properties: { runTime: { type: 'integer' }, time: timestamp, message: { type: 'string' } },
      },
    },
  },
};

export const auditSchema: Schema = {
  type: 'object',
  required: ['taskId', 'entries'],
  additionalProperties: false,
  properties: {
    taskId: { type: 'integer' },
    entries: {
      type: 'array',
      items: {
        type: 'object',
        required: ['operation', 'actor', 'time'],
        additionalProperties: false,
        properties: {
          subtaskId: { type: 'integer' },
          operation: { type: 'string', enum: Object.values(Operation) },
          actor: { type: 'string' },
          time: timestamp,
        },
      },
    },
  },
};

export const pictureSchema: Schema = {
  type: 'object',
  required: ['taskId', 'format', 'picture'],
  additionalProperties: false,
  properties: {
    taskId: { type: 'integer' },
    format: { type: 'string', enum: ['mermaid', 'dot'] },
    picture: { type: 'string' },
  },
};

export const healthSchema: Schema = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: { status: { type: 'string', enum: ['UP'] } },
};

const envelopeCommon: Record<string, Schema> = {
  duration: { type: 'integer', description: 'Time the server took, ms' },
  server: { type: 'string', description: 'The server that answered' },
  status: { type: 'integer', description: 'The HTTP status' },
  successful: { type: 'boolean' },
  timestamp: { ...timestamp, description: 'When the server completed the request' },
  traceId: {
    type: 'string',
    pattern: '^[0-9a-f]{16}$',
    description: 'Find the request in the log',
  },
};

/** The success envelope around `data`. */
export function envelopeOf(data: Schema): Schema {
  return {
    type: 'object',
    required: ['data', 'duration', 'server', 'status', 'successful', 'timestamp', 'traceId'],
    additionalProperties: false,
    properties: {
      data,
      duration: envelopeCommon['duration'],
      server: envelopeCommon['server'],
      status: envelopeCommon['status'],
      successful: { type: 'boolean', enum: [true] },
      timestamp: envelopeCommon['timestamp'],
      traceId: envelopeCommon['traceId'],
    },
  };
}

const subErrorSchema: Schema = {
  type: 'object',
  required: ['code', 'message'],
  additionalProperties: false,
  properties: {
    code: { type: 'integer' },
    message: { type: 'string' },
    target: { type: 'string' },
  },
};

/** The failure envelope: no `data`, an `error`. */
export const errorEnvelopeSchema: Schema = {
  type: 'object',
  required: ['duration', 'error', 'server', 'status', 'successful', 'timestamp', 'traceId'],
  additionalProperties: false,
  properties: {
    duration: envelopeCommon['duration'],
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: { type: 'integer', description: 'See docs/service.md for the table of codes' },
        message: { type: 'string' },
        target: { type: 'string' },
        subErrors: { type: 'array', items: subErrorSchema },
      },
    },
    server: envelopeCommon['server'],
    status: envelopeCommon['status'],
    successful: { type: 'boolean', enum: [false] },
    timestamp: envelopeCommon['timestamp'],
    traceId: envelopeCommon['traceId'],
  },
};

/** Response schemas of a route: its data on 200, the failure envelope otherwise. */
export function responses(data: Schema): Record<string, Schema> {
  return {
    200: envelopeOf(data),
    '4xx': errorEnvelopeSchema,
    '5xx': errorEnvelopeSchema,
  };
}
