import type { Store, TaskSnapshot } from './store.js';

/**
 * A task and its subtasks from `store`: one read where the store offers {@link Store.readTask},
 * otherwise its task and its subtasks read in parallel. Undefined when the task is unknown.
 */
export async function readTask(store: Store, taskId: number): Promise<TaskSnapshot | undefined> {
  if (store.readTask) return store.readTask(taskId);
  const [task, subtasks] = await Promise.all([store.getTask(taskId), store.listSubtasks(taskId)]);
  return task ? { task, subtasks } : undefined;
}
