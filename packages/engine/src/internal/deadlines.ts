import type { Clock, TimerHandle } from '../clock.js';

/**
 * Something with a deadline, linked into {@link Deadlines} through its own fields, so that no
 * node is allocated per entry. Only {@link Deadlines} writes the fields.
 */
export interface DeadlineEntry {
  /** When {@link DeadlineEntry.expire} is called, on the time base of {@link Deadlines}. */
  deadline: number;
  /** Order of addition: of two equal deadlines, the one added first expires first. */
  deadlineSeq: number;
  /** The list it waits in; undefined when it does not wait. */
  deadlineList: DeadlineList | undefined;
  prevDeadline: DeadlineEntry | undefined;
  nextDeadline: DeadlineEntry | undefined;
  /** Called once the deadline has passed, unless the entry was removed before. */
  expire(): void;
}

/** The entries added with one delay: in deadline order, since the clock only moves forward. */
export interface DeadlineList {
  head: DeadlineEntry | undefined;
  tail: DeadlineEntry | undefined;
}

/** Empty lists kept for reuse while nothing waits; past this many, they are dropped. */
const KEEP_LISTS = 64;

const precedes = (a: DeadlineEntry, b: DeadlineEntry): boolean =>
  a.deadline < b.deadline || (a.deadline === b.deadline && a.deadlineSeq < b.deadlineSeq);

/**
 * The deadlines of running attempts on one clock timer. A timer per attempt costs a setTimeout
 * and a clearTimeout (~0.5 µs and ~200 bytes) on the engine's hottest path; here an attempt is
 * linked into a list and unlinked. Entries added with the same delay expire in the order they
 * were added, so one list per delay stays sorted and the earliest deadline is at one of the
 * heads. The timer is armed for the earliest deadline (a removal does not re-arm it: it fires
 * early and re-arms). Once nothing waits, it is cleared at the next turn of the event loop if
 * nothing waits by then: an idle engine holds no timer, and attempts that follow one another
 * (a chain) do not set and clear a timer each. Deadlines are on the clock's monotonic time base
 * when it has one (the system clock: `performance.now`), so that setting the wall clock
 * forward times nothing out early; otherwise on its `now` (a manual clock).
 */
export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private waiting = 0;
  private seq = 0;
  private timer: TimerHandle;
  /** When the armed timer fires; Infinity when none is armed. */
  private armedAt = Number.POSITIVE_INFINITY;
  private readonly fire = () => this.expireDue();
  private idleCheck = false;
  private readonly disarmIfIdle = () => {
    this.idleCheck = false;
    if (this.waiting === 0) this.disarm();
  };

  /** The clock's monotonic time when it has one: a wall clock set forward expires nothing. */
  private readonly monotonic: (() => number) | undefined;

  constructor(private readonly clock: Clock) {
    this.monotonic = clock.monotonicNow?.bind(clock);
  }

  /**
   * Calls `entry.expire()` `delayMs` from now, unless the entry is removed before. `now` is the
   * clock's `now()` as the caller read it; a clock with a monotonic time base is read instead.
   */
  add(entry: DeadlineEntry, delayMs: number, clockNow: number): void {
    const now = this.monotonic ? this.monotonic() : clockNow;
    let list = this.lists.get(delayMs);
    if (!list) this.lists.set(delayMs, (list = { head: undefined, tail: undefined }));
    const deadline = now + delayMs;
    entry.deadline = deadline;
    entry.deadlineSeq = this.seq++;
    entry.deadlineList = list;
    entry.prevDeadline = list.tail;
    entry.nextDeadline = undefined;
    if (list.tail) list.tail.nextDeadline = entry;
    else list.head = entry;
    list.tail = entry;
    this.waiting++;
    if (deadline < this.armedAt) this.arm(deadline, now);
  }

  /** Forgets `entry`; ignored when it does not wait. */
  remove(entry: DeadlineEntry): void {
    const list = entry.deadlineList;
    if (!list) return;
    const { prevDeadline: prev, nextDeadline: next } = entry;
    if (prev) prev.nextDeadline = next;
    else list.head = next;
    if (next) next.prevDeadline = prev;
    else list.tail = prev;
    entry.deadlineList = undefined;
    entry.prevDeadline = undefined;
    entry.nextDeadline = undefined;
    if (--this.waiting === 0 && !this.idleCheck && this.timer !== undefined) {
      this.idleCheck = true;
      setImmediate(this.disarmIfIdle);
    }
  }

  private arm(at: number, now: number): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = this.clock.setTimeout(this.fire, Math.max(0, at - now));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    if (this.lists.size > KEEP_LISTS) this.lists.clear();
  }

  /** Expires what is due, earliest first, then arms the timer for the next deadline. */
  private expireDue(): void {
    // The timer's own word counts too: its time has come even when the clock lags it a little.
    const now = Math.max(this.monotonic ? this.monotonic() : this.clock.now(), this.armedAt);
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    for (let entry = this.earliest(); entry; entry = this.earliest()) {
      if (entry.deadline > now) {
        this.arm(entry.deadline, now);
        return;
      }
      this.remove(entry);
      entry.expire();
    }
  }

  private earliest(): DeadlineEntry | undefined {
    let best: DeadlineEntry | undefined;
    for (const { head } of this.lists.values()) {
      if (head && (!best || precedes(head, best))) best = head;
    }
    return best;
  }
}
