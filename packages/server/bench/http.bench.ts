/**
 * HTTP benchmark (`pnpm bench:http`): autocannon against the running service on PostgreSQL.
 *
 * 1. Starts the service (`dist/main.js`, its own process) on a fresh schema of the PostgreSQL
 *    at DAGOPS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), with a
 *    simulated fleet large enough that every POST stops a host nobody stopped before.
 * 2. Starts a bare Fastify (its own process) whose routes answer the same envelope from memory:
 *    the reference for what HTTP and JSON alone cost on this machine.
 * 3. Runs, each for DAGOPS_BENCH_SECONDS (default 10): `POST /compute/hosts/{id}/agent/stop` on
 *    distinct hosts, then `GET /api/v2/tasks/instances/{id}` over the tasks it created; the same
 *    two against the bare server. Prints req/s, p50 and p99 latency, and the ratios. The service
 *    runs as configured by default, so GET of these finished tasks is answered from its cache of
 *    SUCCESSFUL tasks; `DAGOPS_TASK_CACHE_SIZE=0` (passed on to the service) measures reads from
 *    the store instead, as for a task still running.
 *
 * Targets (issue 7): POST stop ≥ 1,000 req/s with p99 < 50 ms; GET task ≥ 5,000 req/s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { createPgDriver } from '@dagops/store-postgres';
import { integerFromEnv } from '../../../scripts/bench-env.js';

const DATABASE_URL =
  process.env['DAGOPS_BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const SECONDS = integerFromEnv('DAGOPS_BENCH_SECONDS', 10);
const POST_CONNECTIONS = integerFromEnv('DAGOPS_BENCH_POST_CONNECTIONS', 16);
const GET_CONNECTIONS = integerFromEnv('DAGOPS_BENCH_GET_CONNECTIONS', 32);
/** Enough hosts that no POST meets a host a previous one stopped. */
const HOSTS = integerFromEnv('DAGOPS_BENCH_HOSTS', 100_000);
const PASSWORD = 'bench-admin-password';
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** A stop task's envelope as the service answers it (seed 000's shape). */
function sampleEnvelope(id: number) {
  const subtask = (n: number, name: string, className: string, timeout: number) => ({
    className: `com.alipay.ocp.service.task.business.obagent.${className}`,
    description: name,
    downstreams: n < 2 ? [id * 3 + n + 1] : [],
    id: id * 3 + n,
    name,
    nodeType: 'JAVA_TASK',
    operation: 'EXECUTE',
    parallelIdx: -1,
    prohibitRollback: false,
    runTime: 1,
    seriesId: n,
    status: n === 0 ? 'READY' : 'PENDING',
    timeout,
    upstreams: n > 0 ? [id * 3 + n - 1] : [],
  });
  return {
    data: {
      context: {
        listMap: {},
        parallel: false,
        parallelIdx: -1,
        stringMap: { prohibit_rollback: 'false', host_id: String(id) },
      },
      creator: 'admin',
      executor: 'bench',
      hostId: id,
      id,
      name: 'Stop OCP agent',
      operation: 'EXECUTE',
      startTime: new Date().toISOString(),
      status: 'RUNNING',
      subtasks: [
        subtask(0, 'Prepare stop OCP agent', 'PrepareStopOcpAgentTask', 60),
        subtask(1, 'Stop all OCP agent processes', 'StopAllOcpAgentProcessesTask', 600),
        subtask(2, 'Finish OCP agent operation', 'FinishOcpAgentOperationTask', 60),
      ],
      taskDefinitionId: -1,
      type: 'MANUAL',
    },
    duration: 0,
    server: 'bench',
    status: 200,
    successful: true,
    timestamp: new Date().toISOString(),
    traceId: '0123456789abcdef',
  };
}

/** `--reference`: the bare Fastify server, in its own process; prints its port. */
async function runReference(): Promise<void> {
  const app = Fastify({ logger: false });
  app.post<{ Params: { hostId: string } }>('/compute/hosts/:hostId/agent/stop', (request, reply) =>
    reply.send(sampleEnvelope(Number(request.params.hostId))),
  );
  app.get<{ Params: { id: string } }>('/api/v2/tasks/instances/:id', (request, reply) =>
    reply.send(sampleEnvelope(Number(request.params.id))),
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  process.stdout.write(
    `${JSON.stringify({ port: typeof address === 'object' && address?.port })}\n`,
  );
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

/** Spawns a process and waits for a stdout line that `ready` recognises. */
function spawnUntil(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (line: string) => string | undefined,
  logFile?: string,
): Promise<{ child: ChildProcess; value: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env,
      stdio: ['ignore', 'pipe', logFile ? openSync(logFile, 'a') : 'inherit'],
    });
    let buffer = '';
    let found = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (found) return;
      buffer += chunk.toString();
      for (const line of buffer.split('\n')) {
        const value = ready(line);
        if (value !== undefined) {
          found = true;
          // The service logs every request to stdout: keep draining it.
          child.stdout?.resume();
          resolve({ child, value });
          return;
        }
      }
    });
    child.once('exit', (code) => {
      if (!found) reject(new Error(`${args.join(' ')} exited with ${code} before it was ready`));
    });
  });
}

interface Measured {
  readonly name: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  readonly bad: number;
}

async function measure(
  name: string,
  base: string,
  connections: number,
  request: autocannon.Request,
): Promise<Measured> {
  const result = await autocannon({
    url: base,
    connections,
    duration: SECONDS,
    requests: [request],
    headers: { authorization: AUTH },
  });
  const bad = result.non2xx + result.errors + result.timeouts;
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    bad,
  };
}

async function main(): Promise<void> {
  const probe = createPgDriver(DATABASE_URL, { maxConnections: 1 });
  try {
    await probe.query('SELECT 1');
  } catch (error) {
    console.error(
      `bench:http needs PostgreSQL at ${DATABASE_URL} (set DAGOPS_BENCH_DATABASE_URL): ${String(error)}`,
    );
    process.exit(1);
  }
  const schema = `bench_http_${process.pid}`;
  const cached = (process.env['DAGOPS_TASK_CACHE_SIZE'] ?? '10000') !== '0';
  const dataDir = mkdtempSync(join(tmpdir(), 'dagops-bench-http-'));
  const logFile = join(dataDir, 'service.log');
  const children: ChildProcess[] = [];
  try {
    const service = await spawnUntil(
      [MAIN],
      {
        ...process.env,
        PORT: '0',
        DATABASE_URL,
        DAGOPS_DB_SCHEMA: schema,
        DAGOPS_DATA_DIR: dataDir,
        DAGOPS_AGENT: 'simulated',
        DAGOPS_DEMO_HOSTS: String(HOSTS),
        DAGOPS_ADMIN_PASSWORD: PASSWORD,
      },
      (line) =>
        line.includes('"dagops service listening"')
          ? (JSON.parse(line) as { url: string }).url
          : undefined,
      logFile,
    );
    children.push(service.child);
    const reference = await spawnUntil(
      [...process.execArgv, fileURLToPath(import.meta.url), '--reference'],
      process.env,
      (line) =>
        line.startsWith('{"port"')
          ? String((JSON.parse(line) as { port: number }).port)
          : undefined,
    );
    children.push(reference.child);
    const bare = `http://127.0.0.1:${reference.value}`;

    // Warm up: the credential check (scrypt, then cached), connections, JIT.
    const warm = await fetch(`${service.value}/compute/hosts/${HOSTS}/agent/stop`, {
      method: 'POST',
      headers: { authorization: AUTH },
    });
    if (warm.status !== 200)
      throw new Error(`warm-up POST answered ${warm.status}: ${await warm.text()}`);

    let nextHost = 1;
    const createdIds: number[] = [];
    const stopRequest = (): autocannon.Request => ({
      method: 'POST',
      setupRequest: (req) => ({ ...req, path: `/compute/hosts/${nextHost++}/agent/stop` }),
      onResponse: (status, body) => {
        if (status === 200) createdIds.push((JSON.parse(body) as { data: { id: number } }).data.id);
      },
    });
    console.log(
      `bench:http: ${SECONDS} s per case, POST ${POST_CONNECTIONS} / GET ${GET_CONNECTIONS} connections, ` +
        `${HOSTS} simulated hosts, PostgreSQL ${DATABASE_URL.replace(/\/\/[^@]*@/, '//')}`,
    );
    const post = await measure(
      'POST /compute/hosts/{id}/agent/stop',
      service.value,
      POST_CONNECTIONS,
      stopRequest(),
    );
    if (nextHost > HOSTS)
      throw new Error(`ran out of distinct hosts: raise DAGOPS_BENCH_HOSTS above ${HOSTS}`);
    // Let the engine finish the tasks the POSTs created before measuring reads: the GET case
    // measures reads, not reads competing with a backlog of running tasks.
    const drainStarted = Date.now();
    const last = Math.max(...createdIds);
    for (;;) {
      const answer = await fetch(`${service.value}/api/v2/tasks/instances/${last}`, {
        headers: { authorization: AUTH },
      });
      const { data } = (await answer.json()) as { data: { status: string } };
      if (data.status !== 'RUNNING') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const drainMs = Date.now() - drainStarted;
    const created = createdIds.length;
    const ids = createdIds.slice(0, 1000);
    let n = 0;
    const getName = `GET /api/v2/tasks/instances/{id} (${cached ? 'cache' : 'store'})`;
    const get = await measure(getName, service.value, GET_CONNECTIONS, {
      method: 'GET',
      setupRequest: (req) => ({ ...req, path: `/api/v2/tasks/instances/${ids[n++ % ids.length]}` }),
    });
    nextHost = 1;
    const barePost = await measure(
      'bare Fastify POST (same envelope)',
      bare,
      POST_CONNECTIONS,
      stopRequest(),
    );
    n = 0;
    const bareGet = await measure('bare Fastify GET (same envelope)', bare, GET_CONNECTIONS, {
      method: 'GET',
      setupRequest: (req) => ({ ...req, path: `/api/v2/tasks/instances/${ids[n++ % ids.length]}` }),
    });

    const cell = (text: string, width: number) => text.padStart(width);
    const row = (m: Measured, reference?: Measured) =>
      `| ${m.name.padEnd(38)} | ${cell(m.rps.toFixed(0), 6)} | ${cell(m.p50.toFixed(0), 6)} | ` +
      `${cell(m.p99.toFixed(0), 6)} | ${cell(String(m.requests), 8)} | ${cell(String(m.bad), 7)} | ` +
      `${reference ? `${((100 * m.rps) / reference.rps).toFixed(0)}% of bare` : ''}`;
    console.log('');
    console.log(`| ${'case'.padEnd(38)} |  req/s | p50 ms | p99 ms | requests | non-2xx | ratio`);
    console.log(`|${'-'.repeat(40)}|--------|--------|--------|----------|---------|------`);
    for (const line of [row(post, barePost), row(get, bareGet), row(barePost), row(bareGet)]) {
      console.log(line);
    }
    console.log('');
    console.log(
      `the ${created} tasks the POSTs created had all finished ${drainMs} ms after the POST case ended`,
    );
    console.log('');
    const checks = [
      [`POST stop >= 1000 req/s`, post.rps >= 1000],
      [`POST stop p99 < 50 ms`, post.p99 < 50],
      [`GET task >= 5000 req/s`, get.rps >= 5000],
      [`no non-2xx answers`, post.bad === 0 && get.bad === 0],
    ] as const;
    for (const [what, ok] of checks) console.log(`${ok ? 'met    ' : 'MISSED '} ${what}`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((child) =>
        child.exitCode === null
          ? new Promise((resolve) => child.once('exit', resolve))
          : Promise.resolve(),
      ),
    );
    await probe.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await probe.query(`DROP SCHEMA IF EXISTS ${schema}_server CASCADE`);
    await probe.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--reference')) await runReference();
else await main();
