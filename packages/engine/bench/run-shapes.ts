/** The DAG shapes of the run benchmark, as dagops templates with no-op handlers. */
import { HandlerRegistry, type Template, type TaskArguments } from '@dagops/engine';
import { batchStopTemplate } from './batch-stop.js';

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';
const NOOP = 'bench.Noop';

/** One benchmark case: a template and its arguments. */
export interface RunCase {
  readonly name: string;
  readonly template: Template;
  readonly args: TaskArguments;
}

const hostIds = (count: number) => Array.from({ length: count }, (_, i) => String(i + 1));

/** Prepare[i] → Wait → Stop[i] → Wait → Finish[i] over `hosts` hosts (seed 002's shape). */
export function batchStopCase(hosts: number, concurrency: number): RunCase {
  return {
    name: `batch-stop ${hosts} hosts`,
    template: { ...batchStopTemplate, concurrency },
    args: { listMap: { host_ids: hostIds(hosts) } },
  };
}

/** A chain of `length` subtasks (a SERIAL split). */
export function chainCase(length: number, concurrency: number): RunCase {
  return {
    name: `chain ${length}`,
    template: {
      name: 'Chain',
      concurrency,
      nodes: [
        {
          key: 'step',
          className: NOOP,
          name: 'Step',
          timeout: 60,
          splitKey: 'items',
          splitMethod: 'SERIAL',
        },
      ],
      edges: [],
    },
    args: { listMap: { items: hostIds(length) } },
  };
}

/** One root, `width` parallel copies, one sink. */
export function fanOutCase(width: number, concurrency: number): RunCase {
  return {
    name: `fan-out ${width} wide`,
    template: {
      name: 'Fan out',
      concurrency,
      nodes: [
        { key: 'root', className: NOOP, name: 'Root', timeout: 60 },
        { key: 'leaf', className: NOOP, name: 'Leaf', timeout: 60, splitKey: 'items' },
        { key: 'sink', className: NOOP, name: 'Sink', timeout: 60 },
      ],
      edges: [
        { from: 'root', to: 'leaf' },
        { from: 'leaf', to: 'sink' },
      ],
    },
    args: { listMap: { items: hostIds(width) } },
  };
}

/** Every case by name, as the worker receives it on its command line. */
export function caseByName(name: string, concurrency: number): RunCase {
  const [kind, size] = name.split(':');
  const n = Number(size);
  if (kind === 'batch') return batchStopCase(n, concurrency);
  if (kind === 'chain') return chainCase(n, concurrency);
  if (kind === 'fanout') return fanOutCase(n, concurrency);
  throw new Error(`unknown case ${name}`);
}

/** A registry with a no-op async handler for every className the cases use. */
export function noopHandlers(): HandlerRegistry {
  const noop = { execute: async () => {} };
  return new HandlerRegistry()
    .register(`${OBAGENT}.PrepareStopOcpAgentTask`, noop)
    .register(`${OBAGENT}.StopAllOcpAgentProcessesTask`, noop)
    .register(`${OBAGENT}.FinishOcpAgentOperationTask`, noop)
    .register(NOOP, noop);
}
