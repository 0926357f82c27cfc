/**
 * Validates a batch-stop-shaped template, expands it over a few hosts, and prints the task in
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
  type Template,
} from '@dagops/engine';

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';
const WAIT = 'com.alipay.ocp.service.task.business.WaitNode';

const batchStop: Template = {
  name: 'Batch stop OCP agent',
  nodes: [
    {
      key: 'prepare',
      className: `${OBAGENT}.PrepareStopOcpAgentTask`,
      name: 'Prepare stop OCP agent',
      timeout: 60,
      splitKey: 'host_ids',
    },
    { key: 'wait1', className: WAIT, name: 'Wait node', timeout: 30 },
    {
      key: 'stop',
      className: `${OBAGENT}.StopAllOcpAgentProcessesTask`,
      name: 'Stop all OCP agent processes',
      timeout: 600,
      splitKey: 'host_ids',
    },
    { key: 'wait2', className: WAIT, name: 'Wait node', timeout: 30 },
    {
      key: 'finish',
      className: `${OBAGENT}.FinishOcpAgentOperationTask`,
      name: 'Finish OCP agent operation',
      timeout: 60,
      splitKey: 'host_ids',
    },
  ],
  edges: [
    { from: 'prepare', to: 'wait1' },
    { from: 'wait1', to: 'stop' },
    { from: 'stop', to: 'wait2' },
    { from: 'wait2', to: 'finish' },
  ],
};

const hostCount = Number(process.argv[2] ?? 2);
if (!Number.isSafeInteger(hostCount) || hostCount < 1) {
  console.error(`hostCount must be a positive integer, got ${JSON.stringify(process.argv[2])}`);
  process.exit(2);
}
const hostIds = Array.from({ length: hostCount }, (_, i) => String(1001 + i));

const validated = validateTemplate(batchStop);
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
