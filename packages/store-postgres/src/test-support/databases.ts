/**
 * The databases the tests use: PostgreSQL at DAGOPS_TEST_DATABASE_URL (required with CI=true,
 * skipped loudly otherwise) and PGlite; fresh schemas; the batch-stop template.
 */
import { randomBytes } from 'node:crypto';
import {
  countSubtasks,
  expandTemplate,
  validateTemplate,
  WAIT_NODE_CLASS_NAME,
  type ExpandedTask,
  type Store,
  type Template,
} from '@dagops/engine';
import pg from 'pg';
import { onTestFinished } from 'vitest';
import type { SqlDriver } from '../sql-driver.js';

/** The PostgreSQL the tests use. */
export const TEST_DATABASE_URL =
  process.env['DAGOPS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Whether PostgreSQL answers. With CI=true it must (an unreachable server fails the suite);
 * otherwise the PostgreSQL suites skip, saying so loudly.
 */
export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 3000,
  });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    if (process.env['CI'] === 'true') {
      throw new Error(
        `CI=true: the PostgreSQL suites need the server at ${TEST_DATABASE_URL} (DAGOPS_TEST_DATABASE_URL), which is unreachable: ${String(error)}`,
      );
    }
    console.warn(
      `\n${'!'.repeat(78)}\n!! PostgreSQL at ${TEST_DATABASE_URL} is unreachable: SKIPPING the PostgreSQL suites.\n!! Set DAGOPS_TEST_DATABASE_URL, or run with CI=true to make this a failure.\n${'!'.repeat(78)}\n`,
    );
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name no other run uses. */
export function freshSchema(prefix = 'dagops_t'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** A fresh schema (see {@link freshSchema}), dropped when the current test ends. */
export function schemaForTest(prefix?: string): string {
  const schema = freshSchema(prefix);
  onTestFinished(() => dropSchema(schema));
  return schema;
}

/** Drops `schema` on the test PostgreSQL. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';

/** The handler class names of the batch stop (besides the built-in barrier). */
export const BATCH_STOP_CLASSES = [
  `${OBAGENT}.PrepareStopOcpAgentTask`,
  `${OBAGENT}.StopAllOcpAgentProcessesTask`,
  `${OBAGENT}.FinishOcpAgentOperationTask`,
] as const;

/**
 * Batch stop (seed 002): Prepare[host] → Wait → Stop[host] → Wait → Finish[host], every node
 * retried up to 3 times (an attempt whose engine died is a failed attempt).
 */
export function batchStopTemplate(concurrency = 32): Template {
  const retry = { maxAttempts: 3, initialIntervalSeconds: 0.05 };
  const [prepare, stop, finish] = BATCH_STOP_CLASSES;
  return {
    name: 'Batch stop OCP agent',
    concurrency,
    nodes: [
      {
        key: 'prepare',
        className: prepare,
        name: 'Prepare',
        timeout: 60,
        splitKey: 'host_ids',
        retry,
      },
      { key: 'wait1', className: WAIT_NODE_CLASS_NAME, name: 'Wait node', timeout: 30, retry },
      { key: 'stop', className: stop, name: 'Stop all', timeout: 600, splitKey: 'host_ids', retry },
      { key: 'wait2', className: WAIT_NODE_CLASS_NAME, name: 'Wait node', timeout: 30, retry },
      {
        key: 'finish',
        className: finish,
        name: 'Finish',
        timeout: 60,
        splitKey: 'host_ids',
        retry,
      },
    ],
    edges: [
      { from: 'prepare', to: 'wait1' },
      { from: 'wait1', to: 'stop' },
      { from: 'stop', to: 'wait2' },
      { from: 'wait2', to: 'finish' },
    ],
  };
}

/** `count` host ids, as OCP passes them. */
export function hostIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String(1001 + i));
}

/** Expands a task with ids reserved from `store` (no engine), as `Engine.submit` would. */
export async function expandTask(
  store: Store,
  template: Template,
  args: unknown,
  now = Date.now(),
): Promise<ExpandedTask> {
  const validated = validateTemplate(template);
  const ids = await store.reserveIds(countSubtasks(validated, args));
  return expandTemplate(validated, args, {
    ids: { nextTaskId: () => ids.taskId, reserveSubtaskIds: () => ids.firstSubtaskId },
    creator: 'test',
    executor: 'test',
    now,
  });
}

/** Saves a task directly in `store` (no engine), as `Engine.submit` would. */
export async function insertTask(
  store: Store,
  template: Template,
  args: unknown,
  now = Date.now(),
): Promise<ExpandedTask> {
  const expanded = await expandTask(store, template, args, now);
  await store.insertTask(expanded, { actor: 'test', now });
  return expanded;
}

/**
 * `driver`, calling `before(text)` ahead of every statement it runs; a promise returned holds
 * the statement back until it settles. The driver the tests below and head-first.test.ts build on.
 */
export function beforeQueries(
  driver: SqlDriver,
  before: (text: string) => Promise<void> | undefined,
): SqlDriver {
  return {
    query(text, params) {
      const wait = before(text);
      return wait ? wait.then(() => driver.query(text, params)) : driver.query(text, params);
    },
    exec: (text) => driver.exec(text),
    transaction: (fn) => driver.transaction(fn),
    listen: (channel, onNotify) => driver.listen(channel, onNotify),
    close: () => driver.close(),
  };
}

/** `driver`, counting the statements whose text contains `needle` (say, one SQL function). */
export function countingQueries(
  driver: SqlDriver,
  needle: string,
): { driver: SqlDriver; count: () => number } {
  let count = 0;
  return {
    driver: beforeQueries(driver, (text) => {
      if (text.includes(needle)) count++;
      return undefined;
    }),
    count: () => count,
  };
}

/**
 * `driver`, holding back every statement whose text contains `needle`, past the first `skip`
 * of them, until `release()` (the statements already held then go on, in order). Lets a test
 * stop a store between two of its steps, say a head-first task's two transactions, or two
 * chunks of its rest.
 */
export function holdingQueries(
  driver: SqlDriver,
  needle: string,
  skip = 0,
): { driver: SqlDriver; held: () => number; release: () => void } {
  let held = 0;
  let passed = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    driver: beforeQueries(driver, (text) => {
      if (!text.includes(needle)) return undefined;
      if (passed < skip) {
        passed++;
        return undefined;
      }
      held++;
      return released;
    }),
    held: () => held,
    release: () => release(),
  };
}
