import { describe, expect, it } from 'vitest';
import { LiveAttempts, type LiveEntry } from './live-attempts.js';

const attempt = (subtaskId: number, runTime = 1): LiveEntry => ({
  subtaskId,
  runTime,
  liveSlot: -1,
});

describe('LiveAttempts', () => {
  it('finds what it keeps, and nothing once removed', () => {
    const live = new LiveAttempts<LiveEntry>();
    const [a, b, c] = [attempt(1), attempt(2), attempt(3)];
    live.add(a);
    live.add(b);
    live.add(c);
    live.remove(a);
    expect(live.find(1)).toBeUndefined();
    expect(live.find(2)).toBe(b);
    expect(live.find(3)).toBe(c);
    live.remove(c);
    live.remove(c);
    expect(live.find(3)).toBeUndefined();
    expect(live.find(2)).toBe(b);
    expect(a.liveSlot).toBe(-1);
  });

  it('finds the latest attempt of a subtask', () => {
    const live = new LiveAttempts<LiveEntry>();
    const old = attempt(7, 1);
    const current = attempt(7, 2);
    live.add(current);
    live.add(old);
    expect(live.find(7)).toBe(current);
    live.remove(current);
    expect(live.find(7)).toBe(old);
  });
});
