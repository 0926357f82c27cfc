import { ErrorCode, TaskStatus, type Store } from '@dagops/engine';
import type { HostAgent } from '@dagops/definitions';
import { ApiError, type SubError } from './api-error.js';

/** Hosts reserved for one operation; bind them to its task, or release them. */
export interface HostReservation {
  /** The task now owns the hosts until it finishes. */
  bind(taskId: number): void;
  /** The operation did not happen (or was synchronous and is over). */
  release(): void;
}

const PENDING = 0;

/**
 * Refuses a second operation on a host while one is under way (SPEC §7), at the API, before
 * anything is written: a host is busy while a task of this service that works on it is
 * RUNNING, or while the host's agent holds an operation mark (a task that failed after its
 * Prepare step keeps the mark until it is rolled back or finished). The definitions' Prepare
 * step refuses too; this check answers 409 at once instead of letting a task fail.
 */
export class HostGuard {
  /** Host id → task id that owns it, or PENDING while a submission is in flight. */
  private readonly owners = new Map<number, number>();
  private readonly hostsOf = new Map<number, readonly number[]>();

  constructor(
    private readonly agent: HostAgent,
    private readonly store: Store,
  ) {}

  /**
   * Reserves `hostIds` for one operation.
   * @throws ApiError 20003 (409) naming every busy host; nothing is reserved then.
   */
  async reserve(
    hostIds: readonly number[],
    targetOf: (index: number) => string = () => 'hostId',
  ): Promise<HostReservation> {
    const indexOf = new Map(hostIds.map((hostId, i) => [hostId, i]));
    const conflict = (hostId: number, why: string): SubError => ({
      code: ErrorCode.TASK_STATE_INVALID,
      message: `host ${hostId} is busy: ${why}`,
      target: targetOf(indexOf.get(hostId) ?? 0),
    });
    const busy: SubError[] = [];
    const taken: number[] = [];
    const owning = new Map<number, number[]>();
    for (const hostId of hostIds) {
      const owner = this.owners.get(hostId);
      if (owner === undefined) {
        this.owners.set(hostId, PENDING);
        taken.push(hostId);
      } else if (owner === PENDING) {
        busy.push(conflict(hostId, 'another request is starting an operation on it'));
      } else {
        const list = owning.get(owner) ?? [];
        list.push(hostId);
        owning.set(owner, list);
      }
    }
    const release = () => {
      for (const hostId of taken)
        if (this.owners.get(hostId) === PENDING) this.owners.delete(hostId);
    };
    try {
      // A task this process saw start may have been finished elsewhere: ask the store.
      for (const [taskId, hosts] of owning) {
        const task = await this.store.getTask(taskId);
        if (task?.status === TaskStatus.RUNNING) {
          for (const hostId of hosts)
            busy.push(conflict(hostId, `task ${taskId} is running on it`));
        } else {
          this.finished(taskId);
          for (const hostId of hosts) {
            if (this.owners.has(hostId)) {
              busy.push(conflict(hostId, 'another request is starting an operation on it'));
            } else {
              this.owners.set(hostId, PENDING);
              taken.push(hostId);
            }
          }
        }
      }
      const marks = await Promise.all(taken.map((hostId) => this.agent.getOperation(hostId)));
      marks.forEach((mark, i) => {
        if (mark) {
          busy.push(
            conflict(
              taken[i] as number,
              `it is under operation ${mark.owner} since ${mark.markedAt}`,
            ),
          );
        }
      });
    } catch (error) {
      release();
      throw error;
    }
    if (busy.length > 0) {
      release();
      const first = busy[0] as SubError;
      const more = busy.length > 1 ? ` (and ${busy.length - 1} more busy host(s))` : '';
      throw new ApiError(ErrorCode.TASK_STATE_INVALID, `${first.message}${more}`, {
        target: first.target ?? 'hostId',
        subErrors: busy,
      });
    }
    let done = false;
    return {
      bind: (taskId) => {
        if (done) return;
        done = true;
        for (const hostId of taken) this.owners.set(hostId, taskId);
        this.hostsOf.set(taskId, taken);
      },
      release: () => {
        if (done) return;
        done = true;
        release();
      },
    };
  }

  /** Marks `hostIds` as owned by a RUNNING task found at start-up. */
  adopt(taskId: number, hostIds: readonly number[]): void {
    for (const hostId of hostIds) this.owners.set(hostId, taskId);
    this.hostsOf.set(taskId, [...hostIds]);
  }

  /** The task is no longer RUNNING: its hosts are free (their marks still count). */
  finished(taskId: number): void {
    const hosts = this.hostsOf.get(taskId);
    if (!hosts) return;
    this.hostsOf.delete(taskId);
    for (const hostId of hosts) if (this.owners.get(hostId) === taskId) this.owners.delete(hostId);
  }

  /** Hosts held right now (for tests and diagnostics). */
  get size(): number {
    return this.owners.size;
  }
}
