import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('examples/custom-node', () => {
  it('runs a user-defined node that retries once per host, then reports every host', () => {
    const out = execFileSync(process.execPath, [main], { encoding: 'utf8' });
    expect(out).toMatch(/task \d+ SUCCESSFUL/);
    for (const host of ['1001', '1002', '1003']) {
      expect(out).toContain(`host ${host} did not answer; retrying in 50 ms`);
    }
    expect(out.match(/Check disk \[\d\] SUCCESSFUL runTime=2/g)).toHaveLength(3);
    expect(out).toContain('checked: 1001, 1002, 1003');
  });
});
