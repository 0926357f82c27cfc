/**
 * One measured run of the expansion benchmark, in a fresh process started by
 * `expand.bench.ts` (with `--expose-gc` and the tsx loader). Prints one JSON line.
 *
 * Usage: node --expose-gc --import tsx bench/expand-worker.ts <hostCount> [ours-first|baseline-first]
 */
import { performance } from 'node:perf_hooks';
import { expandTemplate } from '../src/expand-template.js';
import { createCounterIdAllocator } from '../src/id-allocator.js';
import { validateTemplate } from '../src/validate-template.js';
import { batchStopTemplate, expandBaseline, hostIds, shapeDigest } from './batch-stop.js';

/** What one run reports; times in milliseconds, memory in bytes unless named KB. */
export interface WorkerResult {
  readonly hosts: number;
  readonly subtasks: number;
  /** First `validateTemplate` of the process, during warm-up: includes compiling the schema. */
  readonly coldValidateMs: number;
  /** The first full-size validate + expand of the process (the heap still has to grow). */
  readonly validateMs: number;
  readonly expandMs: number;
  /** validateMs + expandMs. */
  readonly totalMs: number;
  /** Peak RSS of the process right after that first expansion (before the baseline runs). */
  readonly maxRssKb: number;
  /** Heap still used by the expanded task after a full GC. */
  readonly retainedBytes: number;
  /** validate + expand again, once both sides have had a full-size run (heap grown). */
  readonly warmMs: number;
  /** The baseline, measured like `warmMs`. */
  readonly baselineMs: number;
  readonly baselineRetainedBytes: number;
  /** Which of the two warm measurements ran first (the parent alternates it). */
  readonly order: 'ours-first' | 'baseline-first';
  /** Whether the baseline built the same subtasks and edges as the expansion. */
  readonly sameShape: boolean;
}

function exposedGc(): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run the worker with --expose-gc');
  return gc;
}
const gc = exposedGc();

const hostCount = Number(process.argv[2]);
const order = process.argv[3] === 'baseline-first' ? 'baseline-first' : 'ours-first';
if (!Number.isSafeInteger(hostCount) || hostCount < 1) {
  throw new Error(`hostCount must be a positive integer, got ${JSON.stringify(process.argv[2])}`);
}

const expandOptions = () => ({
  ids: createCounterIdAllocator(30_000),
  creator: 'admin',
  executor: '127.0.0.1',
  now: Date.now(),
});

// The input exists before the request is handled: not part of the measurement.
const args = { listMap: { host_ids: hostIds(hostCount) } };

// Warm-up, once each, on a tiny input: the first calls pay for lazy compilation and Ajv's
// schema compilation; a tiny input leaves the heap and the RSS as they were.
const WARM_UP_HOSTS = 100;
const coldStart = performance.now();
const warmUp = validateTemplate(batchStopTemplate);
const coldValidateMs = performance.now() - coldStart;
void expandTemplate(warmUp, { listMap: { host_ids: hostIds(WARM_UP_HOSTS) } }, expandOptions())
  .subtasks;
expandBaseline(WARM_UP_HOSTS, 1, 30_000);

const heapUsed = () => process.memoryUsage().heapUsed;

// Each measurement lives in its own function: when it returns, nothing (not even a stale
// interpreter register) keeps its result alive, so the next one starts from a clean heap.
function measureExpansion() {
  gc();
  const heapBefore = heapUsed();
  const options = expandOptions();
  const t0 = performance.now();
  const validated = validateTemplate(batchStopTemplate);
  const t1 = performance.now();
  const expanded = expandTemplate(validated, args, options);
  // The records as well: expandTemplate lays the subtasks out and builds them when first read.
  const { subtasks } = expanded;
  const t2 = performance.now();
  const maxRssKb = process.resourceUsage().maxRSS;
  gc();
  return {
    validateMs: t1 - t0,
    expandMs: t2 - t1,
    totalMs: t2 - t0,
    maxRssKb,
    retainedBytes: heapUsed() - heapBefore,
    subtasks: subtasks.length,
    digest: shapeDigest(subtasks),
    taskId: expanded.task.id,
    base: subtasks[0]?.id ?? 0,
  };
}

function measureBaseline(taskId: number, base: number) {
  gc();
  const heapBefore = heapUsed();
  const t0 = performance.now();
  const subtasks = expandBaseline(hostCount, taskId, base);
  const t1 = performance.now();
  gc();
  return {
    baselineMs: t1 - t0,
    baselineRetainedBytes: heapUsed() - heapBefore,
    subtasks: subtasks.length,
    digest: shapeDigest(subtasks),
  };
}

// The first full-size run of a process pays for growing the heap (at 10k hosts that is about
// half the time): it gives the headline figures and the peak RSS. Then the baseline gets its
// own full-size run, and only then are the two compared, in the order the parent chose.
const first = measureExpansion();
measureBaseline(first.taskId, first.base);
let warm: ReturnType<typeof measureExpansion>;
let floor: ReturnType<typeof measureBaseline>;
if (order === 'ours-first') {
  warm = measureExpansion();
  floor = measureBaseline(first.taskId, first.base);
} else {
  floor = measureBaseline(first.taskId, first.base);
  warm = measureExpansion();
}

const result: WorkerResult = {
  hosts: hostCount,
  subtasks: first.subtasks,
  coldValidateMs,
  validateMs: first.validateMs,
  expandMs: first.expandMs,
  totalMs: first.totalMs,
  maxRssKb: first.maxRssKb,
  retainedBytes: first.retainedBytes,
  warmMs: warm.totalMs,
  baselineMs: floor.baselineMs,
  baselineRetainedBytes: floor.baselineRetainedBytes,
  order,
  sameShape:
    floor.subtasks === first.subtasks &&
    floor.digest === first.digest &&
    warm.digest === first.digest,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
