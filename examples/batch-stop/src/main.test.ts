import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const run = (...args: string[]) =>
  execFileSync(process.execPath, [main, ...args], { encoding: 'utf8', stdio: 'pipe' });

describe('examples/batch-stop', () => {
  it('stops the agents of 20 simulated hosts, with progress, JSON summary and picture', () => {
    const out = run();
    expect(out).toMatch(/Submitted task \d+ "Batch stop OCP agent": 20 hosts, 62 subtasks/);
    // One progress line per finished subtask, counting up to 62.
    const progress = out.match(/^\[\s*\d+\/62\] .* SUCCESSFUL$/gm) ?? [];
    expect(progress).toHaveLength(62);
    expect(progress.at(-1)).toMatch(
      /^\[62\/62\] Finish OCP agent operation \[host \d+\] SUCCESSFUL$/,
    );
    expect(out).toContain('Prepare stop OCP agent [host 1001] SUCCESSFUL');
    expect(out).toMatch(/Task \d+ SUCCESSFUL \(operation EXECUTE\)/);
    const json = out.slice(out.indexOf('{'), out.indexOf('\nFleet:'));
    const summary = JSON.parse(json) as { status: string; subtasks: { byStatus: object } };
    expect(summary.status).toBe('SUCCESSFUL');
    expect(summary.subtasks.byStatus).toEqual({ SUCCESSFUL: 62 });
    expect(out).toContain(
      'Fleet: 100 agent processes on 20 hosts: {"STOPPED":100}; operation marks held: 0',
    );
    expect(out).toMatch(/^flowchart TD$/m);
    expect(out.match(/:::SUCCESSFUL$/gm)).toHaveLength(62);
  });

  it('shows injected failures, then retries to success', () => {
    const out = run('8', '--fault-rate=0.1', '--seed=4');
    expect(out).toMatch(/FAILED: .*injected fault/);
    expect(out).toMatch(/Task \d+ FAILED: \d+ failed subtask\(s\):/);
    expect(out).toContain('Clearing the faults and retrying the task');
    expect(out).toMatch(/Task \d+ SUCCESSFUL/);
    expect(out).toContain('{"STOPPED":40}; operation marks held: 0');
  });

  it('refuses a bad host count with a message naming the value', () => {
    expect(() => run('x')).toThrow(/hostCount must be a positive integer, got "x"/);
  });
});
