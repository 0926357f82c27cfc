import {
  PROHIBIT_ROLLBACK_KEY,
  TaskArgumentsError,
  type TaskArguments,
  type ValidationIssue,
} from '@dagops/engine';
import {
  batchStopAgentTemplate,
  HOST_ID_KEY,
  HOST_IDS_KEY,
  restartAgentTemplate,
  stopAgentTemplate,
} from './agent-templates.js';

/** Input of a single-host agent operation (Stop OCP agent, Restart OCP agent). */
export interface HostAgentOperationInput {
  /** The host; a positive safe integer. */
  readonly hostId: number;
  /** When true, the task can never be rolled back. @default false */
  readonly prohibitRollback?: boolean;
}

/** Input of Batch stop OCP agent. */
export interface BatchStopAgentInput {
  /** The hosts: non-empty, positive safe integers, no duplicates. */
  readonly hostIds: readonly number[];
  /** When true, the task can never be rolled back. @default false */
  readonly prohibitRollback?: boolean;
}

function isHostId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

const HOST_ID_RULE = 'must be a positive safe integer';

function commonIssues(
  input: Record<string, unknown>,
  known: readonly string[],
  issues: ValidationIssue[],
): void {
  for (const [field, value] of Object.entries(input)) {
    if (!known.includes(field))
      issues.push({ path: field, message: 'is not a known field', value });
  }
  const prohibit = input['prohibitRollback'];
  if (prohibit !== undefined && typeof prohibit !== 'boolean') {
    issues.push({ path: 'prohibitRollback', message: 'must be a boolean', value: prohibit });
  }
}

function asRecord(templateName: string, input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new TaskArgumentsError(JSON.stringify(templateName), [
      { path: 'input', message: 'must be an object', value: input },
    ]);
  }
  return input as Record<string, unknown>;
}

function singleHost(templateName: string, input: HostAgentOperationInput): TaskArguments {
  const record = asRecord(templateName, input);
  const issues: ValidationIssue[] = [];
  if (!isHostId(record['hostId'])) {
    issues.push({ path: 'hostId', message: HOST_ID_RULE, value: record['hostId'] });
  }
  commonIssues(record, ['hostId', 'prohibitRollback'], issues);
  if (issues.length > 0) throw new TaskArgumentsError(JSON.stringify(templateName), issues);
  return {
    stringMap: {
      [PROHIBIT_ROLLBACK_KEY]: String(input.prohibitRollback ?? false),
      [HOST_ID_KEY]: String(input.hostId),
    },
  };
}

/**
 * Arguments of {@link stopAgentTemplate}: `{stringMap: {prohibit_rollback, host_id}}`.
 * @throws TaskArgumentsError (20011) naming each bad field and the value it got.
 * @example stopAgentArguments({ hostId: 2 }) // { stringMap: { prohibit_rollback: 'false', host_id: '2' } }
 */
export function stopAgentArguments(input: HostAgentOperationInput): TaskArguments {
  return singleHost(stopAgentTemplate.name, input);
}

/**
 * Arguments of {@link restartAgentTemplate}: `{stringMap: {prohibit_rollback, host_id}}`.
 * @throws TaskArgumentsError (20011) naming each bad field and the value it got.
 */
export function restartAgentArguments(input: HostAgentOperationInput): TaskArguments {
  return singleHost(restartAgentTemplate.name, input);
}

/**
 * Arguments of {@link batchStopAgentTemplate}: `{stringMap: {prohibit_rollback}, listMap:
 * {host_ids}}`, hosts in the given order (branch `parallelIdx` i is `hostIds[i]`).
 * @throws TaskArgumentsError (20011) naming each bad field or element and the value it got
 *   (an empty list, a bad id, a duplicate and the index it repeats).
 * @example batchStopAgentArguments({ hostIds: [1001, 1002] })
 */
export function batchStopAgentArguments(input: BatchStopAgentInput): TaskArguments {
  const name = batchStopAgentTemplate.name;
  const record = asRecord(name, input);
  const issues: ValidationIssue[] = [];
  const hostIds = record['hostIds'];
  if (!Array.isArray(hostIds)) {
    issues.push({ path: 'hostIds', message: 'must be an array of host ids', value: hostIds });
  } else if (hostIds.length === 0) {
    issues.push({ path: 'hostIds', message: 'must not be empty', value: hostIds });
  } else {
    const seen = new Map<number, number>();
    hostIds.forEach((id: unknown, i) => {
      if (!isHostId(id)) {
        issues.push({ path: `hostIds[${i}]`, message: HOST_ID_RULE, value: id });
        return;
      }
      const first = seen.get(id);
      if (first === undefined) seen.set(id, i);
      else
        issues.push({ path: `hostIds[${i}]`, message: `duplicates hostIds[${first}]`, value: id });
    });
  }
  commonIssues(record, ['hostIds', 'prohibitRollback'], issues);
  if (issues.length > 0) throw new TaskArgumentsError(JSON.stringify(name), issues);
  return {
    stringMap: { [PROHIBIT_ROLLBACK_KEY]: String(input.prohibitRollback ?? false) },
    listMap: { [HOST_IDS_KEY]: input.hostIds.map(String) },
  };
}
