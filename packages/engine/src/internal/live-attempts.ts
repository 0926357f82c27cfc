/** What {@link LiveAttempts} holds: an attempt that remembers where it is kept. */
export interface LiveEntry {
  readonly subtaskId: number;
  readonly runTime: number;
  /** Its index in {@link LiveAttempts}; -1 when not kept. Only {@link LiveAttempts} writes it. */
  liveSlot: number;
}

/**
 * The attempts running in this process, for a cancel or a lost lease to reach them. Adding and
 * removing are O(1) and allocate nothing (an array with swap-remove, each entry knowing its
 * slot), where a Map keyed by subtask id rehashes as attempts come and go on the hot path.
 * Finding an attempt scans, over at most the engine's concurrency: only cancels and lost
 * leases look one up.
 */
export class LiveAttempts<T extends LiveEntry> {
  private readonly entries: T[] = [];

  /** Keeps `entry` until {@link remove}. */
  add(entry: T): void {
    entry.liveSlot = this.entries.length;
    this.entries.push(entry);
  }

  /** Forgets `entry`; ignored when it is not kept. */
  remove(entry: T): void {
    const slot = entry.liveSlot;
    if (slot < 0 || this.entries[slot] !== entry) return;
    const last = this.entries.pop() as T;
    if (last !== entry) {
      this.entries[slot] = last;
      last.liveSlot = slot;
    }
    entry.liveSlot = -1;
  }

  /** The latest attempt of `subtaskId` kept here (the highest runTime), if any. */
  find(subtaskId: number): T | undefined {
    let found: T | undefined;
    for (const entry of this.entries) {
      if (entry.subtaskId === subtaskId && (!found || entry.runTime > found.runTime)) found = entry;
    }
    return found;
  }
}
