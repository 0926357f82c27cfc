/**
 * End to end, over real HTTP, against a started service whose demo hosts run real local
 * processes: on PGlite, and on a PostgreSQL server (DAGOPS_TEST_DATABASE_URL; required when
 * CI=true, skipped loudly otherwise when unreachable).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, type SubtaskJson, type TaskJson } from '@dagops/engine';
import type { HostAgentProcess, LocalProcessAgent } from '@dagops/definitions';
import { ServiceErrorCode } from './api-error.js';
import { demoProcessArgv } from './demo-fleet.js';
import { Permission } from './permissions.js';
import {
  canConnect,
  isAlive,
  startE2eService,
  TEST_DATABASE_URL,
  type E2eService,
  type HttpAnswer,
} from './test-support/e2e.js';
import {
  basic,
  seed,
  shapeDifferences,
  TEST_PASSWORD_COST,
  type Page,
} from './test-support/harness.js';
import { createUser } from './users.js';

const pgReachable = await canConnect(TEST_DATABASE_URL);
if (!pgReachable && process.env['CI'] !== 'true') {
  console.warn(
    `\n*** SKIPPING the PostgreSQL end-to-end tests: ${TEST_DATABASE_URL} is unreachable ` +
      '(set DAGOPS_TEST_DATABASE_URL; with CI=true they fail instead) ***\n',
  );
}

const backends: [string, string | undefined, boolean][] = [
  ['PGlite', undefined, true],
  ['PostgreSQL', TEST_DATABASE_URL, pgReachable || process.env['CI'] === 'true'],
];

const ALIASES = ['ocp_agentd', 'ocp_monagent', 'ocp_mgragent', 'obstat2', 'pos_proxy'];

for (const [backend, databaseUrl, enabled] of backends) {
  describe.runIf(enabled)(`the service on ${backend}, over HTTP`, () => {
    let e: E2eService;
    let agent: LocalProcessAgent;

    beforeAll(async () => {
      e = await startE2eService(databaseUrl);
      agent = e.service.agent as LocalProcessAgent;
      await createUser(e.service.state, 'viewer', 'viewer-password', [], {
        passwordCost: TEST_PASSWORD_COST,
      });
      await createUser(
        e.service.state,
        'operator',
        'operator-password',
        [Permission.TASK_MANAGER],
        {
          passwordCost: TEST_PASSWORD_COST,
        },
      );
    }, 60_000);

    afterAll(async () => {
      await e?.stop();
    }, 60_000);

    /** Every process of a host is in `status`; when STOPPED, the pids it had are gone. */
    async function expectHost(
      hostId: number,
      status: 'STARTED' | 'STOPPED',
      formerPids: number[] = [],
    ) {
      const processes = await e.http.processes(hostId);
      expect(Object.keys(processes)).toEqual(ALIASES);
      for (const p of Object.values(processes)) {
        expect({ alias: p.alias, status: p.status }).toEqual({ alias: p.alias, status });
        if (status === 'STARTED') expect(isAlive(p.pid)).toBe(true);
        else expect(p.pid).toBe(0);
      }
      for (const pid of formerPids) expect(isAlive(pid)).toBe(false);
      return processes;
    }

    const pidsOf = (processes: Record<string, HostAgentProcess>) =>
      Object.values(processes).map((p) => p.pid);

    function expectSeedShape(answer: HttpAnswer<unknown>, file: string) {
      expect(answer.status).toBe(200);
      const sample = seed(file);
      expect(shapeDifferences(answer.body, sample.response)).toEqual([]);
      const data = answer.body.data as TaskJson;
      const expected = sample.response.data;
      if (Array.isArray(expected.subtasks)) {
        expect(data.status).toBe('RUNNING');
        const statuses = (task: TaskJson) =>
          task.subtasks.map((s) => `${s.name}:${s.status}`).sort();
        expect(statuses(data)).toEqual(statuses(expected));
        expect(data.creator).toBe('admin');
      }
    }

    /** Makes `alias` on `hostId` fail to start (its command does not exist), or mends it. */
    function breakStart(hostId: number, alias: string, broken: boolean) {
      agent.declareProcess({
        hostId,
        alias,
        argv: broken ? ['/nonexistent/dagops-test/' + alias] : demoProcessArgv(alias),
      });
    }

    it('seed 000: stops host 2 for real, and the task ends SUCCESSFUL', async () => {
      const before = pidsOf(await expectHost(2, 'STARTED'));
      const answer = await e.http.post('/compute/hosts/2/agent/stop');
      expectSeedShape(answer, 'seed-000-stop.json');
      const task = await e.http.waitForTask(answer.body.data.id);
      expect(task.status).toBe('SUCCESSFUL');
      expect(task.subtasks.every((s) => s.status === 'SUCCESSFUL')).toBe(true);
      await expectHost(2, 'STOPPED', before);
      const stopAll = task.subtasks.find((s) => s.name === 'Stop all OCP agent processes');
      const log = await e.http.get<{ lines: { message: string }[] }>(
        `/api/v2/tasks/instances/${task.id}/subtasks/${stopAll?.id}/log`,
      );
      expect(log.body.data.lines.map((l) => l.message).join('\n')).toContain(
        'host 2: stopped ocp_agentd',
      );
    });

    it('seed 004: restarts host 2: every process runs again with a new pid', async () => {
      const answer = await e.http.post('/compute/hosts/2/agent/restart');
      expectSeedShape(answer, 'seed-004-restart.json');
      const task = await e.http.waitForTask(answer.body.data.id);
      expect(task.status).toBe('SUCCESSFUL');
      await expectHost(2, 'STARTED');
    });

    it('seed 002: batch-stops hosts 1 and 3', async () => {
      const before = [
        ...pidsOf(await expectHost(1, 'STARTED')),
        ...pidsOf(await expectHost(3, 'STARTED')),
      ];
      const answer = await e.http.post('/compute/hosts/batchStopAgents', {
        body: { hostIds: [1, 3] },
      });
      expect(answer.status).toBe(200);
      // The seed's sample is one host: compare the shape of a one-host batch separately.
      expect(shapeDifferences(answer.body, seed('seed-002-batch-stop.json').response)).toEqual([]);
      expect(answer.body.data.context.listMap).toEqual({ host_ids: ['1', '3'] });
      expect(answer.body.data).not.toHaveProperty('hostId');
      const task = await e.http.waitForTask(answer.body.data.id);
      expect(task.status).toBe('SUCCESSFUL');
      expect(task.subtasks).toHaveLength(8);
      await expectHost(1, 'STOPPED', before.slice(0, 5));
      await expectHost(3, 'STOPPED', before.slice(5));
    });

    it('seed 003: stops one process of host 2 synchronously', async () => {
      const processes = await expectHost(2, 'STARTED');
      const obstat2 = processes['obstat2'] as HostAgentProcess;
      const answer = await e.http.post(`/compute/hosts/2/agent/processes/${obstat2.id}/stop`);
      expectSeedShape(answer, 'seed-003-stop-process.json');
      expect(answer.body.data).toMatchObject({
        alias: 'obstat2',
        hostId: 2,
        pid: 0,
        status: 'STOPPED',
        ports: null,
        user: null,
        startCommand: null,
      });
      expect(isAlive(obstat2.pid)).toBe(false);
      expect(isAlive((processes.ocp_agentd as HostAgentProcess).pid)).toBe(true);
      const unknown = await e.http.post('/compute/hosts/2/agent/processes/999999/stop');
      expect([unknown.status, unknown.body.error.code]).toEqual([404, ErrorCode.TASK_NOT_FOUND]);
    });

    it('retries a failed subtask over HTTP', async () => {
      breakStart(1, 'ocp_agentd', true);
      const answer = await e.http.post('/compute/hosts/1/agent/restart');
      const failed = await e.http.waitForTask(answer.body.data.id);
      expect(failed.status).toBe('FAILED');
      const startAll = failed.subtasks.find((s) => s.status === 'FAILED') as SubtaskJson;
      expect(startAll.name).toBe('Start all OCP agent processes');
      // Refused while it still fails: a second operation on host 1 (the task holds it).
      const busy = await e.http.post('/compute/hosts/1/agent/stop');
      expect([busy.status, busy.body.error.code]).toEqual([409, ErrorCode.TASK_STATE_INVALID]);
      breakStart(1, 'ocp_agentd', false);
      const retried = await e.http.post(
        `/api/v2/tasks/instances/${failed.id}/subtasks/${startAll.id}/retry`,
        {
          auth: basic('operator', 'operator-password'),
        },
      );
      expect(retried.status).toBe(200);
      const task = await e.http.waitForTask(failed.id);
      expect(task.status).toBe('SUCCESSFUL');
      const retriedStep = task.subtasks.find((s) => s.id === startAll.id) as SubtaskJson;
      expect([retriedStep.operation, retriedStep.runTime]).toEqual(['RETRY', 2]);
      await expectHost(1, 'STARTED');
      const audit = await e.http.get<{ entries: { operation: string; actor: string }[] }>(
        `/api/v2/tasks/instances/${failed.id}/audit`,
      );
      expect(audit.body.data.entries.map((x) => `${x.operation}:${x.actor}`)).toEqual([
        'EXECUTE:admin',
        'RETRY:operator',
      ]);
    });

    it('skips a failed subtask over HTTP', async () => {
      breakStart(3, 'obstat2', true);
      const answer = await e.http.post('/compute/hosts/3/agent/restart');
      const failed = await e.http.waitForTask(answer.body.data.id);
      expect(failed.status).toBe('FAILED');
      const step = failed.subtasks.find((s) => s.status === 'FAILED') as SubtaskJson;
      const skipped = await e.http.post(
        `/api/v2/tasks/instances/${failed.id}/subtasks/${step.id}/skip`,
      );
      expect(skipped.status).toBe(200);
      const task = await e.http.waitForTask(failed.id);
      expect(task.status).toBe('SUCCESSFUL');
      const after = task.subtasks.find((s) => s.id === step.id) as SubtaskJson;
      expect([after.status, after.operation]).toEqual(['SUCCESSFUL', 'SKIP']);
      breakStart(3, 'obstat2', false);
    });

    it('rolls a failed task back over HTTP: what it stopped runs again, the host is free', async () => {
      const before = await expectHost(1, 'STARTED');
      breakStart(1, 'ocp_monagent', true);
      const answer = await e.http.post('/compute/hosts/1/agent/restart');
      const failed = await e.http.waitForTask(answer.body.data.id);
      expect(failed.status).toBe('FAILED');
      breakStart(1, 'ocp_monagent', false);
      const rolled = await e.http.post(`/api/v2/tasks/instances/${failed.id}/rollback`);
      expect(rolled.status).toBe(200);
      const task = await e.http.waitForTask(failed.id);
      expect([task.status, task.operation]).toEqual(['SUCCESSFUL', 'ROLLBACK']);
      expect(task.subtasks.every((s) => s.status === 'PENDING')).toBe(true);
      const after = await expectHost(1, 'STARTED');
      expect((after.ocp_agentd as HostAgentProcess).pid).not.toBe(
        (before.ocp_agentd as HostAgentProcess).pid,
      );
      // The rollback released the host: a new operation is accepted.
      const again = await e.http.post('/compute/hosts/1/agent/stop');
      expect(again.status).toBe(200);
      expect((await e.http.waitForTask(again.body.data.id))['status']).toBe('SUCCESSFUL');
    });

    it('cancels a running subtask, then a running task, over HTTP', async () => {
      // A process that ignores SIGTERM keeps Stop all busy for the grace period.
      const stubborn = (alias: string) => [
        '/bin/bash',
        '-c',
        `trap '' TERM; exec -a ${alias} sleep infinity`,
      ];
      agent.declareProcess({ hostId: 2, alias: 'obstat2', argv: stubborn('obstat2') });
      const started = await expectHostProcessStarted(2, 'obstat2');
      const answer = await e.http.post('/compute/hosts/2/agent/stop');
      const id = answer.body.data.id;
      const running = await e.http.waitForTask(id, (task) =>
        task.subtasks.some(
          (s) => s.name === 'Stop all OCP agent processes' && s.status === 'RUNNING',
        ),
      );
      const stopAll = running.subtasks.find((s) => s.status === 'RUNNING') as SubtaskJson;
      const canceled = await e.http.post(
        `/api/v2/tasks/instances/${id}/subtasks/${stopAll.id}/cancel`,
      );
      expect(canceled.status).toBe(200);
      const failed = await e.http.waitForTask(id);
      const step = failed.subtasks.find((s) => s.id === stopAll.id) as SubtaskJson;
      expect([failed.status, step.status, step.operation]).toEqual(['FAILED', 'FAILED', 'CANCEL']);
      expect(isAlive(started)).toBe(true);

      // Roll back (the stubborn process is still there), then cancel a whole task.
      const rolled = await e.http.post(`/api/v2/tasks/instances/${id}/rollback`);
      expect(rolled.status).toBe(200);
      expect((await e.http.waitForTask(id))['status']).toBe('SUCCESSFUL');
      const second = await e.http.post('/compute/hosts/2/agent/stop');
      const secondId = second.body.data.id;
      await e.http.waitForTask(secondId, (task) =>
        task.subtasks.some(
          (s) => s.status === 'RUNNING' && s.name === 'Stop all OCP agent processes',
        ),
      );
      const cancelTask = await e.http.post(`/api/v2/tasks/instances/${secondId}/cancel`);
      expect(cancelTask.status).toBe(200);
      const ended = await e.http.waitForTask(secondId);
      expect([ended['status'], ended['operation']]).toEqual(['FAILED', 'CANCEL']);
      // Tidy: a SIGKILL for the stubborn process, then a normal process again.
      process.kill(started, 'SIGKILL');
      agent.declareProcess({ hostId: 2, alias: 'obstat2', argv: demoProcessArgv('obstat2') });
      expect((await e.http.post(`/api/v2/tasks/instances/${secondId}/rollback`)).status).toBe(200);
      expect((await e.http.waitForTask(secondId))['status']).toBe('SUCCESSFUL');
    });

    async function expectHostProcessStarted(hostId: number, alias: string): Promise<number> {
      const id = agent.processId(hostId, alias);
      const record = await agent.stopProcess(hostId, id).then(() => agent.startProcess(hostId, id));
      expect(isAlive(record.pid)).toBe(true);
      return record.pid;
    }

    it('replays an idempotent POST over HTTP and refuses the key with another body', async () => {
      const headers = { 'Idempotency-Key': `batch-${backend}` };
      const first = await e.http.post('/compute/hosts/batchStopAgents', {
        body: { hostIds: [3] },
        headers,
      });
      expect(first.status).toBe(200);
      const again = await e.http.post('/compute/hosts/batchStopAgents', {
        body: { hostIds: [3] },
        headers,
      });
      expect(again.text).toBe(first.text);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      const other = await e.http.post('/compute/hosts/batchStopAgents', {
        body: { hostIds: [1] },
        headers,
      });
      expect([other.status, other.body.error.code]).toEqual([
        409,
        ServiceErrorCode.IDEMPOTENCY_KEY_REUSED,
      ]);
      await e.http.waitForTask(first.body.data.id);
    });

    it('refuses every bad request and every auth failure, and writes nothing', async () => {
      const list = async () =>
        (await e.http.get<Page<TaskJson>>('/api/v2/tasks/instances?size=1')).body.data.page
          .totalElements;
      const tasksBefore = await list();
      const cases: [string, () => Promise<HttpAnswer<unknown>>, number, number][] = [
        [
          'no credentials',
          () => e.http.post('/compute/hosts/1/agent/stop', { auth: null }),
          401,
          ServiceErrorCode.UNAUTHENTICATED,
        ],
        [
          'wrong password',
          () => e.http.post('/compute/hosts/1/agent/stop', { auth: basic('admin', 'not-it') }),
          401,
          ServiceErrorCode.UNAUTHENTICATED,
        ],
        [
          'unknown user',
          () => e.http.post('/compute/hosts/1/agent/stop', { auth: basic('eve', 'not-it') }),
          401,
          ServiceErrorCode.UNAUTHENTICATED,
        ],
        [
          'missing HOST_MANAGER',
          () =>
            e.http.post('/compute/hosts/1/agent/stop', {
              auth: basic('viewer', 'viewer-password'),
            }),
          403,
          ServiceErrorCode.PERMISSION_DENIED,
        ],
        [
          'missing TASK_MANAGER',
          () =>
            e.http.post('/api/v2/tasks/instances/1/retry', {
              auth: basic('viewer', 'viewer-password'),
            }),
          403,
          ServiceErrorCode.PERMISSION_DENIED,
        ],
        [
          'id 0',
          () => e.http.post('/compute/hosts/0/agent/stop'),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'negative id',
          () => e.http.post('/compute/hosts/-2/agent/restart'),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'fraction',
          () => e.http.post('/compute/hosts/2.5/agent/stop'),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'id > 2^53-1',
          () => e.http.post('/compute/hosts/9007199254740993/agent/stop'),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'string ids',
          () => e.http.post('/compute/hosts/batchStopAgents', { body: { hostIds: ['1'] } }),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'empty list',
          () => e.http.post('/compute/hosts/batchStopAgents', { body: { hostIds: [] } }),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'duplicates',
          () => e.http.post('/compute/hosts/batchStopAgents', { body: { hostIds: [1, 1] } }),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'over the maximum',
          () =>
            e.http.post('/compute/hosts/batchStopAgents', {
              body: { hostIds: Array.from({ length: 10_001 }, (_, i) => i + 1) },
            }),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'unknown field',
          () =>
            e.http.post('/compute/hosts/batchStopAgents', { body: { hostIds: [1], dryRun: true } }),
          400,
          ServiceErrorCode.REQUEST_INVALID,
        ],
        [
          'body too large',
          () =>
            e.http.post('/compute/hosts/batchStopAgents', {
              raw: `{"hostIds":[${'1,'.repeat(600_000)}1]}`,
              headers: { 'content-type': 'application/json' },
            }),
          413,
          ServiceErrorCode.PAYLOAD_TOO_LARGE,
        ],
        [
          'unknown hosts',
          () =>
            e.http.post('/compute/hosts/batchStopAgents', { body: { hostIds: [1, 404, 2, 405] } }),
          404,
          ErrorCode.TASK_NOT_FOUND,
        ],
        [
          'unknown host',
          () => e.http.post('/compute/hosts/404/agent/stop'),
          404,
          ErrorCode.TASK_NOT_FOUND,
        ],
        [
          'unknown task',
          () => e.http.post('/api/v2/tasks/instances/999999/rollback'),
          404,
          ErrorCode.TASK_NOT_FOUND,
        ],
      ];
      for (const [name, send, status, code] of cases) {
        const answer = await send();
        expect({
          name,
          status: answer.status,
          code: answer.body.error?.code,
          successful: answer.body.successful,
        }).toEqual({
          name,
          status,
          code,
          successful: false,
        });
      }
      const unknown = await e.http.post('/compute/hosts/batchStopAgents', {
        body: { hostIds: [1, 404, 2, 405] },
      });
      expect(unknown.body.error.subErrors?.map((s) => s.message)).toEqual([
        'host 404 does not exist',
        'host 405 does not exist',
      ]);
      expect(await list()).toBe(tasksBefore);
      for (const hostId of [1, 2, 3]) expect(await agent.getOperation(hostId)).toBeUndefined();
    });

    it('logs every request with its traceId and never the password', () => {
      const lines = e.logs.entries().filter((line) => line['msg'] === 'request');
      expect(lines.length).toBeGreaterThan(30);
      for (const line of lines) expect(line['traceId']).toMatch(/^[0-9a-f]{16}$/);
      for (const secret of [
        'e2e-admin-password',
        'viewer-password',
        'operator-password',
        basic('admin', 'e2e-admin-password').slice(6),
      ]) {
        expect(e.logs.text()).not.toContain(secret);
      }
    });
  });
}
