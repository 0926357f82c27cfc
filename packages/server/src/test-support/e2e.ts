/**
 * End-to-end support: a started service (real HTTP on a free port, PGlite in a temporary
 * directory or a fresh schema on a PostgreSQL server, real local agent processes), a small HTTP
 * client, and a safety net that kills every process the service started.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskJson } from '@dagops/engine';
import { LOCAL_AGENT_STATE_FILE, type HostAgentProcess } from '@dagops/definitions';
import { createPgDriver } from '@dagops/store-postgres';
import { AgentKind, type ServiceConfig } from '../service-config.js';
import { startService, type RunningService } from '../service.js';
import { basic, LogCapture, TEST_PASSWORD_COST, type Answer, type Page } from './harness.js';

/** The PostgreSQL server the e2e tests use. */
export const TEST_DATABASE_URL =
  process.env['DAGOPS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Whether `url` answers `SELECT 1` within a couple of seconds. */
export async function canConnect(url: string): Promise<boolean> {
  const driver = createPgDriver(url, { maxConnections: 1 });
  try {
    await Promise.race([
      driver.query('SELECT 1'),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref()),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    await driver.close().catch(() => {});
  }
}

/** The admin of e2e services. */
export const E2E_ADMIN = { name: 'admin', password: 'e2e-admin-password' } as const;

/** A started service for a test file. */
export interface E2eService {
  readonly service: RunningService;
  readonly dataDir: string;
  readonly logs: LogCapture;
  readonly http: HttpClient;
  /** Closes the service, kills stray processes, drops the schema, removes the directory. */
  stop(): Promise<void>;
}

/** Starts a service on PGlite (no `databaseUrl`) or on a fresh schema of `databaseUrl`. */
export async function startE2eService(
  databaseUrl: string | undefined,
  overrides: Partial<ServiceConfig> = {},
): Promise<E2eService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'dagops-server-e2e-'));
  const schema = `e2e_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const config: ServiceConfig = {
    port: 0,
    host: '127.0.0.1',
    dataDir,
    databaseUrl,
    databasePoolSize: 8,
    databasePrepare: true,
    schema,
    demoHosts: 3,
    agent: AgentKind.LOCAL,
    stopGracePeriodMs: 5_000,
    adminUser: E2E_ADMIN.name,
    adminPassword: E2E_ADMIN.password,
    maxBatchHosts: 10_000,
    bodyLimitBytes: 1_048_576,
    logLevel: 'info',
    engineConcurrency: 32,
    shutdownTimeoutMs: 30_000,
    taskCacheSize: 10_000,
    ...overrides,
  };
  const logs = new LogCapture();
  let service: RunningService;
  try {
    service = await startService(config, { logStream: logs, passwordCost: TEST_PASSWORD_COST });
  } catch (error) {
    killRecordedProcesses(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    service,
    dataDir,
    logs,
    http: new HttpClient(service.url, basic(E2E_ADMIN.name, E2E_ADMIN.password)),
    async stop() {
      try {
        await service.close();
      } finally {
        killRecordedProcesses(dataDir);
        rmSync(dataDir, { recursive: true, force: true });
        if (databaseUrl !== undefined) await dropSchemas(databaseUrl, schema);
      }
    },
  };
}

async function dropSchemas(url: string, schema: string): Promise<void> {
  const driver = createPgDriver(url, { maxConnections: 1 });
  try {
    await driver.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await driver.query(`DROP SCHEMA IF EXISTS ${schema}_server CASCADE`);
  } finally {
    await driver.close();
  }
}

/** Whether a pid names a running (not zombie) process. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Safety net: SIGKILLs every process the local agent's state file says runs, if it is still
 * the same process (same start time), so that no test leaves a process behind.
 */
export function killRecordedProcesses(dataDir: string): number[] {
  let state: {
    hosts?: Record<string, { processes?: { run?: { pid: number; startTicks: string } }[] }>;
  };
  try {
    state = JSON.parse(
      readFileSync(join(dataDir, 'agent', LOCAL_AGENT_STATE_FILE), 'utf8'),
    ) as typeof state;
  } catch {
    return [];
  }
  const killed: number[] = [];
  for (const host of Object.values(state.hosts ?? {})) {
    for (const { run } of host.processes ?? []) {
      if (!run || !isAlive(run.pid)) continue;
      const stat = readFileSync(`/proc/${run.pid}/stat`, 'utf8');
      const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      if (startTicks === run.startTicks) {
        process.kill(run.pid, 'SIGKILL');
        killed.push(run.pid);
      }
    }
  }
  return killed;
}

/** One answer of the service. */
export interface HttpAnswer<T = TaskJson> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Answer<T>;
  readonly text: string;
}

/** Options of {@link HttpClient.request}. */
export interface RequestOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as is. */
  readonly raw?: string;
  readonly headers?: Record<string, string>;
  /** An Authorization header; null for none. @default the client's */
  readonly auth?: string | null;
}

/** A tiny client over real HTTP (Node's fetch). */
export class HttpClient {
  constructor(
    readonly baseUrl: string,
    readonly authorization: string,
  ) {}

  async request<T = TaskJson>(
    method: 'GET' | 'POST',
    path: string,
    options: RequestOptions = {},
  ): Promise<HttpAnswer<T>> {
    const headers: Record<string, string> = { ...options.headers };
    const auth = options.auth === undefined ? this.authorization : options.auth;
    if (auth !== null) headers['authorization'] = auth;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    let parsed: Answer<T>;
    try {
      parsed = JSON.parse(text) as Answer<T>;
    } catch {
      throw new Error(
        `${method} ${path}: ${response.status} with a body that is not JSON: ${text}`,
      );
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  }

  get<T = TaskJson>(path: string, options?: RequestOptions): Promise<HttpAnswer<T>> {
    return this.request<T>('GET', path, options);
  }

  post<T = TaskJson>(path: string, options?: RequestOptions): Promise<HttpAnswer<T>> {
    return this.request<T>('POST', path, options);
  }

  /** Polls a task until `done` holds (default: not RUNNING); throws after `timeoutMs`. */
  async waitForTask(
    id: number,
    done: (task: TaskJson) => boolean = (task) => task.status !== 'RUNNING',
    timeoutMs = 20_000,
  ): Promise<TaskJson> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answer = await this.get(`/api/v2/tasks/instances/${id}`);
      if (answer.status !== 200) throw new Error(`GET task ${id}: ${answer.text}`);
      const task = answer.body.data;
      if (done(task)) return task;
      if (Date.now() > deadline) {
        throw new Error(
          `task ${id} did not get there within ${timeoutMs} ms: ${JSON.stringify(task)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** The host's processes by alias. */
  async processes(hostId: number): Promise<Record<string, HostAgentProcess>> {
    const answer = await this.get<Page<HostAgentProcess>>(
      `/compute/hosts/${hostId}/agent/processes`,
    );
    if (answer.status !== 200) throw new Error(`GET processes of ${hostId}: ${answer.text}`);
    return Object.fromEntries(answer.body.data.contents.map((p) => [p.alias, p]));
  }
}
