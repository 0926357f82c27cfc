/**
 * Expansion benchmark: validate + expand the batch-stop template over 1k, 10k and 100k hosts,
 * each run in a fresh process (PERF-NOTES: leftover state from one case skews the next),
 * against a hand-written baseline measured in the same process.
 *
 * Usage: pnpm bench:expand [--runs N] [--hosts 1000,10000,100000]
 * (or BENCH_RUNS / BENCH_HOSTS). Prints a table, then the headline figures as one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { countSetting } from '../../../scripts/bench-env.js';
import type { WorkerResult } from './expand-worker.js';

const TARGET_TOTAL_MS = 1_000;
const TARGET_RSS_MB = 300;
const TARGET_GROWTH = 1.3;

const { values } = parseArgs({
  // pnpm passes a `--` separator through to the script.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: { runs: { type: 'string' }, hosts: { type: 'string' } },
});

const runs = countSetting('runs', values.runs ?? process.env['BENCH_RUNS'] ?? '5');
const hostCases = (values.hosts ?? process.env['BENCH_HOSTS'] ?? '1000,10000,100000')
  .split(',')
  .map((raw) => countSetting('hosts', raw.trim()));

const worker = fileURLToPath(new URL('./expand-worker.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');

function runWorker(hosts: number, order: WorkerResult['order']): WorkerResult {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', tsxLoader, worker, String(hosts), order],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (child.status !== 0) {
    throw new Error(`worker for ${hosts} hosts exited with ${child.status ?? child.signal}`);
  }
  const last = child.stdout.trim().split('\n').at(-1) ?? '';
  const result = JSON.parse(last) as WorkerResult;
  if (!result.sameShape) throw new Error(`baseline and expansion differ at ${hosts} hosts`);
  return result;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

interface CaseSummary {
  readonly hosts: number;
  readonly subtasks: number;
  readonly totalMs: number;
  readonly validateMs: number;
  readonly expandMs: number;
  readonly coldValidateMs: number;
  readonly nsPerSubtask: number;
  readonly peakRssMb: number;
  readonly warmMs: number;
  readonly baselineMs: number;
  /** Median of the per-run ratios warmMs / baselineMs (paired in one process). */
  readonly ratioVsBaseline: number;
  readonly retainedBytesPerSubtask: number;
  readonly baselineRetainedBytesPerSubtask: number;
}

function summarize(results: readonly WorkerResult[]): CaseSummary {
  const first = results[0] as WorkerResult;
  const of = (pick: (r: WorkerResult) => number) => median(results.map(pick));
  const totalMs = of((r) => r.totalMs);
  return {
    hosts: first.hosts,
    subtasks: first.subtasks,
    totalMs,
    validateMs: of((r) => r.validateMs),
    expandMs: of((r) => r.expandMs),
    coldValidateMs: of((r) => r.coldValidateMs),
    nsPerSubtask: (totalMs * 1e6) / first.subtasks,
    peakRssMb: of((r) => r.maxRssKb) / 1024,
    warmMs: of((r) => r.warmMs),
    baselineMs: of((r) => r.baselineMs),
    ratioVsBaseline: of((r) => r.warmMs / r.baselineMs),
    retainedBytesPerSubtask: of((r) => r.retainedBytes) / first.subtasks,
    baselineRetainedBytesPerSubtask: of((r) => r.baselineRetainedBytes) / first.subtasks,
  };
}

const fixed = (value: number, digits: number) => value.toFixed(digits);

function printTable(summaries: readonly CaseSummary[]): void {
  const header = [
    'hosts',
    'subtasks',
    'validate+expand ms',
    'ns/subtask',
    'peak RSS MB',
    'warm ms',
    'baseline ms',
    'ratio vs baseline',
    'heap B/subtask (baseline)',
  ];
  const rows = summaries.map((s) => [
    s.hosts.toLocaleString('en-US'),
    s.subtasks.toLocaleString('en-US'),
    `${fixed(s.totalMs, 1)} (${fixed(s.validateMs, 2)} + ${fixed(s.expandMs, 1)})`,
    fixed(s.nsPerSubtask, 0),
    fixed(s.peakRssMb, 1),
    fixed(s.warmMs, 1),
    fixed(s.baselineMs, 1),
    `${fixed(s.ratioVsBaseline, 2)}x`,
    `${fixed(s.retainedBytesPerSubtask, 0)} (${fixed(s.baselineRetainedBytesPerSubtask, 0)})`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

const [load] = loadavg();
console.log(
  `expand benchmark: batch stop, ${runs} fresh process(es) per case, medians; ` +
    `node ${process.version}, ${availableParallelism()} CPU(s), load average ${fixed(load ?? 0, 2)}`,
);
if ((load ?? 0) > availableParallelism() / 2) {
  console.log('warning: the machine is busy; expect noisy, slower figures');
}
const results = new Map<number, WorkerResult[]>(hostCases.map((hosts) => [hosts, []]));
// Round-robin over the cases, so that a slow phase of the machine hits every case alike.
for (let run = 0; run < runs; run++) {
  for (const hosts of hostCases) {
    const result = runWorker(hosts, run % 2 === 0 ? 'ours-first' : 'baseline-first');
    results.get(hosts)?.push(result);
    console.error(
      `  run ${run + 1}/${runs} ${hosts} hosts: ${fixed(result.totalMs, 1)} ms, ` +
        `${fixed(result.maxRssKb / 1024, 1)} MB; warm ${fixed(result.warmMs, 1)} ms, ` +
        `baseline ${fixed(result.baselineMs, 1)} ms`,
    );
  }
}
const summaries = hostCases.map((hosts) => summarize(results.get(hosts) ?? []));
console.log('');
printTable(summaries);
console.log(
  [
    'validate+expand, ns/subtask: the first full-size call of a fresh process (after a 100-host',
    '  warm-up; the very first validateTemplate of a process also compiles the JSON Schema:',
    `  ${summaries.map((s) => fixed(s.coldValidateMs, 1)).join(' / ')} ms once).`,
    'peak RSS: the whole worker process right after that call (node + tsx included).',
    'warm ms vs baseline ms: both again, after each had a full-size run, alternating which goes',
    '  first; ratio = median of the per-process ratios. heap B/subtask: retained after a full GC.',
  ].join('\n'),
);

const at = (hosts: number) => summaries.find((s) => s.hosts === hosts);
const small = at(10_000);
const large = at(100_000);
const growth = small && large ? large.nsPerSubtask / small.nsPerSubtask : undefined;
// The same growth measured on a grown heap, for us and for the baseline: when both grow alike,
// the growth is the garbage collector's (a larger live heap), not the expansion's.
const perSubtaskGrowth = (pick: (s: CaseSummary) => number) =>
  small && large ? pick(large) / large.subtasks / (pick(small) / small.subtasks) : undefined;
const warmGrowth = perSubtaskGrowth((s) => s.warmMs);
const baselineGrowth = perSubtaskGrowth((s) => s.baselineMs);
// null: the case the target is about was not run.
const targets = {
  total100kUnder1s: large ? large.totalMs < TARGET_TOTAL_MS : null,
  rss100kUnder300MB: large ? large.peakRssMb < TARGET_RSS_MB : null,
  growth10kTo100kAtMost1_3: growth === undefined ? null : growth <= TARGET_GROWTH,
};
const verdict = (pass: boolean | null) =>
  pass === null ? 'n/a (case not run)' : pass ? 'PASS' : 'FAIL';
console.log('');
console.log(
  `target 100k hosts validate+expand < ${TARGET_TOTAL_MS} ms: ` +
    `${verdict(targets.total100kUnder1s)}${large ? ` (${fixed(large.totalMs, 1)} ms)` : ''}`,
);
console.log(
  `target 100k hosts peak RSS < ${TARGET_RSS_MB} MB: ` +
    `${verdict(targets.rss100kUnder300MB)}${large ? ` (${fixed(large.peakRssMb, 1)} MB)` : ''}`,
);
console.log(
  `target ns/subtask growth 10k -> 100k <= ${TARGET_GROWTH}x: ` +
    `${verdict(targets.growth10kTo100kAtMost1_3)}` +
    `${growth === undefined ? '' : ` (${fixed(growth, 2)}x)`}`,
);
console.log(
  `  on a grown heap: ${warmGrowth === undefined ? 'n/a' : `${fixed(warmGrowth, 2)}x`}, ` +
    `baseline ${baselineGrowth === undefined ? 'n/a' : `${fixed(baselineGrowth, 2)}x`}`,
);

const round = (value: number, digits = 2) => Number(value.toFixed(digits));
console.log(
  JSON.stringify({
    bench: 'expand',
    node: process.version,
    runs,
    cases: summaries.map((s) => ({
      hosts: s.hosts,
      subtasks: s.subtasks,
      totalMs: round(s.totalMs),
      expandMs: round(s.expandMs),
      validateMs: round(s.validateMs, 3),
      coldValidateMs: round(s.coldValidateMs),
      nsPerSubtask: round(s.nsPerSubtask, 0),
      peakRssMb: round(s.peakRssMb, 1),
      warmMs: round(s.warmMs),
      baselineMs: round(s.baselineMs),
      ratioVsBaseline: round(s.ratioVsBaseline),
      retainedBytesPerSubtask: round(s.retainedBytesPerSubtask, 0),
      baselineRetainedBytesPerSubtask: round(s.baselineRetainedBytesPerSubtask, 0),
    })),
    loadAverage: round(load ?? 0),
    growth10kTo100k: growth === undefined ? null : round(growth),
    warmGrowth10kTo100k: warmGrowth === undefined ? null : round(warmGrowth),
    baselineGrowth10kTo100k: baselineGrowth === undefined ? null : round(baselineGrowth),
    targets,
    pass: Object.values(targets).every((pass) => pass !== false),
  }),
);
