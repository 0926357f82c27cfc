import { describe, expect, it } from 'vitest';
import { createManualClock } from '../clock.js';
import { WakeTimer } from './wake-timer.js';

describe('WakeTimer', () => {
  it('wakes once, at the earliest time asked for', () => {
    const clock = createManualClock(0);
    const woken: number[] = [];
    const timer = new WakeTimer(clock, () => woken.push(clock.now()));
    timer.wakeAt(500);
    timer.wakeAt(200);
    timer.wakeAt(900);
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(1000);
    expect(woken).toEqual([200]);
    timer.wakeAt(1100);
    clock.advance(200);
    expect(woken).toEqual([200, 1100]);
  });

  it('ignores requests once stopped, and clears its timer', () => {
    const clock = createManualClock(0);
    const woken: number[] = [];
    const timer = new WakeTimer(clock, () => woken.push(clock.now()));
    timer.wakeAt(100);
    timer.stop();
    timer.wakeAt(50);
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(1000);
    expect(woken).toEqual([]);
  });
});
