/**
 * Hands out numeric ids. Expansion asks for one task id and one contiguous block of subtask
 * ids; a store implements this with sequences so ids stay unique across processes.
 */
export interface IdAllocator {
  /** A fresh task id. */
  nextTaskId(): number;
  /** The first of `count` fresh, consecutive subtask ids. */
  reserveSubtaskIds(count: number): number;
}

/** An in-memory {@link IdAllocator} counting up from `start` (default 1). */
export function createCounterIdAllocator(start = 1): IdAllocator {
  let nextTask = start;
  let nextSubtask = start;
  return {
    nextTaskId: () => nextTask++,
    reserveSubtaskIds(count) {
      const first = nextSubtask;
      nextSubtask += count;
      return first;
    },
  };
}
