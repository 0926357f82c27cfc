import { describe, expect, it } from 'vitest';
import { createManualClock, type Clock } from '../clock.js';
import { Deadlines, type DeadlineEntry } from './deadlines.js';

function entry(name: string, expired: string[]): DeadlineEntry {
  return {
    deadline: 0,
    deadlineSeq: 0,
    deadlineList: undefined,
    prevDeadline: undefined,
    nextDeadline: undefined,
    expire: () => expired.push(name),
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Deadlines', () => {
  it('expires entries at their deadlines, earliest first across delays', () => {
    const clock = createManualClock(0);
    const deadlines = new Deadlines(clock);
    const expired: string[] = [];
    deadlines.add(entry('a60', expired), 60, clock.now());
    deadlines.add(entry('b30', expired), 30, clock.now());
    clock.advance(10);
    deadlines.add(entry('c60', expired), 60, clock.now());
    deadlines.add(entry('d20', expired), 20, clock.now());
    clock.advance(19);
    expect(expired).toEqual([]);
    clock.advance(1);
    expect(expired).toEqual(['b30', 'd20']);
    clock.advance(30);
    expect(expired).toEqual(['b30', 'd20', 'a60']);
    clock.advance(100);
    expect(expired).toEqual(['b30', 'd20', 'a60', 'c60']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('expires equal deadlines in the order they were added, whatever their delays', () => {
    const clock = createManualClock(0);
    const deadlines = new Deadlines(clock);
    const expired: string[] = [];
    deadlines.add(entry('first', expired), 50, clock.now());
    clock.advance(20);
    deadlines.add(entry('second', expired), 30, clock.now());
    deadlines.add(entry('third', expired), 30, clock.now());
    clock.advance(30);
    expect(expired).toEqual(['first', 'second', 'third']);
  });

  it('never expires a removed entry, and re-arms past it', () => {
    const clock = createManualClock(0);
    const deadlines = new Deadlines(clock);
    const expired: string[] = [];
    const early = entry('early', expired);
    deadlines.add(early, 10, clock.now());
    deadlines.add(entry('late', expired), 40, clock.now());
    deadlines.remove(early);
    deadlines.remove(early);
    clock.advance(10);
    expect(expired).toEqual([]);
    clock.advance(30);
    expect(expired).toEqual(['late']);
  });

  it('clears its timer once nothing has waited for a turn of the event loop', async () => {
    const clock = createManualClock(0);
    const deadlines = new Deadlines(clock);
    const expired: string[] = [];
    const a = entry('a', expired);
    deadlines.add(a, 1000, clock.now());
    deadlines.remove(a);
    // An attempt that follows at once reuses the armed timer.
    const b = entry('b', expired);
    deadlines.add(b, 1000, clock.now());
    expect(clock.pendingTimers()).toBe(1);
    deadlines.remove(b);
    await nextTurn();
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(5000);
    expect(expired).toEqual([]);
  });
  it('times nothing out early when the wall clock is set forward (monotonic time base)', () => {
    const timers = createManualClock(0);
    let jump = 0;
    const clock: Clock = {
      now: () => timers.now() + jump,
      monotonicNow: () => timers.now(),
      setTimeout: (callback, delayMs) => timers.setTimeout(callback, delayMs),
      clearTimeout: (handle) => timers.clearTimeout(handle),
    };
    const deadlines = new Deadlines(clock);
    const expired: string[] = [];
    deadlines.add(entry('soon', expired), 100, clock.now());
    deadlines.add(entry('later', expired), 10_000, clock.now());
    jump = 3_600_000;
    timers.advance(100);
    expect(expired).toEqual(['soon']);
    timers.advance(9_899);
    expect(expired).toEqual(['soon']);
    timers.advance(1);
    expect(expired).toEqual(['soon', 'later']);
  });
});
