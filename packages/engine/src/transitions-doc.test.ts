/**
 * The transition tables in docs/operations.md must list exactly the moves of
 * SUBTASK_TRANSITIONS and TASK_TRANSITIONS, in the markdown table and in the Mermaid diagram of
 * each state machine, so that the guide cannot drift from the code.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SUBTASK_TRANSITIONS, TASK_TRANSITIONS } from './transitions.js';

const DOC = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');

/** The text under `heading` up to the next heading of the same or a higher level. */
function section(doc: string, heading: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => line.trim() === heading);
  if (start < 0) throw new Error(`docs/operations.md has no heading ${JSON.stringify(heading)}`);
  const level = heading.indexOf(' ');
  const end = lines.findIndex(
    (line, i) => i > start && /^#+ /.test(line) && line.indexOf(' ') <= level,
  );
  return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** `FROM>TO` for each row of the first markdown table in `text` (`| \`FROM\` | \`TO\` | … |`). */
function tableMoves(text: string): string[] {
  const rows = text
    .split('\n')
    .filter((line) => line.trimStart().startsWith('|'))
    .map((line) =>
      line
        .trim()
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
  const [header, separator, ...body] = rows;
  expect(header?.slice(0, 2)).toEqual(['from', 'to']);
  expect(separator?.every((cell) => /^:?-+:?$/.test(cell))).toBe(true);
  return body.map(([from = '', to = '']) => {
    const match = /^`(\w+)`$/;
    const f = match.exec(from)?.[1];
    const t = match.exec(to)?.[1];
    if (!f || !t) throw new Error(`not a transition row: | ${from} | ${to} |`);
    return `${f}>${t}`;
  });
}

/** `FROM>TO` for each `FROM --> TO` of the Mermaid block in `text`, without `[*]` moves. */
function mermaidMoves(text: string): string[] {
  const block = /```mermaid\n([\s\S]*?)```/.exec(text)?.[1];
  if (block === undefined) throw new Error('no mermaid block');
  const lines = block.split('\n').map((line) => line.trim());
  expect(lines[0]).toBe('stateDiagram-v2');
  return lines
    .slice(1)
    .filter((line) => line.length > 0 && !line.includes('[*]'))
    .map((line) => {
      const move = /^(\w+) --> (\w+)(?::.*)?$/.exec(line);
      if (!move) throw new Error(`not a transition: ${line}`);
      return `${move[1]}>${move[2]}`;
    });
}

function moves(table: Readonly<Record<string, readonly string[]>>): string[] {
  return Object.entries(table).flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`));
}

describe('docs/operations.md', () => {
  const machines = [
    ['### Subtask transitions', SUBTASK_TRANSITIONS],
    ['### Task transitions', TASK_TRANSITIONS],
  ] as const;
  for (const [heading, table] of machines) {
    describe(heading.slice(4), () => {
      const text = section(DOC, heading);
      it('lists exactly the moves of the table, once each, in its order', () => {
        expect(tableMoves(text)).toEqual(moves(table));
      });
      it('draws exactly the moves of the table', () => {
        expect(mermaidMoves(text).sort()).toEqual(moves(table).sort());
      });
    });
  }

  it('finds every status of each machine in its diagram', () => {
    for (const [heading, table] of machines) {
      const block = /```mermaid\n([\s\S]*?)```/.exec(section(DOC, heading))?.[1] ?? '';
      for (const status of Object.keys(table)) expect(block, heading).toContain(status);
    }
  });
});
