import type { ReservedIds } from '@dagops/engine';

/** The first ids of a block reserved in the database (`reserve_blocks`). */
export interface ReservedBlocks {
  readonly firstTaskId: number;
  readonly firstSubtaskId: number;
}

/** Reserves `tasks` consecutive task ids and `subtasks` consecutive subtask ids. */
export type ReserveBlocks = (tasks: number, subtasks: number) => Promise<ReservedBlocks>;

/** Most task ids, and subtask ids, one reservation takes ahead. */
export const MAX_TASK_BLOCK = 64;
export const MAX_SUBTASK_BLOCK = 4096;

/**
 * Hands out task ids and consecutive subtask ids from blocks reserved in the database, so that
 * most submissions cost no round trip for their ids. Blocks start small and double with use: a
 * process that submits one task wastes nothing, a busy one reserves up to {@link MAX_TASK_BLOCK}
 * tasks' ids at a time. Ids left in a block when the process ends are never used (gaps, as
 * with a sequence's CACHE); with several engines, ids are unique but not in submission order
 * across engines. A task whose subtasks do not fit what is left gets a block of its own size.
 */
export class IdBlocks {
  private nextTask = 0;
  private taskEnd = 0;
  private nextSubtask = 0;
  private subtaskEnd = 0;
  private taskBlock = 1;
  private subtaskBlock = 0;
  /** The reservation under way: callers arriving meanwhile wait for it, then take from it. */
  private refilling: Promise<void> | undefined;

  constructor(private readonly reserveBlocks: ReserveBlocks) {}

  /** A task id and `subtaskCount` consecutive subtask ids. */
  async reserve(subtaskCount: number): Promise<ReservedIds> {
    for (;;) {
      const taken = this.take(subtaskCount);
      if (taken) return taken;
      this.refilling ??= this.refill(subtaskCount).finally(() => (this.refilling = undefined));
      await this.refilling;
    }
  }

  private take(subtaskCount: number): ReservedIds | undefined {
    if (this.nextTask >= this.taskEnd || this.nextSubtask + subtaskCount > this.subtaskEnd) {
      return undefined;
    }
    const ids = { taskId: this.nextTask, firstSubtaskId: this.nextSubtask };
    this.nextTask++;
    this.nextSubtask += subtaskCount;
    return ids;
  }

  private async refill(subtaskCount: number): Promise<void> {
    const tasks = this.taskBlock;
    const subtasks = Math.max(subtaskCount, this.subtaskBlock);
    const { firstTaskId, firstSubtaskId } = await this.reserveBlocks(tasks, subtasks);
    this.nextTask = firstTaskId;
    this.taskEnd = firstTaskId + tasks;
    this.nextSubtask = firstSubtaskId;
    this.subtaskEnd = firstSubtaskId + subtasks;
    this.taskBlock = Math.min(MAX_TASK_BLOCK, tasks * 2);
    this.subtaskBlock = Math.min(MAX_SUBTASK_BLOCK, Math.max(16, this.subtaskBlock * 2));
  }
}
