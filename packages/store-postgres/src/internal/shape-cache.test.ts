import type { TaskRecord } from '@dagops/engine';
import { describe, expect, it } from 'vitest';
import { shapeOf, type SubtaskShape, type TaskShape } from './records.js';
import { ShapeCache } from './shape-cache.js';

const shape = (id: number, subtasks: number): TaskShape =>
  shapeOf(
    { id } as TaskRecord,
    id * 1000,
    Array.from({ length: subtasks }, () => ({}) as SubtaskShape),
  );

describe('ShapeCache', () => {
  it('evicts the least recently used task past its task budget', () => {
    const cache = new ShapeCache(3, 1000);
    for (const id of [1, 2, 3]) cache.set(shape(id, 3));
    expect(cache.get(1)?.task.id).toBe(1); // 1 is now the most recent
    cache.set(shape(4, 3));
    expect(cache.get(2)).toBeUndefined();
    expect([1, 3, 4].map((id) => cache.get(id)?.task.id)).toEqual([1, 3, 4]);
    expect(cache.size).toBe(3);
  });

  it('evicts past its subtask budget, but keeps a task larger than the budget alone', () => {
    const cache = new ShapeCache(100, 10);
    cache.set(shape(1, 4));
    cache.set(shape(2, 4));
    cache.set(shape(3, 4));
    expect(cache.get(1)).toBeUndefined();
    expect(cache.size).toBe(2);
    cache.set(shape(4, 50));
    expect(cache.size).toBe(1);
    expect(cache.get(4)?.count).toBe(50);
  });

  it('counts a replaced shape once', () => {
    const cache = new ShapeCache(100, 10);
    cache.set(shape(1, 6));
    cache.set(shape(1, 6));
    cache.set(shape(2, 4));
    expect([cache.get(1)?.task.id, cache.get(2)?.task.id]).toEqual([1, 2]);
  });
});
