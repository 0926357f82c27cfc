/**
 * The benchmark's workload: the batch-stop shape of SPEC §3 (seed 002), and a hand-written
 * baseline that builds the same subtasks and edges with no template, no maps and no checks.
 */
import { NodeType, Operation, SubtaskStatus } from '../src/status.js';
import type { SubtaskRecord } from '../src/task.js';
import type { Template } from '../src/template.js';

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';
const WAIT = 'com.alipay.ocp.service.task.business.WaitNode';

/** Prepare[host_ids] → Wait → Stop[host_ids] → Wait → Finish[host_ids]: 3 × hosts + 2 subtasks. */
export const batchStopTemplate: Template = {
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

/** `hostCount` host ids as OCP passes them: decimal strings from 1001 on. */
export function hostIds(hostCount: number): string[] {
  return Array.from({ length: hostCount }, (_, i) => String(1001 + i));
}

/**
 * The floor of any expansion: the same `SubtaskRecord` objects, in the same order, with the
 * same upstream/downstream id arrays filled in the same order, written out by hand for this
 * one shape.
 */
export function expandBaseline(hostCount: number, taskId: number, base: number): SubtaskRecord[] {
  const count = 3 * hostCount + 2;
  const subtasks = new Array<SubtaskRecord>(count);
  const nodes = batchStopTemplate.nodes;
  let index = 0;
  for (const node of nodes) {
    const split = node.splitKey !== undefined;
    const size = split ? hostCount : 1;
    const status = index === 0 ? SubtaskStatus.READY : SubtaskStatus.PENDING;
    for (let i = 0; i < size; i++, index++) {
      subtasks[index] = {
        id: base + index,
        taskId,
        nodeKey: node.key,
        seriesId: index,
        parallelIdx: split ? i : -1,
        className: node.className,
        name: node.name,
        description: node.name,
        nodeType: NodeType.JAVA_TASK,
        timeout: node.timeout,
        prohibitRollback: false,
        upstreams: [],
        downstreams: [],
        status,
        operation: Operation.EXECUTE,
        runTime: 1,
        startTime: undefined,
        endTime: undefined,
        executor: undefined,
        error: undefined,
      };
    }
  }
  const wait1 = hostCount;
  const stop = hostCount + 1;
  const wait2 = 2 * hostCount + 1;
  const finish = 2 * hostCount + 2;
  const link = (from: number, to: number): void => {
    (subtasks[from]?.downstreams as number[]).push(base + to);
    (subtasks[to]?.upstreams as number[]).push(base + from);
  };
  for (let i = 0; i < hostCount; i++) link(i, wait1);
  for (let i = 0; i < hostCount; i++) link(wait1, stop + i);
  for (let i = 0; i < hostCount; i++) link(stop + i, wait2);
  for (let i = 0; i < hostCount; i++) link(wait2, finish + i);
  return subtasks;
}

/**
 * A checksum of what expansion decides (position, branch, status, edges relative to the first
 * id), so the worker can check that the baseline built the same thing without keeping both
 * alive at once.
 */
export function shapeDigest(subtasks: readonly SubtaskRecord[]): number {
  const base = subtasks[0]?.id ?? 0;
  let hash = 0x811c9dc5;
  const mix = (value: number): void => {
    hash = Math.imul(hash ^ value, 0x01000193) >>> 0;
  };
  for (const subtask of subtasks) {
    mix(subtask.seriesId);
    mix(subtask.parallelIdx + 1);
    mix(subtask.status === SubtaskStatus.READY ? 1 : 2);
    mix(subtask.timeout);
    mix(subtask.upstreams.length);
    for (const id of subtask.upstreams) mix(id - base);
    mix(subtask.downstreams.length);
    for (const id of subtask.downstreams) mix(id - base);
  }
  return hash;
}
