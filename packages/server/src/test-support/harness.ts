/**
 * Test support: a server on a MemoryStore engine and a SimulatedAgent (for `app.inject`), users
 * with every combination of permissions, a log capture, and the seeds' sample responses.
 */
import { readFileSync } from 'node:fs';
import { Engine, HandlerRegistry, MemoryStore, type Store } from '@dagops/engine';
import { registerAgentHandlers, SimulatedAgent, type HostAgent } from '@dagops/definitions';
import type { FastifyInstance } from 'fastify';
import type { TaskJson } from '@dagops/engine';
import type { ErrorBody } from '../api-error.js';
import { buildServer } from '../build-server.js';
import { MemoryServiceState } from '../memory-service-state.js';
import { Permission } from '../permissions.js';
import type { ServerOptions } from '../server-options.js';
import type { ServiceState } from '../service-state.js';
import { createUser } from '../users.js';

/** scrypt cost for test users: fast (the default is 2^17). */
export const TEST_PASSWORD_COST = 1024;

/** Test users: name → password and permissions. */
export const USERS = {
  admin: {
    password: 'admin-pass-1',
    permissions: [Permission.HOST_MANAGER, Permission.TASK_MANAGER],
  },
  hostman: { password: 'host-pass-22', permissions: [Permission.HOST_MANAGER] },
  taskman: { password: 'task-pass-333', permissions: [Permission.TASK_MANAGER] },
  nobody: { password: 'nobody-pass-4444', permissions: [] },
} as const;
export type TestUser = keyof typeof USERS;

/** `Basic …` for a test user (or any name and password). */
export function basic(user: string, password?: string): string {
  const secret = password ?? USERS[user as TestUser].password;
  return `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
}

/** Adds the test users to a state. */
export async function addTestUsers(state: ServiceState): Promise<void> {
  for (const [name, user] of Object.entries(USERS)) {
    await createUser(state, name, user.password, user.permissions, {
      passwordCost: TEST_PASSWORD_COST,
    });
  }
}

/** Collects log lines. */
export class LogCapture {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  /** Every line, parsed. */
  entries(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  text(): string {
    return this.lines.join('');
  }
}

/** A server to inject requests into. */
export interface TestApp {
  readonly app: FastifyInstance;
  readonly engine: Engine;
  readonly store: Store;
  readonly agent: SimulatedAgent;
  readonly state: MemoryServiceState;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

/** Options of {@link createTestApp}. */
export interface TestAppOptions extends Partial<Omit<ServerOptions, 'engine' | 'state'>> {
  /** Hosts 1..hostCount exist. @default 5 */
  readonly hostCount?: number;
  /** @default a SimulatedAgent over the hosts */
  readonly agent?: HostAgent;
}

/** A server on a MemoryStore engine, a SimulatedAgent over hosts 1..5, and the test users. */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const hostCount = options.hostCount ?? 5;
  const hostIds = Array.from({ length: hostCount }, (_, i) => i + 1);
  const agent = new SimulatedAgent({ hostIds });
  const store = new MemoryStore();
  const engine = new Engine({
    store,
    handlers: registerAgentHandlers(new HandlerRegistry(), options.agent ?? agent),
  });
  const state = new MemoryServiceState();
  await state.addHosts(hostIds);
  await addTestUsers(state);
  const logs = new LogCapture();
  const app = buildServer({
    ...options,
    engine,
    agent: options.agent ?? agent,
    state,
    logger: { level: 'info', stream: logs },
  });
  await app.ready();
  return {
    app,
    engine,
    store,
    agent,
    state,
    logs,
    async close() {
      await app.close();
      await engine.close();
    },
  };
}

/**
 * An answer as the tests read it: `data` on a success, `error` on a failure (both typed; the
 * tests check which one is there).
 */
export interface Answer<T = TaskJson> {
  readonly data: T;
  readonly error: ErrorBody;
  readonly duration: number;
  readonly server: string;
  readonly status: number;
  readonly successful: boolean;
  readonly timestamp: string;
  readonly traceId: string;
}

/** OCP's list shape. */
export interface Page<T> {
  readonly contents: T[];
  readonly page: {
    readonly totalElements: number;
    readonly totalPages: number;
    readonly number: number;
    readonly size: number;
  };
}

/** A seed's sample request and response (test-fixtures/seed-*.json). */
export interface SeedSample {
  readonly request: {
    readonly method: string;
    readonly path: string;
    readonly body?: unknown;
  };
  readonly response: Answer<TaskJson>;
}

/** Loads a seed sample by file name. */
export function seed(name: string): SeedSample {
  const url = new URL(`../../test-fixtures/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as SeedSample;
}

/**
 * Lists every difference in shape between `actual` and `expected`: the same keys at every
 * level (in the same order), the same JSON types; arrays compared element-wise against the
 * expected array's first element. Values are not compared.
 */
export function shapeDifferences(actual: unknown, expected: unknown, path = '$'): string[] {
  const kind = (value: unknown) =>
    value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  if (kind(actual) !== kind(expected)) {
    return [`${path}: ${kind(actual)} where the seed has ${kind(expected)}`];
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length === 0) return [];
    return actual.flatMap((item, i) => shapeDifferences(item, expected[0], `${path}[${i}]`));
  }
  if (kind(expected) !== 'object') return [];
  const a = actual as Record<string, unknown>;
  const e = expected as Record<string, unknown>;
  const problems: string[] = [];
  const actualKeys = Object.keys(a);
  const expectedKeys = Object.keys(e);
  for (const key of expectedKeys) if (!(key in a)) problems.push(`${path}.${key}: missing`);
  for (const key of actualKeys) if (!(key in e)) problems.push(`${path}.${key}: not in the seed`);
  if (problems.length === 0 && actualKeys.join() !== expectedKeys.join()) {
    problems.push(
      `${path}: keys in order ${actualKeys.join()} where the seed has ${expectedKeys.join()}`,
    );
  }
  for (const key of expectedKeys) {
    if (key in a) problems.push(...shapeDifferences(a[key], e[key], `${path}.${key}`));
  }
  return problems;
}
