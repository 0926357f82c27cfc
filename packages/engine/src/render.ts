import { STATUS_STYLE, taskView, templateView, type GraphView } from './internal/graph-view.js';
import type { SubtaskStatus } from './status.js';
import type { SubtaskRecord } from './task.js';
import type { Template } from './template.js';

/** What can be drawn: a template, or a task's subtasks. */
export type Drawable =
  | { readonly template: Template }
  | { readonly name: string; readonly subtasks: readonly SubtaskRecord[] };

function viewOf(drawable: Drawable): GraphView {
  return 'template' in drawable
    ? templateView(drawable.template)
    : taskView(drawable.name, drawable.subtasks);
}

const mermaidText = (text: string) => `"${text.replace(/"/g, '#quot;')}"`;
const dotText = (text: string) => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
// `_` is escaped too, so that distinct ids stay distinct (`a-b` and `a_45_b` would meet).
const mermaidId = (id: string) => `n_${id.replace(/[^A-Za-z0-9]/g, (c) => `_${c.charCodeAt(0)}_`)}`;

/**
 * Renders a template or a task as a Mermaid flowchart; subtasks carry a class per status.
 *
 * @example renderMermaid({ template }) // 'flowchart TD\n  n_prepare["Prepare"] ...'
 */
export function renderMermaid(drawable: Drawable): string {
  const view = viewOf(drawable);
  const lines = ['flowchart TD'];
  const used = new Set<SubtaskStatus>();
  for (const node of view.nodes) {
    const cls = node.status ? `:::${node.status}` : '';
    if (node.status) used.add(node.status);
    lines.push(`  ${mermaidId(node.id)}[${mermaidText(node.label)}]${cls}`);
  }
  for (const [from, to] of view.edges) lines.push(`  ${mermaidId(from)} --> ${mermaidId(to)}`);
  for (const status of used) {
    const { fill, stroke } = STATUS_STYLE[status];
    lines.push(`  classDef ${status} fill:${fill},stroke:${stroke}`);
  }
  return lines.join('\n') + '\n';
}

/** Renders a template or a task as a Graphviz DOT digraph; subtasks are filled by status. */
export function renderDot(drawable: Drawable): string {
  const view = viewOf(drawable);
  const lines = [
    `digraph ${dotText(view.title)} {`,
    '  rankdir=TB;',
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
  ];
  for (const node of view.nodes) {
    const style = node.status ? STATUS_STYLE[node.status] : undefined;
    const attrs = [`label=${dotText(node.label)}`];
    if (style) {
      attrs.push(`fillcolor="${style.fill}"`, `color="${style.stroke}"`);
      attrs.push(`tooltip=${dotText(node.status as string)}`);
    }
    lines.push(`  ${dotText(node.id)} [${attrs.join(', ')}];`);
  }
  for (const [from, to] of view.edges) lines.push(`  ${dotText(from)} -> ${dotText(to)};`);
  lines.push('}');
  return lines.join('\n') + '\n';
}
