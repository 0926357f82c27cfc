import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, TaskStatus, type SubtaskJson, type TaskJson } from '@dagops/engine';
import { SimulatedAgent, type HostAgentProcess } from '@dagops/definitions';
import { ServiceErrorCode } from './api-error.js';
import {
  basic,
  createTestApp,
  seed,
  shapeDifferences,
  USERS,
  type Answer,
  type Page,
  type TestApp,
  type TestAppOptions,
} from './test-support/harness.js';

let t: TestApp;

async function open(options: TestAppOptions = {}): Promise<TestApp> {
  t = await createTestApp(options);
  return t;
}

afterEach(async () => {
  await t?.close();
});

interface Call {
  readonly method?: 'GET' | 'POST';
  readonly url: string;
  readonly user?: string | null;
  readonly body?: unknown;
  readonly payload?: string;
  readonly headers?: Record<string, string>;
}

async function call<T = TaskJson>(request: Call) {
  const headers: Record<string, string> = { ...request.headers };
  if (request.user !== null) headers['authorization'] ??= basic(request.user ?? 'admin');
  if (request.body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await t.app.inject({
    method: request.method ?? 'POST',
    url: request.url,
    headers,
    ...(request.payload !== undefined
      ? { payload: request.payload }
      : request.body !== undefined
        ? { payload: JSON.stringify(request.body) }
        : {}),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    body: response.json<Answer<T>>(),
    raw: response.body,
  };
}

/** Nothing was written: no task, no operation mark, no idempotency key. */
async function expectNothingWritten() {
  expect(await t.store.getTask(1)).toBeUndefined();
  expect(t.agent.marks()).toEqual([]);
  expect(t.state.idempotencyKeyCount).toBe(0);
}

function expectRefused(response: Awaited<ReturnType<typeof call>>, status: number, code: number) {
  expect({ status: response.status, code: response.body.error?.code }).toEqual({ status, code });
  expect(response.body.successful).toBe(false);
  expect(response.body.status).toBe(status);
  expect(response.body).not.toHaveProperty('data');
  expect(Object.keys(response.body)).toEqual([
    'duration',
    'error',
    'server',
    'status',
    'successful',
    'timestamp',
    'traceId',
  ]);
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/;

describe('the envelope', () => {
  beforeEach(() => open({ serverName: 'ocp-1' }));

  it('wraps a success: data, duration, server, status, successful, timestamp, traceId', async () => {
    const r = await call({ url: '/compute/hosts/2/agent/stop' });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body)).toEqual([
      'data',
      'duration',
      'server',
      'status',
      'successful',
      'timestamp',
      'traceId',
    ]);
    expect(r.body).toMatchObject({ server: 'ocp-1', status: 200, successful: true });
    expect(r.body.traceId).toMatch(/^[0-9a-f]{16}$/);
    expect(r.headers['x-trace-id']).toBe(r.body.traceId);
    expect(r.body.timestamp).toMatch(TIMESTAMP);
    expect(Number.isInteger(r.body.duration)).toBe(true);
  });

  it('wraps a failure, and an unknown route', async () => {
    const r = await call({ method: 'GET', url: '/no/such/thing', user: null });
    expectRefused(r, 404, ServiceErrorCode.ROUTE_NOT_FOUND);
    expect(r.body.error.message).toBe('no endpoint GET /no/such/thing');
  });

  it("keeps the caller's X-Trace-Id when it is 16 hex characters", async () => {
    const r = await call({
      url: '/compute/hosts/2/agent/stop',
      headers: { 'x-trace-id': '0123456789abcdef' },
    });
    expect(r.body.traceId).toBe('0123456789abcdef');
    const other = await call({
      method: 'GET',
      url: '/health',
      headers: { 'x-trace-id': 'not-hex' },
    });
    expect(other.body.traceId).toMatch(/^[0-9a-f]{16}$/);
    expect(other.body.traceId).not.toBe('not-hex');
  });

  it('answers /health without credentials', async () => {
    const r = await call({ method: 'GET', url: '/health', user: null });
    expect(r.body).toMatchObject({ data: { status: 'UP' }, successful: true });
  });
});

describe('the seed samples (at submission)', () => {
  beforeEach(() => open());

  for (const file of ['seed-000-stop.json', 'seed-002-batch-stop.json', 'seed-004-restart.json']) {
    it(`${file}: the same keys at every level, types and statuses`, async () => {
      const sample = seed(file);
      const r = await call({
        url: sample.request.path,
        ...(sample.request.body === undefined ? {} : { body: sample.request.body }),
      });
      expect(r.status).toBe(200);
      expect(shapeDifferences(r.body, sample.response)).toEqual([]);
      const data = r.body.data;
      const expected = sample.response.data;
      expect(data.status).toBe('RUNNING');
      expect(data.context).toEqual(expected.context);
      for (const key of ['name', 'operation', 'taskDefinitionId', 'type', 'hostId'] as const) {
        expect(data[key]).toEqual(expected[key]);
      }
      expect(data.creator).toBe('admin');
      const byKey = (s: SubtaskJson) => `${s.name}#${s.parallelIdx}`;
      const sorted = (list: SubtaskJson[]) =>
        [...list].sort((x, y) => byKey(x).localeCompare(byKey(y)));
      const actualSubtasks = sorted(data.subtasks);
      const expectedSubtasks = sorted(expected.subtasks);
      expect(actualSubtasks.map(byKey)).toEqual(expectedSubtasks.map(byKey));
      expectedSubtasks.forEach((want, i) => {
        const got = actualSubtasks[i] as SubtaskJson;
        for (const key of [
          'className',
          'description',
          'nodeType',
          'operation',
          'parallelIdx',
          'prohibitRollback',
          'runTime',
          'status',
          'timeout',
        ] as const) {
          expect({ subtask: byKey(want), key, value: got[key] }).toEqual({
            subtask: byKey(want),
            key,
            value: want[key],
          });
        }
        expect(got.upstreams).toHaveLength(want.upstreams.length);
        expect(got.downstreams).toHaveLength(want.downstreams.length);
      });
    });
  }

  it('seed-003-stop-process.json: the HostAgentProcess of a stopped process', async () => {
    const sample = seed('seed-003-stop-process.json');
    const processes = await t.agent.listProcesses(2);
    const obstat2 = processes.find((p) => p.alias === 'obstat2');
    const r = await call<HostAgentProcess>({
      url: `/compute/hosts/2/agent/processes/${obstat2?.id}/stop`,
    });
    expect(r.status).toBe(200);
    expect(shapeDifferences(r.body, sample.response)).toEqual([]);
    expect(r.body.data).toMatchObject({
      alias: 'obstat2',
      hostId: 2,
      pid: 0,
      status: 'STOPPED',
      operable: true,
    });
    expect(t.agent.marks()).toEqual([]);
  });
});

describe('authentication and permissions', () => {
  beforeEach(() => open());

  it('refuses a request without credentials with 401 and a Basic challenge, writing nothing', async () => {
    const r = await call({ url: '/compute/hosts/1/agent/stop', user: null });
    expectRefused(r, 401, ServiceErrorCode.UNAUTHENTICATED);
    expect(r.headers['www-authenticate']).toBe('Basic realm="dagops", charset="UTF-8"');
    await expectNothingWritten();
  });

  it('refuses a wrong password and an unknown user alike', async () => {
    const wrong = await call({
      url: '/compute/hosts/1/agent/stop',
      headers: { authorization: basic('admin', 'nope') },
    });
    const unknown = await call({
      url: '/compute/hosts/1/agent/stop',
      headers: { authorization: basic('mallory', 'nope') },
    });
    expectRefused(wrong, 401, ServiceErrorCode.UNAUTHENTICATED);
    expectRefused(unknown, 401, ServiceErrorCode.UNAUTHENTICATED);
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
    await expectNothingWritten();
  });

  it.each([
    ['Bearer abc'],
    ['Basic'],
    ['Basic !!!!'],
    [`Basic ${Buffer.from('no-colon').toString('base64')}`],
    [`Basic ${Buffer.from(':empty-user').toString('base64')}`],
  ])('refuses a malformed Authorization header: %s', async (authorization) => {
    const r = await call({ url: '/compute/hosts/1/agent/stop', headers: { authorization } });
    expectRefused(r, 401, ServiceErrorCode.UNAUTHENTICATED);
    await expectNothingWritten();
  });

  it('refuses a caller without HOST_MANAGER on host endpoints with 403, writing nothing', async () => {
    for (const user of ['taskman', 'nobody']) {
      const r = await call({ url: '/compute/hosts/1/agent/stop', user });
      expectRefused(r, 403, ServiceErrorCode.PERMISSION_DENIED);
      expect(r.body.error.message).toBe(`${user} lacks the HOST_MANAGER permission`);
      const batch = await call({
        url: '/compute/hosts/batchStopAgents',
        user,
        body: { hostIds: [1] },
      });
      expectRefused(batch, 403, ServiceErrorCode.PERMISSION_DENIED);
      const list = await call({ method: 'GET', url: '/compute/hosts/1/agent/processes', user });
      expectRefused(list, 403, ServiceErrorCode.PERMISSION_DENIED);
    }
    await expectNothingWritten();
  });

  it('needs TASK_MANAGER for task operations; reading a task takes either permission', async () => {
    const submitted = await call({ url: '/compute/hosts/1/agent/stop', user: 'hostman' });
    const id = submitted.body.data.id;
    expect(submitted.body.data.creator).toBe('hostman');
    await t.engine.waitForTask(id);
    const retry = await call({ url: `/api/v2/tasks/instances/${id}/retry`, user: 'hostman' });
    expectRefused(retry, 403, ServiceErrorCode.PERMISSION_DENIED);
    expect(retry.body.error.message).toBe('hostman lacks the TASK_MANAGER permission');
    expect(
      (await call({ method: 'GET', url: `/api/v2/tasks/instances/${id}`, user: 'hostman' })).status,
    ).toBe(200);
    expect(
      (await call({ method: 'GET', url: `/api/v2/tasks/instances/${id}`, user: 'taskman' })).status,
    ).toBe(200);
    const denied = await call({
      method: 'GET',
      url: `/api/v2/tasks/instances/${id}`,
      user: 'nobody',
    });
    expectRefused(denied, 403, ServiceErrorCode.PERMISSION_DENIED);
    // The refused retry left no trace in the audit trail.
    expect((await t.engine.getAuditTrail(id)).map((e) => e.actor)).toEqual(['hostman']);
  });

  it('checks credentials before the body: a bad body without credentials is 401', async () => {
    const r = await call({
      url: '/compute/hosts/batchStopAgents',
      user: null,
      body: { hostIds: [] },
    });
    expectRefused(r, 401, ServiceErrorCode.UNAUTHENTICATED);
  });
});

describe('validation: refused with 400, nothing written', () => {
  beforeEach(() => open({ maxBatchHosts: 3, bodyLimitBytes: 2048 }));

  it.each([
    '0',
    '-1',
    '1.5',
    'abc',
    '01',
    '+1',
    '1e3',
    '0x10',
    '%201',
    '9007199254740992',
    '99999999999999999',
  ])('path hostId %s', async (hostId) => {
    for (const path of [
      `/compute/hosts/${hostId}/agent/stop`,
      `/compute/hosts/${hostId}/agent/restart`,
    ]) {
      const r = await call({ url: path });
      expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
      expect(r.body.error.target).toBe('hostId');
    }
    await expectNothingWritten();
  });

  it('accepts the largest safe id (and answers 404: no such host)', async () => {
    const r = await call({ url: '/compute/hosts/9007199254740991/agent/stop' });
    expectRefused(r, 404, ErrorCode.TASK_NOT_FOUND);
  });

  it.each([
    ['no hostIds', {}, 'hostIds'],
    ['empty', { hostIds: [] }, 'hostIds'],
    ['numeric string', { hostIds: ['2'] }, 'hostIds[0]'],
    ['zero', { hostIds: [0] }, 'hostIds[0]'],
    ['negative', { hostIds: [1, -2] }, 'hostIds[1]'],
    ['fraction', { hostIds: [1.5] }, 'hostIds[0]'],
    ['unsafe', { hostIds: [9007199254740992] }, 'hostIds[0]'],
    ['null', { hostIds: [null] }, 'hostIds[0]'],
    ['too many', { hostIds: [1, 2, 3, 4] }, 'hostIds'],
    ['unknown field', { hostIds: [1], force: true }, 'force'],
    ['not a list', { hostIds: 1 }, 'hostIds'],
  ])('batch body: %s', async (_name, body, target) => {
    const r = await call({ url: '/compute/hosts/batchStopAgents', body });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
    expect(r.body.error.target).toBe(target);
    expect(r.body.error.subErrors?.length).toBeGreaterThan(0);
    await expectNothingWritten();
  });

  it('names every duplicate', async () => {
    const r = await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds: [1, 2, 1] } });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
    expect(r.body.error.subErrors).toEqual([
      {
        code: ServiceErrorCode.REQUEST_INVALID,
        message: 'hostIds[2] (1) duplicates hostIds[0]',
        target: 'hostIds[2]',
      },
    ]);
    await expectNothingWritten();
  });

  it('names the rule and the value it got', async () => {
    const path = await call({ url: '/compute/hosts/0/agent/stop' });
    expect(path.body.error.message).toBe(
      'invalid path parameter: hostId must be a positive integer (decimal digits, no sign, no leading zero), got "0"',
    );
    const body = await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds: ['2'] } });
    expect(body.body.error.message).toBe('invalid body: hostIds[0] must be integer, got "2"');
    const huge = await call({
      url: '/compute/hosts/batchStopAgents',
      body: { hostIds: [1, 2, 3, 4] },
    });
    expect(huge.body.error.message).toBe(
      'invalid body: hostIds must NOT have more than 3 items, got [1,2,3,4]',
    );
  });

  it('reports every problem of a body at once', async () => {
    const r = await call({
      url: '/compute/hosts/batchStopAgents',
      body: { hostIds: ['1', 0], extra: 1 },
    });
    expect(r.body.error.subErrors?.map((e) => e.target)).toEqual([
      'extra',
      'hostIds[0]',
      'hostIds[1]',
    ]);
  });

  it.each([
    ['invalid JSON', '{"hostIds": [1', 'application/json'],
    ['an array', '[1]', 'application/json'],
    ['a string', '"1"', 'application/json'],
    ['text', 'hostIds=1', 'text/plain'],
    ['form', 'hostIds=1', 'application/x-www-form-urlencoded'],
    ['prototype pollution', '{"hostIds":[1],"__proto__":{"x":1}}', 'application/json'],
  ])('batch body: %s', async (_name, payload, type) => {
    const r = await call({
      url: '/compute/hosts/batchStopAgents',
      payload,
      headers: { 'content-type': type },
    });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
    await expectNothingWritten();
  });

  it('refuses a body over the limit with 413', async () => {
    const hostIds = Array.from({ length: 600 }, (_, i) => i + 1);
    const r = await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds } });
    expectRefused(r, 413, ServiceErrorCode.PAYLOAD_TOO_LARGE);
    await expectNothingWritten();
  });

  it('refuses a body on an endpoint that takes none; accepts {} and an empty JSON body', async () => {
    const r = await call({ url: '/compute/hosts/1/agent/stop', body: { force: true } });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
    expect(r.body.error.message).toBe('force is not a known field: this endpoint takes no body');
    expectRefused(
      await call({ url: '/compute/hosts/1/agent/stop', body: [1] }),
      400,
      ServiceErrorCode.REQUEST_INVALID,
    );
    await expectNothingWritten();
    expect((await call({ url: '/compute/hosts/1/agent/stop', body: {} })).status).toBe(200);
    const empty = await call({
      url: '/compute/hosts/2/agent/stop',
      payload: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.status).toBe(200);
  });

  it('answers 404 naming every unknown host, and writes nothing', async () => {
    const r = await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds: [1, 98, 2] } });
    expectRefused(r, 404, ErrorCode.TASK_NOT_FOUND);
    expect(r.body.error.message).toBe('host 98 does not exist');
    const many = await call({
      url: '/compute/hosts/batchStopAgents',
      body: { hostIds: [97, 1, 99] },
    });
    expect(many.body.error).toEqual({
      code: ErrorCode.TASK_NOT_FOUND,
      message: '2 hosts do not exist: 97, 99',
      target: 'hostIds[0]',
      subErrors: [
        { code: ErrorCode.TASK_NOT_FOUND, message: 'host 97 does not exist', target: 'hostIds[0]' },
        { code: ErrorCode.TASK_NOT_FOUND, message: 'host 99 does not exist', target: 'hostIds[2]' },
      ],
    });
    for (const path of [
      '/compute/hosts/42/agent/stop',
      '/compute/hosts/42/agent/restart',
      '/compute/hosts/42/agent/processes/1/stop',
    ]) {
      const single = await call({ url: path });
      expectRefused(single, 404, ErrorCode.TASK_NOT_FOUND);
      expect(single.body.error).toMatchObject({
        message: 'host 42 does not exist',
        target: 'hostId',
      });
    }
    expectRefused(
      await call({ method: 'GET', url: '/compute/hosts/42/agent/processes' }),
      404,
      ErrorCode.TASK_NOT_FOUND,
    );
    await expectNothingWritten();
  });

  it('refuses an unknown agent process with 404 and bad process ids with 400', async () => {
    const r = await call({ url: '/compute/hosts/1/agent/processes/999999/stop' });
    expectRefused(r, 404, ErrorCode.TASK_NOT_FOUND);
    expect(r.body.error.target).toBe('agentProcessId');
    const bad = await call({ url: '/compute/hosts/1/agent/processes/0/stop' });
    expectRefused(bad, 400, ServiceErrorCode.REQUEST_INVALID);
    expect(bad.body.error.target).toBe('agentProcessId');
    await expectNothingWritten();
  });

  it.each([
    ['size=0'],
    ['size=101'],
    ['page=0'],
    ['page=-1'],
    ['status=DONE'],
    ['status=RUNNING&status=FAILED'],
    ['sort=id'],
    ['name='],
  ])('task list query %s', async (query) => {
    const r = await call({ method: 'GET', url: `/api/v2/tasks/instances?${query}` });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
  });

  it('refuses a malformed Idempotency-Key', async () => {
    const r = await call({
      url: '/compute/hosts/1/agent/stop',
      headers: { 'idempotency-key': 'has space' },
    });
    expectRefused(r, 400, ServiceErrorCode.REQUEST_INVALID);
    expect(r.body.error.target).toBe('Idempotency-Key');
    await expectNothingWritten();
  });
});

describe('idempotency', () => {
  beforeEach(() => open());

  it('replays the first answer to a repeated POST with the same key', async () => {
    const headers = { 'idempotency-key': 'stop-1-a' };
    const first = await call({ url: '/compute/hosts/1/agent/stop', headers });
    const again = await call({ url: '/compute/hosts/1/agent/stop', headers });
    expect(first.status).toBe(200);
    expect(again.raw).toBe(first.raw);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(await t.store.getTask(2)).toBeUndefined();
  });

  it('refuses the same key with another body or path (409), and keeps keys per user', async () => {
    const headers = { 'idempotency-key': 'k-2' };
    expect(
      (await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds: [1] }, headers }))
        .status,
    ).toBe(200);
    const body = await call({
      url: '/compute/hosts/batchStopAgents',
      body: { hostIds: [2] },
      headers,
    });
    expectRefused(body, 409, ServiceErrorCode.IDEMPOTENCY_KEY_REUSED);
    const path = await call({ url: '/compute/hosts/3/agent/stop', headers });
    expectRefused(path, 409, ServiceErrorCode.IDEMPOTENCY_KEY_REUSED);
    expect(await t.store.getTask(2)).toBeUndefined();
    const otherUser = await call({ url: '/compute/hosts/3/agent/stop', headers, user: 'hostman' });
    expect(otherUser.status).toBe(200);
    expect(otherUser.body.data.id).toBe(2);
  });

  it('keeps nothing of a refused request: the key can be used again', async () => {
    const headers = { 'idempotency-key': 'k-3' };
    expectRefused(
      await call({ url: '/compute/hosts/77/agent/stop', headers }),
      404,
      ErrorCode.TASK_NOT_FOUND,
    );
    await expectNothingWritten();
    expect((await call({ url: '/compute/hosts/1/agent/stop', headers })).status).toBe(200);
  });

  it('ignores the key on GET', async () => {
    const r = await call({ method: 'GET', url: '/health', headers: { 'idempotency-key': 'k-4' } });
    expect(r.status).toBe(200);
    expect(t.state.idempotencyKeyCount).toBe(0);
  });
});

describe('busy hosts', () => {
  it('refuses a second operation on a host while the first runs (409), naming the host', async () => {
    const agent = new SimulatedAgent({ hostIds: [1, 2, 3, 4, 5], latencyMs: 30 });
    await open({ agent });
    const first = await call({ url: '/compute/hosts/1/agent/stop' });
    expect(first.status).toBe(200);
    const second = await call({ url: '/compute/hosts/1/agent/restart' });
    expectRefused(second, 409, ErrorCode.TASK_STATE_INVALID);
    expect(second.body.error.message).toBe(
      `host 1 is busy: task ${first.body.data.id} is running on it`,
    );
    const batch = await call({ url: '/compute/hosts/batchStopAgents', body: { hostIds: [2, 1] } });
    expectRefused(batch, 409, ErrorCode.TASK_STATE_INVALID);
    expect(batch.body.error.target).toBe('hostIds[1]');
    expect(await t.store.getTask(2)).toBeUndefined();
    await t.engine.waitForTask(first.body.data.id);
    expect((await call({ url: '/compute/hosts/1/agent/restart' })).status).toBe(200);
  });

  it('refuses while a failed task still holds the host', async () => {
    await open();
    t.agent.injectFault({ kind: 'fail', hostId: 1, action: 'stop' });
    const first = await call({ url: '/compute/hosts/1/agent/stop' });
    const done = await t.engine.waitForTask(first.body.data.id);
    expect(done.status).toBe(TaskStatus.FAILED);
    const second = await call({ url: '/compute/hosts/1/agent/stop' });
    expectRefused(second, 409, ErrorCode.TASK_STATE_INVALID);
    expect(second.body.error.message).toMatch(
      /^host 1 is busy: it is under operation task:1 since /,
    );
  });
});

describe('task management', () => {
  beforeEach(() => open());

  async function stopTask(hostId: number): Promise<number> {
    const r = await call({ url: `/compute/hosts/${hostId}/agent/stop` });
    const id = r.body.data.id;
    await t.engine.waitForTask(id);
    return id;
  }

  it('gets a task and lists tasks newest first, filtered and paged', async () => {
    const a = await stopTask(1);
    const b = await stopTask(2);
    t.agent.injectFault({ kind: 'fail', hostId: 3, action: 'stop' });
    const c = await stopTask(3);
    const got = await call({ method: 'GET', url: `/api/v2/tasks/instances/${a}` });
    expect(got.body.data).toMatchObject({ id: a, status: 'SUCCESSFUL', hostId: 1 });
    expect(got.body.data.endTime).toMatch(TIMESTAMP);

    const page1 = await call<Page<TaskJson>>({
      method: 'GET',
      url: '/api/v2/tasks/instances?size=2',
    });
    expect(page1.body.data.contents.map((x) => x.id)).toEqual([c, b]);
    expect(page1.body.data.page).toEqual({
      totalElements: 3,
      totalPages: 2,
      number: 1,
      size: 2,
    });
    expect(page1.body.data.contents[0]).not.toHaveProperty('subtasks');
    const page2 = await call<Page<TaskJson>>({
      method: 'GET',
      url: '/api/v2/tasks/instances?size=2&page=2',
    });
    expect(page2.body.data.contents.map((x) => x.id)).toEqual([a]);
    const failed = await call<Page<TaskJson>>({
      method: 'GET',
      url: '/api/v2/tasks/instances?status=FAILED',
    });
    expect(failed.body.data.contents.map((x) => x.id)).toEqual([c]);
    const named = await call<Page<TaskJson>>({
      method: 'GET',
      url: '/api/v2/tasks/instances?name=stop%20ocp',
    });
    expect(named.body.data.page.totalElements).toBe(3);
    const none = await call<Page<TaskJson>>({
      method: 'GET',
      url: '/api/v2/tasks/instances?name=restart',
    });
    expect(none.body.data).toEqual({
      contents: [],
      page: { totalElements: 0, totalPages: 0, number: 1, size: 10 },
    });
  });

  it('never answers a stale task: only SUCCESSFUL ones are kept in memory', async () => {
    t.agent.injectFault({ kind: 'fail', hostId: 4, action: 'stop', times: 1 });
    const id = await stopTask(4);
    const get = () => call({ method: 'GET', url: `/api/v2/tasks/instances/${id}` });
    expect((await get()).body.data.status).toBe('FAILED');
    const failed = (await t.engine.getTask(id)).subtasks.find((s) => s.status === 'FAILED');
    await call({ url: `/api/v2/tasks/instances/${id}/subtasks/${failed?.id}/retry` });
    await t.engine.waitForTask(id);
    const first = await get();
    expect(first.body.data.status).toBe('SUCCESSFUL');
    expect((await get()).body.data).toEqual(first.body.data);
  });

  it('answers 404 for an unknown task and for a subtask of another task', async () => {
    const a = await stopTask(1);
    const b = await stopTask(2);
    expectRefused(
      await call({ method: 'GET', url: '/api/v2/tasks/instances/999' }),
      404,
      ErrorCode.TASK_NOT_FOUND,
    );
    expectRefused(
      await call({ url: '/api/v2/tasks/instances/999/retry' }),
      404,
      ErrorCode.TASK_NOT_FOUND,
    );
    const subtaskOfB = (await t.engine.getTask(b)).subtasks[0]?.id as number;
    const log = await call({
      method: 'GET',
      url: `/api/v2/tasks/instances/${a}/subtasks/${subtaskOfB}/log`,
    });
    expectRefused(log, 404, ErrorCode.TASK_NOT_FOUND);
    const skip = await call({ url: `/api/v2/tasks/instances/${a}/subtasks/${subtaskOfB}/skip` });
    expectRefused(skip, 404, ErrorCode.TASK_NOT_FOUND);
  });

  it('refuses an operation the state does not allow with 409', async () => {
    const a = await stopTask(1);
    const retry = await call({ url: `/api/v2/tasks/instances/${a}/retry` });
    expectRefused(retry, 409, ErrorCode.TASK_STATE_INVALID);
    const rollback = await call({ url: `/api/v2/tasks/instances/${a}/rollback` });
    expectRefused(rollback, 409, ErrorCode.TASK_STATE_INVALID);
    const cancel = await call({ url: `/api/v2/tasks/instances/${a}/cancel` });
    expectRefused(cancel, 409, ErrorCode.TASK_STATE_INVALID);
    expect((await t.engine.getAuditTrail(a)).length).toBe(1);
  });

  it('retries a failed subtask and records the caller in the audit trail', async () => {
    t.agent.injectFault({ kind: 'fail', hostId: 1, action: 'stop', times: 1 });
    const id = await stopTask(1);
    const failed = (await t.engine.getTask(id)).subtasks.find((s) => s.status === 'FAILED');
    const r = await call({
      url: `/api/v2/tasks/instances/${id}/subtasks/${failed?.id}/retry`,
      user: 'taskman',
    });
    expect(r.status).toBe(200);
    expect(r.body.data.status).toBe('RUNNING');
    expect((await t.engine.waitForTask(id)).status).toBe('SUCCESSFUL');
    const audit = await call<{ entries: { time: string }[] }>({
      method: 'GET',
      url: `/api/v2/tasks/instances/${id}/audit`,
    });
    const { entries } = audit.body.data;
    expect(entries.map(({ time: _, ...entry }) => entry)).toEqual([
      { operation: 'EXECUTE', actor: 'admin' },
      { subtaskId: failed?.id, operation: 'RETRY', actor: 'taskman' },
    ]);
    for (const entry of entries) expect(entry.time).toMatch(TIMESTAMP);
    const log = await call<{ lines: { runTime: number; time: string; message: string }[] }>({
      method: 'GET',
      url: `/api/v2/tasks/instances/${id}/subtasks/${failed?.id}/log`,
    });
    const [line] = log.body.data.lines;
    expect(Object.keys(line ?? {})).toEqual(['runTime', 'time', 'message']);
    expect(line?.runTime).toBe(1);
    expect(line?.time).toMatch(TIMESTAMP);
  });

  it('draws the DAG as Mermaid or DOT', async () => {
    const id = await stopTask(1);
    const mermaid = await call<{ picture: string }>({
      method: 'GET',
      url: `/api/v2/tasks/instances/${id}/picture`,
    });
    expect(mermaid.body.data).toMatchObject({ taskId: id, format: 'mermaid' });
    expect(mermaid.body.data.picture).toMatch(/^flowchart TD\n/);
    expect(mermaid.body.data.picture).toContain('classDef SUCCESSFUL');
    const dot = await call<{ picture: string }>({
      method: 'GET',
      url: `/api/v2/tasks/instances/${id}/picture?format=dot`,
    });
    expect(dot.body.data.picture).toMatch(/^digraph /);
    expectRefused(
      await call({ method: 'GET', url: `/api/v2/tasks/instances/${id}/picture?format=svg` }),
      400,
      ServiceErrorCode.REQUEST_INVALID,
    );
    expectRefused(
      await call({ method: 'GET', url: '/api/v2/tasks/instances/999/picture' }),
      404,
      ErrorCode.TASK_NOT_FOUND,
    );
  });
});

describe('the OpenAPI document', () => {
  beforeEach(() => open());

  it('describes every endpoint, with Basic security and the permissions', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    interface Operation {
      readonly security: unknown;
      readonly 'x-permissions': unknown;
      readonly parameters: unknown[];
      readonly responses: Record<string, { content: Record<string, { schema: Schema }> }>;
    }
    interface Schema {
      readonly properties: Record<string, unknown>;
    }
    const doc = r.json<{
      openapi: string;
      paths: Record<string, Record<string, Operation>>;
      components: { securitySchemes: unknown };
    }>();
    expect(doc.openapi).toBe('3.1.0');
    const paths = doc.paths;
    for (const path of [
      '/compute/hosts/{hostId}/agent/stop',
      '/compute/hosts/batchStopAgents',
      '/compute/hosts/{hostId}/agent/restart',
      '/compute/hosts/{hostId}/agent/processes/{agentProcessId}/stop',
      '/compute/hosts/{hostId}/agent/processes',
      '/api/v2/tasks/instances',
      '/api/v2/tasks/instances/{id}',
      '/api/v2/tasks/instances/{id}/retry',
      '/api/v2/tasks/instances/{id}/rollback',
      '/api/v2/tasks/instances/{id}/cancel',
      '/api/v2/tasks/instances/{id}/subtasks/{sid}/retry',
      '/api/v2/tasks/instances/{id}/subtasks/{sid}/skip',
      '/api/v2/tasks/instances/{id}/subtasks/{sid}/cancel',
      '/api/v2/tasks/instances/{id}/subtasks/{sid}/log',
      '/api/v2/tasks/instances/{id}/picture',
    ]) {
      expect(paths).toHaveProperty([path]);
    }
    const stop = paths['/compute/hosts/{hostId}/agent/stop']?.['post'] as Operation;
    expect(stop.security).toEqual([{ basic: [] }]);
    expect(stop['x-permissions']).toEqual(['HOST_MANAGER']);
    expect(stop.parameters[0]).toMatchObject({ name: 'hostId', in: 'path', required: true });
    expect(stop.responses['200']?.content['application/json']?.schema.properties).toHaveProperty(
      'traceId',
    );
    expect(doc.components.securitySchemes).toEqual({
      basic: { type: 'http', scheme: 'basic' },
    });
  });
});

describe('the request log', () => {
  beforeEach(() => open());

  it('logs every request as one JSON line with its traceId, and never a secret', async () => {
    const responses = [
      await call({ url: '/compute/hosts/1/agent/stop' }),
      await call({
        url: '/compute/hosts/1/agent/stop',
        headers: { authorization: basic('admin', 'wrong-secret-xyz') },
      }),
      await call({ method: 'GET', url: '/nowhere', user: null }),
    ];
    await t.engine.waitForTask(responses[0]?.body.data.id ?? 0);
    const requests = t.logs.entries().filter((e) => e['msg'] === 'request');
    expect(requests.map((e) => e['traceId'])).toEqual(responses.map((r) => r.body.traceId));
    expect(requests[0]).toMatchObject({
      method: 'POST',
      url: '/compute/hosts/1/agent/stop',
      status: 200,
      user: 'admin',
    });
    expect(requests[1]).toMatchObject({ status: 401, code: ServiceErrorCode.UNAUTHENTICATED });
    const secrets = [
      USERS.admin.password,
      'wrong-secret-xyz',
      basic('admin').slice(6),
      basic('admin', 'wrong-secret-xyz').slice(6),
    ];
    const task = await t.engine.getTask(responses[0]?.body.data.id ?? 0);
    for (const secret of secrets) {
      expect(t.logs.text()).not.toContain(secret);
      for (const r of responses) expect(r.raw).not.toContain(secret);
      expect(JSON.stringify(task)).not.toContain(secret);
    }
  });
});
