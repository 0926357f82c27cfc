#!/usr/bin/env node
// Runs the whole vitest suite, then prints one plain closing line, `tests: N passed, N failed,
// N skipped`, that any CI reader understands. Exits with vitest's exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'dagops-tests-'));
const report = join(dir, 'results.json');
// vitest's own CLI, run by this node: works with or without node_modules/.bin on the PATH.
const vitest = join(
  dirname(createRequire(import.meta.url).resolve('vitest/package.json')),
  'vitest.mjs',
);
const run = spawnSync(
  process.execPath,
  [
    vitest,
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
if (run.error) console.error(`could not start vitest: ${run.error.message}`);
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
