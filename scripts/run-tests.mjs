#!/usr/bin/env node
// Runs the whole vitest suite, then prints one plain closing line, `tests: N passed, N failed,
// N skipped`, that any CI reader understands. Exits with vitest's exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'dagops-tests-'));
const report = join(dir, 'results.json');
const run = spawnSync(
  'vitest',
  [
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit', shell: process.platform === 'win32' },
);
let summary = 'tests: no result file was written';
try {
  const results = JSON.parse(readFileSync(report, 'utf8'));
  const skipped = results.numPendingTests + results.numTodoTests;
  summary = `tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped`;
} catch (error) {
  summary += ` (${error.message})`;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(summary);
process.exit(run.status ?? 1);
