/**
 * Batch stop OCP agent over N simulated hosts: submits the shipped template with the shipped
 * handlers to a real Engine, prints progress from the engine's events as subtasks finish, then
 * the final task JSON (subtasks summarised), the fleet's state and the task's DAG picture.
 * With a fault rate, failures show up, the faults are cleared and the task is retried.
 *
 * Usage: node dist/main.js [hostCount=20] [--fault-rate=0.05] [--seed=1]
 */
import { Engine, HandlerRegistry, renderMermaid, type TaskJson } from '@dagops/engine';
import {
  batchStopAgentArguments,
  batchStopAgentTemplate,
  registerAgentHandlers,
  SimulatedAgent,
} from '@dagops/definitions';

const PICTURE_LIMIT = 50;

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

const positional = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const flags = new Map(
  process.argv
    .slice(2)
    .filter((arg) => arg.startsWith('--'))
    .map((arg) => arg.slice(2).split('=') as [string, string | undefined]),
);
const hostCount = Number(positional[0] ?? 20);
if (!Number.isSafeInteger(hostCount) || hostCount < 1) {
  fail(`hostCount must be a positive integer, got ${JSON.stringify(positional[0])}`);
}
const faultRate = Number(flags.get('fault-rate') ?? 0);
if (!(faultRate >= 0 && faultRate <= 1)) {
  fail(`--fault-rate must be within [0, 1], got ${JSON.stringify(flags.get('fault-rate'))}`);
}
const seed = Number(flags.get('seed') ?? 1);

const hostIds = Array.from({ length: hostCount }, (_, i) => 1001 + i);
const agent = new SimulatedAgent({
  hostIds,
  latencyMs: { min: 1, max: 5 },
  randomFaultRate: faultRate,
  seed,
});
const engine = new Engine({ handlers: registerAgentHandlers(new HandlerRegistry(), agent) });

const names = new Map<number, string>();
let total = 0;
let finished = 0;
const verbose = hostCount <= 100;
let nextMilestone = 10;

function label(subtaskId: number): string {
  return names.get(subtaskId) ?? `subtask ${subtaskId}`;
}

function progress(subtaskId: number, outcome: string): void {
  const width = String(total).length;
  const counter = `[${String(finished).padStart(width)}/${total}]`;
  if (verbose || outcome !== 'SUCCESSFUL') {
    console.log(`${counter} ${label(subtaskId)} ${outcome}`);
  } else if ((finished / total) * 100 >= nextMilestone) {
    console.log(`${counter} ${Math.floor((finished / total) * 100)}% done`);
    nextMilestone += 10;
  }
}

engine.on('subtask.succeeded', ({ subtaskId }) => {
  finished++;
  progress(subtaskId, 'SUCCESSFUL');
});
engine.on('subtask.failed', ({ subtaskId, error }) => {
  progress(subtaskId, `FAILED: ${error.message}`);
});

const begun = performance.now();
const submitted = await engine.submit(
  batchStopAgentTemplate,
  batchStopAgentArguments({ hostIds }),
  { creator: 'admin' },
);
total = submitted.subtasks.length;
for (const subtask of submitted.subtasks) {
  const host = subtask.parallelIdx >= 0 ? ` [host ${hostIds[subtask.parallelIdx]}]` : '';
  names.set(subtask.id, `${subtask.name}${host}`);
}
console.log(
  `Submitted task ${submitted.id} "${submitted.name}": ${hostCount} hosts, ${total} subtasks`,
);

let task: TaskJson = await engine.waitForTask(submitted.id);
if (task.status === 'FAILED') {
  const failed = task.subtasks.filter((s) => s.status === 'FAILED');
  console.log(`Task ${task.id} FAILED: ${failed.length} failed subtask(s):`);
  for (const subtask of failed) {
    console.log(`  ${label(subtask.id)} (parallelIdx ${subtask.parallelIdx})`);
  }
  console.log('Clearing the faults and retrying the task');
  agent.clearFaults();
  await engine.retryTask(task.id, 'admin');
  task = await engine.waitForTask(task.id);
}
const elapsed = Math.round(performance.now() - begun);

const byStatus: Record<string, number> = {};
for (const subtask of task.subtasks) byStatus[subtask.status] = (byStatus[subtask.status] ?? 0) + 1;
console.log(`\nTask ${task.id} ${task.status} (operation ${task.operation}) in ${elapsed} ms`);
console.log('Task JSON (subtasks summarised):');
// Spreading keeps the wire shape's key order; the overridden keys stay where they are.
const summary = {
  ...task,
  context: {
    ...task.context,
    listMap: { host_ids: `${hostIds.length} hosts: ${hostIds[0]}..${hostIds.at(-1)}` },
  },
  subtasks: { count: task.subtasks.length, byStatus, first: task.subtasks[0] },
};
console.log(JSON.stringify(summary, null, 2));

const fleet: Record<string, number> = {};
for (const processes of Object.values(agent.fleetState())) {
  for (const status of Object.values(processes)) fleet[status] = (fleet[status] ?? 0) + 1;
}
console.log(
  `Fleet: ${hostCount * 5} agent processes on ${hostCount} hosts: ${JSON.stringify(fleet)}; ` +
    `operation marks held: ${agent.marks().length}`,
);

if (hostCount <= PICTURE_LIMIT) {
  console.log('\nTask DAG (Mermaid):');
  console.log(
    renderMermaid({ name: task.name, subtasks: await engine.store.listSubtasks(task.id) }),
  );
} else {
  console.log(`\n(DAG picture omitted above ${PICTURE_LIMIT} hosts)`);
}
await engine.close();
if (task.status !== 'SUCCESSFUL') process.exit(1);
