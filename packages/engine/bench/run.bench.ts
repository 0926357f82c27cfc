/**
 * `pnpm bench:run`: no-op handlers, concurrency 16, in-memory store. Each case runs in fresh
 * processes (PERF-NOTES: leftovers of one case slow the next); inside one process dagops,
 * p-graph and a hand-written Kahn loop on p-queue run the same DAG one after the other, in an
 * order rotated from run to run, so that every ratio compares figures from the same process.
 * Peak RSS is measured in processes that run dagops alone. Prints medians and, as the last
 * line, a JSON object with the headline figures.
 *
 * Environment: RUNS (default 5), CASES (comma list, default all).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { integerFromEnv } from '../../../scripts/bench-env.js';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const RUNS = integerFromEnv('RUNS', 5);
const CASES = (
  process.env['CASES'] ?? 'batch:1000,batch:10000,batch:100000,chain:10000,fanout:10000'
).split(',');
const IMPLS = ['dagops', 'pgraph', 'kahn'];

type Timing = { ms: number; firstStartMs?: number; subtasks: number };
type WorkerResult = { results: Record<string, Timing>; maxRssMb: number };

function spawnJson<T>(script: string, args: string[]): T {
  const out = execFileSync(process.execPath, ['--import', 'tsx', here(script), ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.trim().split('\n').pop() as string) as T;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const fmt = (n: number, digits = 1) => n.toFixed(digits);

interface Row {
  subtasks: number;
  dagopsMs: number;
  pgraphMs: number;
  kahnMs: number;
  subtasksPerSec: number;
  throughputVsPGraph: number;
  throughputVsKahn: number;
  firstStartMs: number;
  nsPerSubtask: number;
  peakRssMb: number;
}
const summary: Record<string, Row> = {};
console.log(
  `dagops run benchmark: ${RUNS} runs per case, medians; ratios are same-process medians`,
);
console.log(
  'case                 | subtasks | dagops ms | p-graph ms | kahn ms | dagops/s  | vs p-graph | vs kahn | first start ms | dagops RSS MB',
);
for (const name of CASES) {
  const runs: WorkerResult[] = [];
  for (let r = 0; r < RUNS; r++) {
    const order = [...IMPLS.slice(r % IMPLS.length), ...IMPLS.slice(0, r % IMPLS.length)];
    runs.push(spawnJson<WorkerResult>('./run-worker.ts', [name, order.join(','), '16']));
  }
  const rss = Array.from(
    { length: Math.min(RUNS, 3) },
    () => spawnJson<WorkerResult>('./run-worker.ts', [name, 'dagops', '16']).maxRssMb,
  );
  const ms = (impl: string) => median(runs.map((run) => (run.results[impl] as Timing).ms));
  const ratio = (other: string) =>
    median(
      runs.map((run) => (run.results[other] as Timing).ms / (run.results['dagops'] as Timing).ms),
    );
  const subtasks = (runs[0]?.results['dagops'] as Timing).subtasks;
  const row: Row = {
    subtasks,
    dagopsMs: ms('dagops'),
    pgraphMs: ms('pgraph'),
    kahnMs: ms('kahn'),
    subtasksPerSec: subtasks / (ms('dagops') / 1000),
    throughputVsPGraph: ratio('pgraph'),
    throughputVsKahn: ratio('kahn'),
    firstStartMs: median(runs.map((run) => run.results['dagops']?.firstStartMs ?? Number.NaN)),
    nsPerSubtask: (ms('dagops') * 1e6) / subtasks,
    peakRssMb: median(rss),
  };
  summary[name] = row;
  console.log(
    `${name.padEnd(20)} | ${String(subtasks).padStart(8)} | ${fmt(row.dagopsMs).padStart(9)} | ${fmt(row.pgraphMs).padStart(10)} | ${fmt(row.kahnMs).padStart(7)} | ${fmt(row.subtasksPerSec, 0).padStart(9)} | ${fmt(row.throughputVsPGraph, 2).padStart(9)}x | ${fmt(row.throughputVsKahn, 2).padStart(6)}x | ${fmt(row.firstStartMs).padStart(14)} | ${fmt(row.peakRssMb, 0).padStart(6)}`,
  );
}

const lateness = Array.from(
  { length: Math.max(1, Math.min(RUNS, 3)) },
  () => spawnJson<{ latenessMs: number[] }>('./timeout-worker.ts', []).latenessMs,
).flat();
const timeoutLateMs = { median: median(lateness), max: Math.max(...lateness) };
console.log(
  `timeout lateness under a 10k-host batch: median ${fmt(timeoutLateMs.median)} ms, max ${fmt(timeoutLateMs.max)} ms (target <= 50 ms)`,
);

const at10k = summary['batch:10000'];
const at100k = summary['batch:100000'];
const growth = at10k && at100k ? at100k.nsPerSubtask / at10k.nsPerSubtask : Number.NaN;
if (at10k) {
  console.log(
    `targets at 10k hosts: vs p-graph ${fmt(at10k.throughputVsPGraph, 2)}x (>= 1.5), vs kahn ${fmt(at10k.throughputVsKahn, 2)}x (>= 0.8)`,
  );
}
if (at100k) {
  console.log(
    `per-subtask cost 10k -> 100k: ${fmt(growth, 2)}x (<= 1.3); 100k RSS ${fmt(at100k.peakRssMb, 0)} MB (< 400)`,
  );
}
console.log(
  JSON.stringify({
    bench: 'run',
    runs: RUNS,
    cases: summary,
    perSubtaskGrowth10kTo100k: growth,
    timeoutLateMs,
  }),
);
