/**
 * Validates the shipped Batch stop OCP agent template, expands it over a few hosts, and prints the task in
 * the OCP wire shape together with its DAG as a Mermaid flowchart.
 *
 * Usage: node dist/main.js [hostCount]
 */
import {
  createCounterIdAllocator,
  expandTemplate,
  renderMermaid,
  toTaskJson,
  validateTemplate,
} from '@dagops/engine';
import { batchStopAgentTemplate } from '@dagops/definitions';

const hostCount = Number(process.argv[2] ?? 2);
if (!Number.isSafeInteger(hostCount) || hostCount < 1) {
  console.error(`hostCount must be a positive integer, got ${JSON.stringify(process.argv[2])}`);
  process.exit(2);
}
const hostIds = Array.from({ length: hostCount }, (_, i) => String(1001 + i));

const validated = validateTemplate(batchStopAgentTemplate);
const { task, subtasks } = expandTemplate(
  validated,
  { listMap: { host_ids: hostIds } },
  {
    ids: createCounterIdAllocator(30000),
    creator: 'admin',
    executor: '127.0.0.1',
    now: Date.now(),
  },
);

console.log('Template:');
console.log(renderMermaid({ template: validated.template }));
console.log('Task (OCP wire shape):');
console.log(JSON.stringify(toTaskJson(task, subtasks), null, 2));
console.log('\nTask DAG (Mermaid):');
console.log(renderMermaid({ name: task.name, subtasks }));
