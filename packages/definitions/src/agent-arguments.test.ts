import { ErrorCode, TaskArgumentsError } from '@dagops/engine';
import { describe, expect, it } from 'vitest';
import {
  batchStopAgentArguments,
  restartAgentArguments,
  stopAgentArguments,
} from './agent-arguments.js';

function issuesOf(build: () => unknown) {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(TaskArgumentsError);
    expect((error as TaskArgumentsError).code).toBe(ErrorCode.TASK_ARGUMENTS_INVALID);
    return {
      message: (error as Error).message,
      issues: (error as TaskArgumentsError).issues.map((i) => [i.path, i.message, i.value]),
    };
  }
  throw new Error('expected a TaskArgumentsError');
}

describe('single-host arguments (Stop OCP agent, Restart OCP agent)', () => {
  it('builds the seed context: prohibit_rollback first, host_id as a string', () => {
    expect(stopAgentArguments({ hostId: 2 })).toEqual({
      stringMap: { prohibit_rollback: 'false', host_id: '2' },
    });
    expect(Object.keys(stopAgentArguments({ hostId: 2 }).stringMap ?? {})).toEqual([
      'prohibit_rollback',
      'host_id',
    ]);
    expect(restartAgentArguments({ hostId: 9, prohibitRollback: true })).toEqual({
      stringMap: { prohibit_rollback: 'true', host_id: '9' },
    });
  });

  it.each([0, -1, 1.5, Number.NaN, 2 ** 53, '2', null, undefined])(
    'refuses hostId %s, naming the field and the value',
    (hostId) => {
      const { message, issues } = issuesOf(() => stopAgentArguments({ hostId } as never));
      expect(issues).toEqual([['hostId', 'must be a positive safe integer', hostId]]);
      expect(message).toContain('"Stop OCP agent"');
      expect(message).toContain('hostId must be a positive safe integer');
    },
  );

  it('refuses unknown fields, a non-boolean prohibitRollback and a non-object', () => {
    expect(
      issuesOf(() =>
        restartAgentArguments({ hostId: 1, prohibitRollback: 'yes', hostID: 2 } as never),
      ).issues,
    ).toEqual([
      ['hostID', 'is not a known field', 2],
      ['prohibitRollback', 'must be a boolean', 'yes'],
    ]);
    expect(issuesOf(() => stopAgentArguments(null as never)).issues).toEqual([
      ['input', 'must be an object', null],
    ]);
  });
});

describe('batchStopAgentArguments', () => {
  it('builds the seed context: host_ids as strings, in order', () => {
    expect(batchStopAgentArguments({ hostIds: [1001, 1002] })).toEqual({
      stringMap: { prohibit_rollback: 'false' },
      listMap: { host_ids: ['1001', '1002'] },
    });
  });

  it('refuses an empty list, bad ids and duplicates, naming each element', () => {
    expect(issuesOf(() => batchStopAgentArguments({ hostIds: [] })).issues).toEqual([
      ['hostIds', 'must not be empty', []],
    ]);
    const { message, issues } = issuesOf(() =>
      batchStopAgentArguments({ hostIds: [1001, -3, 1002, 1001, 1002, 7.5] }),
    );
    expect(issues).toEqual([
      ['hostIds[1]', 'must be a positive safe integer', -3],
      ['hostIds[3]', 'duplicates hostIds[0]', 1001],
      ['hostIds[4]', 'duplicates hostIds[2]', 1002],
      ['hostIds[5]', 'must be a positive safe integer', 7.5],
    ]);
    expect(message).toMatch(
      /"Batch stop OCP agent": hostIds\[1\] must be a positive safe integer, got -3 \(and 3 more/,
    );
    expect(issuesOf(() => batchStopAgentArguments({ hostIds: '1,2' } as never)).issues).toEqual([
      ['hostIds', 'must be an array of host ids', '1,2'],
    ]);
  });
});
