import { TaskStatus, type TaskJson } from '@dagops/engine';

/**
 * Tasks that reached SUCCESSFUL, by id: a SUCCESSFUL task is final (no operation applies to it;
 * docs/operations.md), so its JSON never changes and any process may keep it. FAILED tasks are
 * not kept (retry and rollback move them on). Least recently used entries go first.
 */
export class FinishedTaskCache {
  private readonly tasks = new Map<number, TaskJson>();

  constructor(private readonly capacity: number) {}

  /** The task, if it is kept. */
  get(taskId: number): TaskJson | undefined {
    const task = this.tasks.get(taskId);
    if (task) {
      this.tasks.delete(taskId);
      this.tasks.set(taskId, task);
    }
    return task;
  }

  /** Keeps the task if it is SUCCESSFUL; returns it. */
  offer(task: TaskJson): TaskJson {
    if (this.capacity === 0 || task.status !== TaskStatus.SUCCESSFUL) return task;
    this.tasks.delete(task.id);
    this.tasks.set(task.id, task);
    if (this.tasks.size > this.capacity) {
      const oldest = this.tasks.keys().next();
      if (!oldest.done) this.tasks.delete(oldest.value);
    }
    return task;
  }

  /** How many tasks are kept. */
  get size(): number {
    return this.tasks.size;
  }
}
