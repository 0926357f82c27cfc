import { TaskArgumentsError, type ValidationIssue } from './errors.js';
import type { TaskContext } from './task.js';

/** The arguments of a task: strings, and lists that split nodes fan out over. */
export interface TaskArguments {
  /** String arguments, e.g. `{ host_id: '2' }`. */
  readonly stringMap?: Readonly<Record<string, string>>;
  /** List arguments, e.g. `{ host_ids: ['1001', '1002'] }`. */
  readonly listMap?: Readonly<Record<string, readonly string[]>>;
}

/** The context key that records whether the task may be rolled back. */
export const PROHIBIT_ROLLBACK_KEY = 'prohibit_rollback';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Lists what is wrong with `input` as {@link TaskArguments}; empty when it is fine. */
export function argumentIssues(input: unknown): ValidationIssue[] {
  if (input === undefined) return [];
  if (!isPlainObject(input)) {
    return [{ path: 'arguments', message: 'must be an object', value: input }];
  }
  const issues: ValidationIssue[] = [];
  for (const [field, value] of Object.entries(input)) {
    if (field !== 'stringMap' && field !== 'listMap') {
      issues.push({ path: field, message: 'is not a known field', value });
    } else if (value !== undefined && !isPlainObject(value)) {
      issues.push({ path: field, message: 'must be an object', value });
    }
  }
  const { stringMap, listMap } = input;
  if (isPlainObject(stringMap)) {
    for (const [key, value] of Object.entries(stringMap)) {
      if (typeof value !== 'string') {
        issues.push({ path: `stringMap.${key}`, message: 'must be a string', value });
      }
    }
    const prohibit = stringMap[PROHIBIT_ROLLBACK_KEY];
    if (prohibit !== undefined && prohibit !== 'true' && prohibit !== 'false') {
      issues.push({
        path: `stringMap.${PROHIBIT_ROLLBACK_KEY}`,
        message: 'must be "true" or "false"',
        value: prohibit,
      });
    }
  }
  if (isPlainObject(listMap)) {
    for (const [key, value] of Object.entries(listMap)) {
      if (!Array.isArray(value)) {
        issues.push({ path: `listMap.${key}`, message: 'must be an array of strings', value });
        continue;
      }
      const bad = value.findIndex((item) => typeof item !== 'string');
      if (bad >= 0) {
        issues.push({
          path: `listMap.${key}[${bad}]`,
          message: 'must be a string',
          value: value[bad],
        });
      }
    }
  }
  return issues;
}

/**
 * Checks `input` and builds the task context: a copy of the arguments with
 * `prohibit_rollback` first in `stringMap` (`"true"` when the template or the arguments say so).
 * Throws {@link TaskArgumentsError} naming every bad field and its value.
 */
export function buildTaskContext(
  templateName: string,
  input: unknown,
  templateProhibitsRollback: boolean,
): TaskContext {
  const issues = argumentIssues(input);
  if (issues.length > 0) throw new TaskArgumentsError(JSON.stringify(templateName), issues);
  const args = (input ?? {}) as TaskArguments;
  const { [PROHIBIT_ROLLBACK_KEY]: prohibit, ...rest } = args.stringMap ?? {};
  // fromEntries defines keys, so a `__proto__` list stays a list (assignment would not).
  const listMap = Object.fromEntries(
    Object.entries(args.listMap ?? {}).map(([key, list]) => [key, [...list]]),
  );
  return {
    listMap,
    parallel: false,
    parallelIdx: -1,
    stringMap: {
      [PROHIBIT_ROLLBACK_KEY]: templateProhibitsRollback || prohibit === 'true' ? 'true' : 'false',
      ...rest,
    },
  };
}
