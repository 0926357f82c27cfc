import type { SubtaskStatus } from '../status.js';
import type { SubtaskRecord } from '../task.js';
import type { Template } from '../template.js';

/** A drawable graph: what Mermaid and DOT rendering share. */
export interface GraphView {
  readonly title: string;
  readonly nodes: readonly { id: string; label: string; status?: SubtaskStatus }[];
  readonly edges: readonly (readonly [string, string])[];
}

/** A template as a graph: one box per node, split nodes marked with their list. */
export function templateView(template: Template): GraphView {
  return {
    title: template.name,
    nodes: template.nodes.map((node) => ({
      id: node.key,
      label:
        node.splitKey === undefined
          ? node.name
          : `${node.name} ×${node.splitKey}${node.splitMethod === 'SERIAL' ? ' (serial)' : ''}`,
    })),
    edges: template.edges.map((edge) => [edge.from, edge.to] as const),
  };
}

/** A task as a graph: one box per subtask, styled by status. */
export function taskView(name: string, subtasks: readonly SubtaskRecord[]): GraphView {
  const edges: (readonly [string, string])[] = [];
  for (const subtask of subtasks) {
    for (const down of subtask.downstreams) edges.push([String(subtask.id), String(down)]);
  }
  return {
    title: name,
    nodes: subtasks.map((subtask) => ({
      id: String(subtask.id),
      label: subtask.parallelIdx >= 0 ? `${subtask.name} [${subtask.parallelIdx}]` : subtask.name,
      status: subtask.status,
    })),
    edges,
  };
}

/** Fill and stroke colours per status, shared by both renderers. */
export const STATUS_STYLE: Record<SubtaskStatus, { fill: string; stroke: string }> = {
  PENDING: { fill: '#f4f4f5', stroke: '#a1a1aa' },
  READY: { fill: '#e0f2fe', stroke: '#0284c7' },
  RUNNING: { fill: '#fef9c3', stroke: '#ca8a04' },
  CANCELING: { fill: '#ffedd5', stroke: '#ea580c' },
  FAILED: { fill: '#fee2e2', stroke: '#dc2626' },
  SUCCESSFUL: { fill: '#dcfce7', stroke: '#16a34a' },
};
