import { MAX_TEMPLATE_EDGES, MAX_TEMPLATE_NODES, MAX_TIMEOUT_SECONDS } from './template.js';

/**
 * JSON Schema (draft-07) of a {@link Template}. Structural rules live here; graph rules
 * (unique keys, known edge ends, acyclicity, split compatibility) are checked by
 * `validateTemplate`, which applies this schema first.
 */
export const templateJsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://dagops.dev/schemas/template.json',
  title: 'dagops template',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'nodes', 'edges'],
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    prohibitRollback: { type: 'boolean' },
    concurrency: { type: 'integer', minimum: 1 },
    autoRollback: { type: 'boolean' },
    nodes: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_TEMPLATE_NODES,
      items: { $ref: '#/definitions/node' },
    },
    edges: { type: 'array', maxItems: MAX_TEMPLATE_EDGES, items: { $ref: '#/definitions/edge' } },
  },
  definitions: {
    node: {
      type: 'object',
      additionalProperties: false,
      required: ['key', 'className', 'name', 'timeout'],
      properties: {
        key: { type: 'string', minLength: 1 },
        className: { type: 'string', minLength: 1 },
        name: { type: 'string', minLength: 1 },
        description: { type: 'string' },
        timeout: { type: 'number', exclusiveMinimum: 0, maximum: MAX_TIMEOUT_SECONDS },
        retry: { $ref: '#/definitions/retry' },
        prohibitRollback: { type: 'boolean' },
        splitKey: { type: 'string', minLength: 1 },
        splitMethod: { enum: ['PARALLEL', 'SERIAL'] },
      },
    },
    retry: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxAttempts: { type: 'integer', minimum: 1 },
        initialIntervalSeconds: { type: 'number', minimum: 0 },
        backoffCoefficient: { type: 'number', minimum: 1 },
        maxIntervalSeconds: { type: 'number', minimum: 0 },
        nonRetryableCodes: { type: 'array', items: { type: ['string', 'integer'] } },
      },
    },
    edge: {
      type: 'object',
      additionalProperties: false,
      required: ['from', 'to'],
      properties: {
        from: { type: 'string', minLength: 1 },
        to: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;
