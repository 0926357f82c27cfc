import type { TaskShape } from './records.js';

/** Most tasks, and most subtasks over all tasks, whose shapes one store keeps. */
export const SHAPE_CACHE_TASKS = 4096;
export const SHAPE_CACHE_SUBTASKS = 200_000;

/**
 * What never changes of the tasks an engine claims from (their subtasks' keys, classes, edges…),
 * least recently used evicted first. Sized for many small tasks at once as well as a few large
 * ones: a service running thousands of 3-subtask tasks round robin must not read each task's
 * shape again for every claim (a 64-task cache did, about 3 reads per task).
 */
export class ShapeCache {
  private readonly shapes = new Map<number, TaskShape>();
  private subtasks = 0;

  constructor(
    private readonly maxTasks = SHAPE_CACHE_TASKS,
    private readonly maxSubtasks = SHAPE_CACHE_SUBTASKS,
  ) {}

  /** The shape of `taskId`, now the most recently used; undefined when not kept. */
  get(taskId: number): TaskShape | undefined {
    const shape = this.shapes.get(taskId);
    if (shape !== undefined && this.shapes.size > 1) {
      this.shapes.delete(taskId);
      this.shapes.set(taskId, shape);
    }
    return shape;
  }

  /** Keeps `shape` (replacing an older one of its task), evicting the least recently used. */
  set(shape: TaskShape): TaskShape {
    const id = shape.task.id;
    const old = this.shapes.get(id);
    if (old !== undefined) {
      this.shapes.delete(id);
      this.subtasks -= old.count;
    }
    this.shapes.set(id, shape);
    this.subtasks += shape.count;
    for (const [oldest, evicted] of this.shapes) {
      if (this.shapes.size <= 1) break;
      if (this.shapes.size <= this.maxTasks && this.subtasks <= this.maxSubtasks) break;
      this.shapes.delete(oldest);
      this.subtasks -= evicted.count;
    }
    return shape;
  }

  /** Number of tasks kept. */
  get size(): number {
    return this.shapes.size;
  }
}
