import { HostOperationConflictError } from '../errors.js';
import type { HostOperationMark } from '../host-agent.js';
import { formatAgentTime } from './agent-time.js';

/**
 * A host's operation mark as agents keep it (plain JSON, so `LocalProcessAgent` can persist it),
 * and the rules both agents share: one owner at a time, re-marking by the owner is a no-op,
 * notes are first-write-wins.
 */
export interface MarkRecord {
  owner: string;
  /** Epoch milliseconds. */
  markedAt: number;
  notes: Record<string, string[]>;
}

/** The mark after `owner` asks for it; throws when someone else holds it. */
export function takeMark(
  hostId: number,
  current: MarkRecord | undefined,
  owner: string,
  now: number,
): MarkRecord {
  if (current === undefined) return { owner, markedAt: now, notes: {} };
  if (current.owner !== owner) throw new HostOperationConflictError(hostId, owner, current.owner);
  return current;
}

/** Whether `owner` may clear `current` (it holds it). */
export function mayClear(current: MarkRecord | undefined, owner: string): boolean {
  return current !== undefined && current.owner === owner;
}

/** Records a note in the mark `owner` holds (first write wins); returns the stored values. */
export function addNote(
  hostId: number,
  current: MarkRecord | undefined,
  owner: string,
  key: string,
  values: readonly string[],
): readonly string[] {
  if (current === undefined || current.owner !== owner) {
    throw new HostOperationConflictError(hostId, owner, current?.owner);
  }
  if (!Object.hasOwn(current.notes, key)) {
    Object.defineProperty(current.notes, key, {
      value: [...values],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return [...(current.notes[key] as string[])];
}

/** The public view of a mark. */
export function markView(
  hostId: number,
  record: MarkRecord,
  utcOffsetMinutes: number | undefined,
): HostOperationMark {
  const notes: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(record.notes)) {
    Object.defineProperty(notes, key, { value: [...values], enumerable: true });
  }
  return {
    hostId,
    owner: record.owner,
    markedAt: formatAgentTime(record.markedAt, utcOffsetMinutes),
    notes,
  };
}
