/**
 * One process of the run benchmark: runs one case through each implementation named on the
 * command line, in that order, and prints one JSON line of timings.
 *
 * Usage: tsx bench/run-worker.ts <case> <impl,impl,...> <concurrency>
 */
import PQueue from 'p-queue';
import { PGraph, type DependencyList, type PGraphNodeRecord } from 'p-graph';
import {
  Engine,
  createCounterIdAllocator,
  expandTemplate,
  validateTemplate,
  type SubtaskRecord,
} from '@dagops/engine';
import { caseByName, noopHandlers, type RunCase } from './run-shapes.js';

const [caseName = 'batch:1000', implList = 'dagops', concurrencyArg = '16'] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const benchCase = caseByName(caseName, concurrency);

/** The case's DAG as plain subtasks, for the comparison implementations (not timed). */
function plainDag(c: RunCase): SubtaskRecord[] {
  return expandTemplate(validateTemplate(c.template), c.args, {
    ids: createCounterIdAllocator(0),
    creator: 'bench',
    executor: 'bench',
    now: 0,
  }).subtasks;
}

const noop = async (): Promise<void> => {};

async function runDagops(c: RunCase): Promise<Record<string, number>> {
  const engine = new Engine({ handlers: noopHandlers(), concurrency, executor: 'bench' });
  const start = performance.now();
  let firstStart = Number.NaN;
  engine.once('subtask.started', () => {
    firstStart = performance.now() - start;
  });
  const finished = new Promise<string>((resolve) =>
    engine.once('task.finished', ({ status }) => resolve(status)),
  );
  // Keep the count, not the submitted JSON: holding it would inflate the run's memory.
  const subtasks = (await engine.submit(c.template, c.args, { creator: 'bench' })).subtasks.length;
  const submitted = performance.now() - start;
  const status = await finished;
  const ms = performance.now() - start;
  if (status !== 'SUCCESSFUL') throw new Error(`task ended ${status}`);
  await engine.close();
  return { ms, firstStartMs: firstStart, submitMs: submitted, subtasks };
}

async function runPGraph(dag: readonly SubtaskRecord[]): Promise<Record<string, number>> {
  const start = performance.now();
  const nodes: PGraphNodeRecord = {};
  const deps: DependencyList = [];
  for (const s of dag) {
    nodes[s.id] = { run: noop };
    for (const d of s.downstreams) deps.push([String(s.id), String(d)]);
  }
  await new PGraph(nodes, deps).run({ concurrency });
  return { ms: performance.now() - start, subtasks: dag.length };
}

/**
 * The minimal hand-written loop: in-degree counters built from the same edge list p-graph is
 * given (building them is timed, as expansion is for dagops and graph building for p-graph),
 * dispatching every unblocked node through p-queue.
 */
async function runKahn(dag: readonly SubtaskRecord[]): Promise<Record<string, number>> {
  const edges: [number, number][] = [];
  const base = dag[0]?.id ?? 0;
  for (const s of dag) for (const d of s.downstreams) edges.push([s.id - base, d - base]);
  const start = performance.now();
  const count = dag.length;
  const remaining = new Int32Array(count);
  const downstreams: number[][] = Array.from({ length: count }, () => []);
  for (const [from, to] of edges) {
    (downstreams[from] as number[]).push(to);
    remaining[to] = (remaining[to] as number) + 1;
  }
  const queue = new PQueue({ concurrency });
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const run = (index: number): void => {
    void queue.add(async () => {
      await noop();
      done++;
      for (const d of downstreams[index] as number[]) {
        if (--(remaining[d] as number) === 0) run(d);
      }
      if (done === count) finish();
    });
  };
  for (let i = 0; i < count; i++) if (remaining[i] === 0) run(i);
  await finished;
  return { ms: performance.now() - start, subtasks: count };
}

async function run(impl: string, c: RunCase, dag: readonly SubtaskRecord[]) {
  if (impl === 'dagops') return runDagops(c);
  if (impl === 'pgraph') return runPGraph(dag);
  if (impl === 'kahn') return runKahn(dag);
  throw new Error(`unknown implementation ${impl}`);
}

const impls = implList.split(',');
// Warm every implementation up on a small DAG of the same kind, so that the measured run
// compares steady-state code rather than JIT warm-up.
const warmCase = caseByName(`${caseName.split(':')[0] ?? 'batch'}:2000`, concurrency);
const warmDag = plainDag(warmCase);
for (const impl of impls) for (let i = 0; i < 3; i++) await run(impl, warmCase, warmDag);

// Each implementation runs `repeats` times, interleaved (A B C A B C …), and reports its median
// run: one slow run (a major GC, the machine's other load) does not decide the process's ratio.
// No forced full GC between runs: it makes V8 shrink the young generation, which then costs
// the most allocating implementation a burst of scavenges that a running service never sees.
// A process that runs dagops alone measures its peak RSS: one cold run, nothing else. A
// comparing process first runs every implementation once at full size (unmeasured), so that
// heap growth and JIT tiers are behind all of them, then measures steady-state runs.
const rssOnly = impls.length === 1;
const big = (benchCase.args.listMap?.['host_ids']?.length ?? 0) >= 100_000;
const repeats = rssOnly || big ? 1 : 3;
const runs = new Map<string, Record<string, number>[]>(impls.map((impl) => [impl, []]));
const dag = impls.includes('pgraph') || impls.includes('kahn') ? plainDag(benchCase) : [];
if (!rssOnly) for (const impl of impls) await run(impl, benchCase, dag);
for (let r = 0; r < repeats; r++) {
  for (const impl of impls) {
    runs.get(impl)?.push(await run(impl, benchCase, dag));
  }
}
const results: Record<string, Record<string, number>> = {};
for (const [impl, list] of runs) {
  list.sort((a, b) => (a['ms'] as number) - (b['ms'] as number));
  results[impl] = list[list.length >> 1] as Record<string, number>;
}
const maxRssMb = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ case: caseName, results, maxRssMb }));
