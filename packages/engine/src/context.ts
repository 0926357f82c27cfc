import type { TaskContext } from './task.js';

/**
 * A subtask's context as a difference from its task's context: only the string keys whose value
 * differs and the lists that differ. Storing deltas keeps a 100k-host `host_ids` list out of
 * every subtask's saved input and output.
 */
export interface ContextDelta {
  readonly stringMap?: Readonly<Record<string, string>>;
  readonly listMap?: Readonly<Record<string, readonly string[]>>;
}

/** The delta of a context equal to its task's. */
export const EMPTY_DELTA: ContextDelta = Object.freeze({});

/** Two upstream outputs disagree on a string key. */
export interface ContextConflict {
  readonly key: string;
  readonly values: readonly string[];
}

/** Result of {@link mergeUpstreamOutputs}. */
export type MergeResult =
  | { readonly ok: true; readonly delta: ContextDelta }
  | { readonly ok: false; readonly conflict: ContextConflict };

const isEmpty = (delta: ContextDelta) =>
  delta.stringMap === undefined && delta.listMap === undefined;

/** `map[key]` when it is the map's own: a key like `constructor` must not find Object.prototype's. */
function own<T>(map: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Sets `map[key]` as an own property, even for `__proto__` (assignment would set the prototype). */
function define<T>(map: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
}

function sameList(a: readonly string[], b: readonly string[] | undefined): boolean {
  if (!b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Merges the outputs of a subtask's upstreams into its input (SPEC §4): string keys must agree
 * (a key two upstreams hold with different values is a conflict), lists are united without
 * duplicates. Outputs and the result are deltas over `task`.
 */
export function mergeUpstreamOutputs(
  task: TaskContext,
  outputs: readonly ContextDelta[],
): MergeResult {
  const first = outputs[0];
  if (first === undefined) return { ok: true, delta: EMPTY_DELTA };
  let allSame = true;
  for (const output of outputs) {
    if (output !== first) {
      allSame = false;
      break;
    }
  }
  if (allSame) return { ok: true, delta: first };
  const changed = outputs.filter((output) => !isEmpty(output));
  if (changed.length === 0) return { ok: true, delta: EMPTY_DELTA };

  const stringMap: Record<string, string> = {};
  let hasStrings = false;
  const stringKeys = new Set(changed.flatMap((output) => Object.keys(output.stringMap ?? {})));
  for (const key of stringKeys) {
    const values = new Set<string>();
    for (const output of outputs) {
      const value = own(output.stringMap, key) ?? own(task.stringMap, key);
      if (value !== undefined) values.add(value);
    }
    if (values.size > 1) return { ok: false, conflict: { key, values: [...values] } };
    const [value] = values;
    if (value !== undefined && value !== own(task.stringMap, key)) {
      define(stringMap, key, value);
      hasStrings = true;
    }
  }

  const listMap: Record<string, readonly string[]> = {};
  let hasLists = false;
  const listKeys = new Set(changed.flatMap((output) => Object.keys(output.listMap ?? {})));
  for (const key of listKeys) {
    const union = new Set<string>();
    for (const output of outputs) {
      for (const item of own(output.listMap, key) ?? own(task.listMap, key) ?? []) union.add(item);
    }
    const list = [...union];
    if (!sameList(list, own(task.listMap, key))) {
      define(listMap, key, list);
      hasLists = true;
    }
  }
  return {
    ok: true,
    delta: {
      ...(hasStrings ? { stringMap } : {}),
      ...(hasLists ? { listMap } : {}),
    },
  };
}

/** `input` with the handler's writes applied; the same object when nothing was written. */
export function applyWrites(
  input: ContextDelta,
  strings: ReadonlyMap<string, string> | undefined,
  lists: ReadonlyMap<string, readonly string[]> | undefined,
): ContextDelta {
  if (!strings && !lists) return input;
  return {
    ...(input.stringMap || strings
      ? { stringMap: { ...input.stringMap, ...Object.fromEntries(strings ?? []) } }
      : {}),
    ...(input.listMap || lists
      ? { listMap: { ...input.listMap, ...Object.fromEntries(lists ?? []) } }
      : {}),
  };
}

/** The full context a delta stands for: `task` with the delta applied. */
export function resolveContext(
  task: TaskContext,
  delta: ContextDelta,
): { stringMap: Record<string, string>; listMap: Record<string, readonly string[]> } {
  return {
    stringMap: { ...task.stringMap, ...delta.stringMap },
    listMap: { ...task.listMap, ...delta.listMap },
  };
}
