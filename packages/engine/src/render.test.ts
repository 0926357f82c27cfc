import { describe, it, expect } from 'vitest';
import { expandTemplate } from './expand-template.js';
import { createCounterIdAllocator } from './id-allocator.js';
import { renderDot, renderMermaid } from './render.js';
import { SubtaskStatus } from './status.js';
import type { SubtaskRecord } from './task.js';
import type { Template } from './template.js';
import { validateTemplate } from './validate-template.js';

const batchStop: Template = {
  name: 'Batch stop OCP agent',
  nodes: [
    { key: 'prepare', className: 'x.Prepare', name: 'Prepare', timeout: 60, splitKey: 'host_ids' },
    { key: 'wait1', className: 'x.Wait', name: 'Wait node', timeout: 30 },
    { key: 'stop', className: 'x.Stop', name: 'Stop', timeout: 600, splitKey: 'host_ids' },
    { key: 'wait2', className: 'x.Wait', name: 'Wait node', timeout: 30 },
    {
      key: 'finish',
      className: 'x.Finish',
      name: 'Finish',
      timeout: 60,
      splitKey: 'host_ids',
      splitMethod: 'SERIAL',
    },
  ],
  edges: [
    { from: 'prepare', to: 'wait1' },
    { from: 'wait1', to: 'stop' },
    { from: 'stop', to: 'wait2' },
    { from: 'wait2', to: 'finish' },
  ],
};

function expandBatchStop(hosts: number) {
  const host_ids = Array.from({ length: hosts }, (_, i) => String(i + 1));
  return expandTemplate(
    validateTemplate(batchStop),
    { listMap: { host_ids } },
    { ids: createCounterIdAllocator(100), creator: 'admin', executor: 'e', now: 0 },
  );
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/**
 * Checks DOT text outside quoted strings: braces balance and never go negative, and the
 * quoted strings themselves are closed. Returns the structural text with strings blanked.
 */
function dotStructure(text: string): string {
  let depth = 0;
  let structure = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') {
        inString = false;
        structure += '"';
      }
      continue;
    }
    if (c === '"') {
      inString = true;
      structure += '"';
      continue;
    }
    if (c === '{') depth++;
    if (c === '}') depth--;
    expect(depth, `brace depth at ${i}`).toBeGreaterThanOrEqual(0);
    structure += c;
  }
  expect(inString, 'every string is closed').toBe(false);
  expect(depth, 'braces balance').toBe(0);
  return structure;
}

/** The strings of DOT text, unescaped, in order. */
function dotStrings(text: string): string[] {
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] as string).replace(/\\(.)/g, '$1'),
  );
}

describe('renderMermaid', () => {
  it('draws every template node and edge, split nodes marked, no status classes', () => {
    const text = renderMermaid({ template: batchStop });
    const all = lines(text);
    expect(all[0]).toBe('flowchart TD');
    expect(text.endsWith('\n')).toBe(true);
    const nodeLines = all.filter((line) => /^ {2}n_\w+\[/.test(line));
    const edgeLines = all.filter((line) => line.includes(' --> '));
    expect(nodeLines).toEqual([
      '  n_prepare["Prepare ×host_ids"]',
      '  n_wait1["Wait node"]',
      '  n_stop["Stop ×host_ids"]',
      '  n_wait2["Wait node"]',
      '  n_finish["Finish ×host_ids (serial)"]',
    ]);
    expect(edgeLines).toEqual([
      '  n_prepare --> n_wait1',
      '  n_wait1 --> n_stop',
      '  n_stop --> n_wait2',
      '  n_wait2 --> n_finish',
    ]);
    expect(text).not.toContain('classDef');
    expect(text).not.toContain(':::');
    expect(all).toHaveLength(1 + nodeLines.length + edgeLines.length);
  });

  it('draws every subtask and link of a task with a class per status', () => {
    const { task, subtasks } = expandBatchStop(2);
    const text = renderMermaid({ name: task.name, subtasks });
    const all = lines(text);
    for (const s of subtasks) {
      const label = s.parallelIdx >= 0 ? `${s.name} [${s.parallelIdx}]` : s.name;
      expect(all).toContain(`  n_${s.id}["${label}"]:::${s.status}`);
      for (const down of s.downstreams) expect(all).toContain(`  n_${s.id} --> n_${down}`);
    }
    const linkCount = subtasks.reduce((sum, s) => sum + s.downstreams.length, 0);
    expect(all.filter((line) => line.includes(' --> '))).toHaveLength(linkCount);
    expect(all.filter((line) => line.includes(':::'))).toHaveLength(subtasks.length);
    // Only the statuses in use get a class definition, with their colours.
    expect(all.filter((line) => line.includes('classDef')).sort()).toEqual([
      '  classDef PENDING fill:#f4f4f5,stroke:#a1a1aa',
      '  classDef READY fill:#e0f2fe,stroke:#0284c7',
    ]);
  });

  it('gives each status its own fill colour', () => {
    const { task, subtasks } = expandBatchStop(3);
    const statuses = Object.values(SubtaskStatus);
    subtasks.forEach((s, i) => {
      s.status = statuses[i % statuses.length] as SubtaskStatus;
    });
    const text = renderMermaid({ name: task.name, subtasks });
    const fills = new Map<string, string>();
    for (const match of text.matchAll(/classDef (\w+) fill:(#[0-9a-f]{6}),stroke:#[0-9a-f]{6}/g)) {
      fills.set(match[1] as string, match[2] as string);
    }
    expect([...fills.keys()].sort()).toEqual([...statuses].sort());
    expect(new Set(fills.values()).size).toBe(statuses.length);
    expect(fills.get('FAILED')).toBe('#fee2e2');
    expect(fills.get('SUCCESSFUL')).toBe('#dcfce7');
  });

  it('escapes quotes in names', () => {
    const template: Template = {
      name: 'Quotes "everywhere"',
      nodes: [{ key: 'a', className: 'x', name: 'Say "hi"', timeout: 1 }],
      edges: [],
    };
    const text = renderMermaid({ template });
    expect(text).toContain('n_a["Say #quot;hi#quot;"]');
    expect(text).not.toContain('"hi"');
    // Every label opens and closes exactly one string.
    for (const line of lines(text).slice(1)) expect(line.split('"').length - 1).toBe(2);
  });

  it('keeps distinct node keys distinct even with symbols and underscores', () => {
    const keys = ['a-b', 'a_45_b', 'a b', 'a.b', 'a_b', 'ab'];
    const template: Template = {
      name: 'T',
      nodes: keys.map((key) => ({ key, className: 'x', name: key, timeout: 1 })),
      edges: [{ from: 'a-b', to: 'a_45_b' }],
    };
    const text = renderMermaid({ template });
    const ids = lines(text)
      .slice(1, 1 + keys.length)
      .map((line) => (/^ {2}(\S+)\[/.exec(line) as RegExpExecArray)[1] as string);
    expect(ids).toHaveLength(keys.length);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_]+$/);
    expect(new Set(ids).size).toBe(keys.length);
    const [from, to] =
      lines(text)
        .find((l) => l.includes('-->'))
        ?.trim()
        .split(' --> ') ?? [];
    expect(from).toBe(ids[0]);
    expect(to).toBe(ids[1]);
  });
});

describe('renderDot', () => {
  it('draws every template node and edge inside one balanced digraph', () => {
    const text = renderDot({ template: batchStop });
    const structure = dotStructure(text);
    expect(structure.trim().startsWith('digraph "" {')).toBe(true);
    expect(structure.trim().endsWith('}')).toBe(true);
    expect(dotStrings(text)[0]).toBe('Batch stop OCP agent');
    for (const node of batchStop.nodes) {
      expect(text).toMatch(new RegExp(`^ {2}"${node.key}" \\[label="${node.name}[^"]*"\\];$`, 'm'));
    }
    const edgeLines = lines(text).filter((line) => line.includes(' -> '));
    expect(edgeLines).toEqual(batchStop.edges.map((e) => `  "${e.from}" -> "${e.to}";`));
    // A template has no statuses: only the default fill from the node defaults line.
    expect(text.match(/fillcolor=/g)).toHaveLength(1);
  });

  it('draws every subtask filled by status, and every link', () => {
    const { task, subtasks } = expandBatchStop(2);
    const failed = subtasks[2] as SubtaskRecord;
    failed.status = 'FAILED';
    const text = renderDot({ name: task.name, subtasks });
    dotStructure(text);
    const fill: Record<string, string> = {
      PENDING: '#f4f4f5',
      READY: '#e0f2fe',
      FAILED: '#fee2e2',
    };
    for (const s of subtasks) {
      const line = lines(text).find((l) => l.startsWith(`  "${s.id}" [`));
      expect(line, `node ${s.id}`).toBeDefined();
      expect(line).toContain(`fillcolor="${fill[s.status]}"`);
      expect(line).toContain(`tooltip="${s.status}"`);
      for (const down of s.downstreams) expect(text).toContain(`  "${s.id}" -> "${down}";`);
    }
    const linkCount = subtasks.reduce((sum, s) => sum + s.downstreams.length, 0);
    expect(lines(text).filter((line) => line.includes(' -> '))).toHaveLength(linkCount);
    expect(lines(text).filter((line) => /^ {2}"\d+" \[/.test(line))).toHaveLength(subtasks.length);
  });

  it('escapes quotes, backslashes and braces in names and keeps braces balanced', () => {
    const template: Template = {
      name: 'T "quoted" {x}',
      nodes: [
        { key: 'a"}', className: 'x', name: 'Say "hi" \\ {', timeout: 1 },
        { key: 'b', className: 'x', name: '}}}', timeout: 1 },
      ],
      edges: [{ from: 'a"}', to: 'b' }],
    };
    const text = renderDot({ template });
    const structure = dotStructure(text);
    expect(structure.match(/\{/g)).toHaveLength(1);
    expect(text).toContain('label="Say \\"hi\\" \\\\ {"');
    const strings = dotStrings(text);
    expect(strings).toContain('T "quoted" {x}');
    expect(strings).toContain('Say "hi" \\ {');
    expect(strings).toContain('a"}');
    expect(text).toContain('"a\\"}" -> "b";');
  });
});
