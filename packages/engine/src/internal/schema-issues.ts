import type { ErrorObject } from 'ajv';
import type { ValidationIssue } from '../errors.js';

/** Reads the value at a JSON pointer inside `root`; undefined when the path does not exist. */
function valueAt(root: unknown, pointer: string): unknown {
  let current: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/**
 * Turns a JSON pointer into a readable path, naming nodes by key where it can:
 * `/nodes/2/timeout` → `nodes[2] ("stop").timeout`.
 */
export function readablePath(root: unknown, pointer: string, base: string): string {
  let path = base;
  let current: unknown = root;
  let parentKey: string | undefined;
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const next: unknown =
      current !== null && typeof current === 'object'
        ? (current as Record<string, unknown>)[segment]
        : undefined;
    if (Array.isArray(current) && /^\d+$/.test(segment)) {
      path += `[${segment}]`;
      const key = (next as { key?: unknown } | undefined)?.key;
      if (parentKey === 'nodes' && typeof key === 'string') path += ` (${JSON.stringify(key)})`;
    } else {
      path += path === '' ? segment : `.${segment}`;
    }
    parentKey = segment;
    current = next;
  }
  return path === '' ? '(root)' : path;
}

/** Converts Ajv's errors into issues that name the field and the value received. */
export function schemaIssues(
  root: unknown,
  errors: readonly ErrorObject[],
  base: string,
): ValidationIssue[] {
  return errors.map((error) => {
    const at = readablePath(root, error.instancePath, base);
    const join = (field: string) => (at === '(root)' ? field : `${at}.${field}`);
    switch (error.keyword) {
      case 'required': {
        const field = (error.params as { missingProperty: string }).missingProperty;
        return { path: join(field), message: 'is required', value: undefined };
      }
      case 'additionalProperty':
      case 'additionalProperties': {
        const field = (error.params as { additionalProperty: string }).additionalProperty;
        return {
          path: join(field),
          message: 'is not a known field',
          value: valueAt(root, `${error.instancePath}/${field}`),
        };
      }
      case 'enum': {
        const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
        return {
          path: at,
          message: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`,
          value: valueAt(root, error.instancePath),
        };
      }
      default:
        return {
          path: at,
          message: error.message ?? `fails ${error.keyword}`,
          value: valueAt(root, error.instancePath),
        };
    }
  });
}
