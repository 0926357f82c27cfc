/**
 * `pnpm bench:store`: no-op handlers, batch stop over 1,000 and 10,000 hosts (3,002 and 30,002
 * subtasks), on PGlite (one engine) and on PostgreSQL with 1, 2 and 3 engine processes. Each
 * run uses fresh processes and a fresh schema (or PGlite directory); figures are medians of
 * RUNS runs. Prints subtasks/s, submit → first subtask start, and end-to-end time (submit → the
 * commit of the task's last transition, as the engine that made it learns; `waitForTask` then
 * reads the whole task, printed apart as "then read"), the engines' CPU and the machine's busy
 * cores (`/proc/stat`, every process of the machine: the database's included); then
 * graphile-worker processing the same number of no-op jobs on the same database with the same
 * concurrency, as the reference, and the ratio. The last line is a JSON object.
 *
 * A case ending in `:apart` gives every engine a task of its own (each submits a batch stop of
 * <hosts>; an engine may still claim from the other tasks, as claims go round robin across
 * tasks, but no task row is the one hot row of every engine): close to the ceiling of this
 * machine for that many engines, against which the shared-task case can be read.
 *
 * A case ending in `:head<n>` (say `pg:1:10000:head0`) opens the stores with the option
 * `headSubtasks: n` instead of its default (128): a task of more than 2n subtasks is saved head
 * first (migrations 005, 006); 0 saves it in one transaction, as before session 6. A case
 * ending in `:notice<n>` sets `workNoticeMs: n` (default 25; 0 notifies on every step, as
 * before migration 007). A case ending in `:warm` warms each engine up with a task of the
 * measured size instead of a 2-host one: an engine that has run such a task before (its heap
 * grown, its large paths compiled), where the default measures a process's first. `:warm<n>`
 * warms up with a task of n hosts (`:warm1000`: the hot paths compiled, little more in the
 * schema than the default leaves).
 *
 * Environment: RUNS (default 3), CASES (comma list of
 * `<pglite|pg>:<engines>:<hosts>[:apart][:head<n>][:notice<n>][:warm[<n>]]`),
 * CONCURRENCY (per engine, default 128), TASK_CONCURRENCY (the task's own limit, default
 * 3 × CONCURRENCY), REFERENCE (0 skips graphile-worker), DAGOPS_TEST_DATABASE_URL.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { integerFromEnv } from '../../../scripts/bench-env.js';

const URL_ = process.env['DAGOPS_TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUNS = integerFromEnv('RUNS', 3);
const CONCURRENCY = integerFromEnv('CONCURRENCY', 128);
/**
 * The task's own limit. READY subtasks count against it with RUNNING ones, so three engines
 * of CONCURRENCY lanes leave no READY subtask between their steps; 8 × CONCURRENCY measured no
 * faster in session 14 (the package README), so the default stays.
 */
const TASK_CONCURRENCY = integerFromEnv('TASK_CONCURRENCY', 3 * CONCURRENCY);
const CASES = (
  process.env['CASES'] ??
  'pglite:1:1000,pglite:1:10000,pg:1:1000,pg:1:1000:head0,pg:2:1000,pg:3:1000,pg:1:10000,pg:1:10000:head0,pg:2:10000,pg:3:10000,pg:2:10000:apart'
).split(',');
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

interface WorkerResult {
  status: string;
  submitAt?: number;
  firstStartAt?: number;
  /** [taskId, at]: the tasks this engine finished after `go`, when its step told it so. */
  ended: [number, number][];
  finishedAt: number;
  executions: number;
  cpuMs: number;
}

interface Run {
  subtasksPerSec: number;
  firstStartMs: number;
  endToEndMs: number;
  shares: number[];
  /** CPU time of the engine processes from `go` to the end, ms. */
  engineCpuMs: number;
  /** From the task's end to the last `waitForTask` answer (a read of the whole task), ms. */
  readAfterEndMs: number;
  /** Cores of this machine busy from `go` to the last answer (`/proc/stat`), or NaN. */
  machineCores: number;
}

/**
 * Busy and total time of all cores from `/proc/stat` (Linux), and how many cores it counts
 * (its `cpuN` lines); undefined elsewhere.
 */
async function cpuTimes(): Promise<{ busy: number; total: number; cores: number } | undefined> {
  const lines = await readFile('/proc/stat', 'utf8').then(
    (text) => text.split('\n'),
    () => [],
  );
  const line = lines[0];
  if (!line?.startsWith('cpu ')) return undefined;
  // user nice system idle iowait irq softirq steal ...: idle and iowait are the idle ones.
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  const cores = lines.filter((l) => /^cpu\d+ /.test(l)).length;
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total, cores };
}

function spawnTsx(script: string, args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', here(script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

async function runCase(
  kind: string,
  engines: number,
  hosts: number,
  {
    apart,
    head,
    notice,
    warmHosts,
  }: {
    apart: boolean;
    head: number | undefined;
    notice: number | undefined;
    /** Hosts of each engine's warm-up task. */
    warmHosts: number;
  },
): Promise<Run> {
  const schema = `dagops_bench_${randomBytes(4).toString('hex')}`;
  const dir = kind === 'pglite' ? await mkdtemp(join(tmpdir(), 'dagops-bench-')) : undefined;
  const where = dir ? `pglite:${dir}` : URL_;
  const workers = Array.from({ length: engines }, (_, i) =>
    spawnTsx('./store-worker.ts', [
      where,
      schema,
      i === 0 || apart ? 'submit' : 'join',
      String(hosts),
      String(CONCURRENCY),
      String(TASK_CONCURRENCY),
      head === undefined ? '' : String(head),
      notice === undefined ? '' : String(notice),
      String(warmHosts),
    ]),
  );
  const lines = workers.map((child) => createInterface({ input: child.stdout }));
  const results: Promise<WorkerResult>[] = [];
  const ready: Promise<void>[] = [];
  let taskId: (id: string) => void = () => {};
  const task = new Promise<string>((resolve) => (taskId = resolve));
  lines.forEach((rl, i) => {
    ready.push(new Promise((resolve) => rl.on('line', (l) => l === 'ready' && resolve())));
    results.push(
      new Promise((resolve, reject) => {
        rl.on('line', (line) => {
          if (line.startsWith('task ')) taskId(line.slice(5));
          if (line.startsWith('{')) resolve(JSON.parse(line) as WorkerResult);
        });
        workers[i]?.on('exit', (code) => code !== 0 && reject(new Error(`worker exit ${code}`)));
      }),
    );
  });
  // Engines that join one at a time, so that migrations and LISTEN are in place for all.
  await Promise.all(ready);
  const cpuAtGo = await cpuTimes();
  if (apart) for (const child of workers) child.stdin.write('go\n');
  else {
    workers[0]?.stdin.write('go\n');
    const id = await task;
    for (const child of workers.slice(1)) child.stdin.write(`go ${id}\n`);
  }
  const done = await Promise.all(results);
  const cpuAtEnd = await cpuTimes();
  for (const child of workers) child.stdin.end();
  if (dir) await rm(dir, { recursive: true, force: true });
  else {
    const client = new pg.Client({ connectionString: URL_ });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
  const submitAt = Math.min(...done.map((r) => r.submitAt ?? Infinity));
  const firstStart = Math.min(...done.map((r) => r.firstStartAt ?? Infinity));
  if (done.some((r) => r.status !== 'SUCCESSFUL')) throw new Error('a task did not succeed');
  // The run ends when the last measured task's last transition is committed, as the engine that
  // made it learns; waitForTask then reads the whole task, which bench:read measures.
  const ended = done.flatMap((r) => r.ended);
  const tasks = apart ? engines : 1;
  if (new Set(ended.map(([id]) => id)).size !== tasks || ended.length !== tasks) {
    throw new Error(
      `expected ${tasks} task(s) ended once each, engines told ${JSON.stringify(ended)}`,
    );
  }
  const end = Math.max(...ended.map(([, at]) => at));
  const subtasks = tasks * (3 * hosts + 2);
  const endToEndMs = end - submitAt;
  return {
    subtasksPerSec: subtasks / (endToEndMs / 1000),
    firstStartMs: firstStart - submitAt,
    endToEndMs,
    shares: done.map((r) => r.executions),
    engineCpuMs: done.reduce((sum, r) => sum + r.cpuMs, 0),
    readAfterEndMs: Math.max(...done.map((r) => r.finishedAt)) - end,
    machineCores:
      cpuAtGo && cpuAtEnd
        ? (cpuAtEnd.cores * (cpuAtEnd.busy - cpuAtGo.busy)) / (cpuAtEnd.total - cpuAtGo.total)
        : NaN,
  };
}

async function reference(jobs: number): Promise<number> {
  const schema = `gw_bench_${randomBytes(4).toString('hex')}`;
  const child = spawnTsx('./reference-worker.ts', [
    URL_,
    schema,
    String(jobs),
    String(CONCURRENCY),
  ]);
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise<string>((resolve) =>
    rl.on('line', (l) => l.startsWith('{') && resolve(l)),
  );
  const { ms } = JSON.parse(line) as { ms: number };
  return jobs / (ms / 1000);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

console.log(
  `dagops store benchmark: batch stop, no-op handlers, engine concurrency ${CONCURRENCY}, task concurrency ${TASK_CONCURRENCY}; medians of ${RUNS} runs (fresh processes, fresh schema)`,
);
const summary: Record<
  string,
  {
    subtasksPerSec: number;
    firstStartMs: number;
    endToEndMs: number;
    engineCpuMs: number;
    readAfterEndMs: number;
    machineCores: number;
  }
> = {};
for (const name of CASES) {
  const [kind = 'pg', enginesArg = '1', hostsArg = '1000', ...modes] = name.split(':');
  let apart = false;
  let head: number | undefined;
  let notice: number | undefined;
  let warmHosts = 2;
  for (const mode of modes) {
    if (mode === 'apart') apart = true;
    else if (mode === 'warm') warmHosts = Number(hostsArg);
    else if (/^warm[1-9][0-9]*$/.test(mode)) warmHosts = Number(mode.slice(4));
    else if (/^head(0|[1-9][0-9]*)$/.test(mode)) head = Number(mode.slice(4));
    else if (/^notice(0|[1-9][0-9]*)$/.test(mode)) notice = Number(mode.slice(6));
    else
      throw new Error(
        `CASES: case ${JSON.stringify(name)} has the mode ${JSON.stringify(mode)}; modes are "apart", "warm", "warm<n>" (n ≥ 1), "head<n>" and "notice<n>" (n an integer, 0 or more)`,
      );
  }
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++)
    runs.push(
      await runCase(kind, Number(enginesArg), Number(hostsArg), { apart, head, notice, warmHosts }),
    );
  const row = {
    subtasksPerSec: median(runs.map((r) => r.subtasksPerSec)),
    firstStartMs: median(runs.map((r) => r.firstStartMs)),
    endToEndMs: median(runs.map((r) => r.endToEndMs)),
    engineCpuMs: median(runs.map((r) => r.engineCpuMs)),
    readAfterEndMs: median(runs.map((r) => r.readAfterEndMs)),
    machineCores: median(runs.map((r) => r.machineCores)),
  };
  summary[name] = row;
  const shares = runs.at(-1)?.shares.join('/') ?? '';
  console.log(
    `${name.padEnd(20)} ${fmt(row.subtasksPerSec).padStart(7)} subtasks/s  first start ${row.firstStartMs.toFixed(1).padStart(6)} ms  end-to-end ${fmt(row.endToEndMs).padStart(6)} ms  engine CPU ${fmt(row.engineCpuMs).padStart(6)} ms  machine ${row.machineCores.toFixed(2)} cores  then read ${fmt(row.readAfterEndMs)} ms  (executions per engine, last run: ${shares})`,
  );
}

const referenceRows: Record<string, number> = {};
for (const hosts of process.env['REFERENCE'] === '0' ? [] : [1000, 10000]) {
  const jobs = 3 * hosts + 2;
  const rates: number[] = [];
  for (let i = 0; i < RUNS; i++) rates.push(await reference(jobs));
  referenceRows[String(jobs)] = median(rates);
  console.log(
    `graphile-worker ${String(jobs).padStart(6)} no-op jobs: ${fmt(median(rates))} jobs/s (one process, concurrency ${CONCURRENCY})`,
  );
}
const pg1k = summary['pg:1:1000']?.subtasksPerSec;
const pg10k = summary['pg:1:10000']?.subtasksPerSec;
const ratio = {
  '1000': pg1k === undefined ? null : pg1k / (referenceRows['3002'] ?? NaN),
  '10000': pg10k === undefined ? null : pg10k / (referenceRows['30002'] ?? NaN),
};
const scaling = {
  '1000': (summary['pg:2:1000']?.subtasksPerSec ?? NaN) / (pg1k ?? NaN),
  '10000': (summary['pg:2:10000']?.subtasksPerSec ?? NaN) / (pg10k ?? NaN),
  /** Two engines with a task each: close to what this machine allows at most. */
  '10000apart': (summary['pg:2:10000:apart']?.subtasksPerSec ?? NaN) / (pg10k ?? NaN),
};
console.log(
  `dagops on PostgreSQL (1 engine) / graphile-worker: ${ratio['1000']?.toFixed(2)} (1k hosts), ${ratio['10000']?.toFixed(2)} (10k hosts); 2 engines / 1 engine: ${scaling['1000'].toFixed(2)}, ${scaling['10000'].toFixed(2)}; 2 engines on a task each / 1 engine: ${scaling['10000apart'].toFixed(2)}`,
);
/** Submit → first start, head first (the default) over one transaction (head0). */
const firstStartHeadFirst = {
  '1000':
    (summary['pg:1:1000']?.firstStartMs ?? NaN) / (summary['pg:1:1000:head0']?.firstStartMs ?? NaN),
  '10000':
    (summary['pg:1:10000']?.firstStartMs ?? NaN) /
    (summary['pg:1:10000:head0']?.firstStartMs ?? NaN),
};
console.log(
  `submit → first start, saved head first / in one transaction (1 engine): ${firstStartHeadFirst['1000'].toFixed(2)} (1k hosts), ${firstStartHeadFirst['10000'].toFixed(2)} (10k hosts)`,
);
console.log(
  JSON.stringify({
    runs: RUNS,
    concurrency: CONCURRENCY,
    cases: summary,
    graphileWorkerJobsPerSec: referenceRows,
    ratioToGraphileWorker: ratio,
    twoEnginesOverOne: scaling,
    firstStartHeadFirstOverOneTransaction: firstStartHeadFirst,
  }),
);
