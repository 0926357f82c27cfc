import { describe, expect, it } from 'vitest';
import { DagopsError, ErrorCode } from './errors.js';
import { SubtaskStatus, TaskStatus } from './status.js';
import {
  SUBTASK_TRANSITIONS,
  TASK_TRANSITIONS,
  assertSubtaskMove,
  assertTaskMove,
} from './transitions.js';

/** The legal subtask moves, written out here independently of the table (SPEC §4–5). */
const LEGAL_SUBTASK_MOVES: ReadonlySet<string> = new Set([
  'PENDING>READY', // upstreams done and a slot free
  'READY>RUNNING', // claimed
  'READY>PENDING', // a rollback resets a subtask that never ran
  'RUNNING>SUCCESSFUL', // succeeded
  'RUNNING>READY', // failed attempt, retried by policy
  'RUNNING>FAILED', // failed for good; its rollback failed
  'RUNNING>CANCELING', // cancel requested
  'RUNNING>PENDING', // rolled back
  'CANCELING>FAILED', // the canceled attempt has ended
  'FAILED>READY', // manual retry; its turn to roll back
  'FAILED>SUCCESSFUL', // skip
  'FAILED>PENDING', // rollback-skip
  'SUCCESSFUL>READY', // its turn to roll back
]);

/** The legal task moves. */
const LEGAL_TASK_MOVES: ReadonlySet<string> = new Set([
  'RUNNING>SUCCESSFUL', // every subtask SUCCESSFUL (or, rolling back, PENDING)
  'RUNNING>FAILED', // a subtask failed for good, or the task was canceled, once nothing runs
  'FAILED>RUNNING', // retry, skip, rollback, rollback-skip
]);

const subtaskStatuses = Object.values(SubtaskStatus);
const taskStatuses = Object.values(TaskStatus);

function thrown(move: () => void): unknown {
  try {
    move();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('SUBTASK_TRANSITIONS', () => {
  it('has one row per subtask status, without duplicates', () => {
    expect(Object.keys(SUBTASK_TRANSITIONS).sort()).toEqual([...subtaskStatuses].sort());
    for (const [from, tos] of Object.entries(SUBTASK_TRANSITIONS)) {
      expect(new Set(tos).size, from).toBe(tos.length);
    }
  });

  it('is exactly the legal moves', () => {
    const table = Object.entries(SUBTASK_TRANSITIONS).flatMap(([from, tos]) =>
      tos.map((to) => `${from}>${to}`),
    );
    expect(table.sort()).toEqual([...LEGAL_SUBTASK_MOVES].sort());
  });

  const pairs = subtaskStatuses.flatMap((from) => subtaskStatuses.map((to) => [from, to] as const));
  it('covers all 36 pairs below', () => {
    expect(pairs).toHaveLength(36);
  });

  for (const [from, to] of pairs) {
    const legal = LEGAL_SUBTASK_MOVES.has(`${from}>${to}`);
    it(`${from} → ${to}: ${legal ? 'legal' : 'illegal'}`, () => {
      const error = thrown(() => assertSubtaskMove(7, from, to));
      if (legal) {
        expect(error).toBeUndefined();
        return;
      }
      expect(error).toBeInstanceOf(DagopsError);
      expect(error).toMatchObject({
        code: ErrorCode.TASK_STATE_INVALID,
        target: '7',
        message: `subtask 7 cannot move from ${from} to ${to}`,
      });
    });
  }
});

describe('TASK_TRANSITIONS', () => {
  it('has one row per task status, without duplicates', () => {
    expect(Object.keys(TASK_TRANSITIONS).sort()).toEqual([...taskStatuses].sort());
    for (const [from, tos] of Object.entries(TASK_TRANSITIONS)) {
      expect(new Set(tos).size, from).toBe(tos.length);
    }
  });

  it('is exactly the legal moves; SUCCESSFUL is final', () => {
    const table = Object.entries(TASK_TRANSITIONS).flatMap(([from, tos]) =>
      tos.map((to) => `${from}>${to}`),
    );
    expect(table.sort()).toEqual([...LEGAL_TASK_MOVES].sort());
    expect(TASK_TRANSITIONS.SUCCESSFUL).toEqual([]);
  });

  const pairs = taskStatuses.flatMap((from) => taskStatuses.map((to) => [from, to] as const));
  it('covers all 9 pairs below', () => {
    expect(pairs).toHaveLength(9);
  });

  for (const [from, to] of pairs) {
    const legal = LEGAL_TASK_MOVES.has(`${from}>${to}`);
    it(`${from} → ${to}: ${legal ? 'legal' : 'illegal'}`, () => {
      const error = thrown(() => assertTaskMove(3, from, to));
      if (legal) {
        expect(error).toBeUndefined();
        return;
      }
      expect(error).toBeInstanceOf(DagopsError);
      expect(error).toMatchObject({
        code: ErrorCode.TASK_STATE_INVALID,
        target: '3',
        message: `task 3 cannot move from ${from} to ${to}`,
      });
    });
  }
});
