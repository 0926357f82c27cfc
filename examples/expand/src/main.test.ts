import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('examples/expand (the main job for now)', () => {
  it('prints the template picture, the seed-shaped task and its DAG picture', () => {
    const out = execFileSync(process.execPath, [main, '3'], { encoding: 'utf8' });
    const json = out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1);
    const task = JSON.parse(json) as { subtasks: { status: string }[]; status: string };
    expect(task.status).toBe('RUNNING');
    expect(task.subtasks).toHaveLength(3 * 3 + 2);
    expect(task.subtasks.filter((s) => s.status === 'READY')).toHaveLength(3);
    expect(out.match(/^flowchart TD$/gm)).toHaveLength(2);
  });

  it('refuses a bad host count with a message naming the value', () => {
    expect(() =>
      execFileSync(process.execPath, [main, 'x'], { encoding: 'utf8', stdio: 'pipe' }),
    ).toThrow(/hostCount must be a positive integer, got "x"/);
  });
});
