/**
 * The service process itself (`node dist/main.js`, what `pnpm start` runs): configuration
 * errors, the first admin's generated password, and a graceful shutdown on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, killRecordedProcesses } from './test-support/e2e.js';
import { basic } from './test-support/harness.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Running {
  readonly child: ChildProcess;
  readonly stdout: string[];
  stderr: string;
  readonly exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) {
    killRecordedProcesses(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(env: Record<string, string>): Running {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !key.startsWith('DAGOPS_') && key !== 'DATABASE_URL' && key !== 'PORT',
    ),
  );
  const child = spawn(process.execPath, [MAIN], {
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const running: Running = {
    child,
    stdout: [],
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    running.stdout.push(...lines);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    running.stderr += chunk.toString();
  });
  return running;
}

async function listening(running: Running): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (const line of running.stdout) {
      if (line.includes('"dagops service listening"'))
        return (JSON.parse(line) as { url: string }).url;
    }
    if (running.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the service did not start: ${running.stderr}\n${running.stdout.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dagops-main-'));
  dirs.push(dir);
  return dir;
}

describe('the service process', () => {
  beforeAll(() => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run tsc --build first`);
  });

  it.each([
    [{ PORT: 'abc' }, 'dagops: PORT must be an integer in 0..65535, got "abc"'],
    [{ PORT: '70000' }, 'dagops: PORT must be an integer in 0..65535, got "70000"'],
    [
      { DAGOPS_DEMO_HOSTS: '-1' },
      'dagops: DAGOPS_DEMO_HOSTS must be an integer in 0..1000000, got "-1"',
    ],
    [{ DAGOPS_AGENT: 'ssh' }, 'dagops: DAGOPS_AGENT must be one of local, simulated, got "ssh"'],
    [
      { DAGOPS_ADMIN_PASSWORD: 'short' },
      'dagops: DAGOPS_ADMIN_PASSWORD must be at least 8 characters (value not shown)',
    ],
    [
      { DATABASE_URL: 'mysql://root:hunter2@db/x' },
      'dagops: DATABASE_URL must be a postgres:// or postgresql:// URL (value not shown: it may hold a password)',
    ],
  ])('refuses %o naming the variable and the value', async (env, message) => {
    const running = run({ ...env, DAGOPS_DATA_DIR: dataDir() });
    expect(await running.exited).toBe(2);
    expect(running.stderr.trim()).toBe(message);
  });

  it('prints a generated admin password once, serves, and shuts down gracefully on SIGTERM', async () => {
    const dir = dataDir();
    const env = { PORT: '0', DAGOPS_DATA_DIR: dir, DAGOPS_DEMO_HOSTS: '1' };
    const first = run(env);
    const url = await listening(first);
    const match = /created user "admin" with the generated password: (\S+)/.exec(first.stderr);
    const password = match?.[1] as string;
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);

    const auth = basic('admin', password);
    const processes = await fetch(`${url}/compute/hosts/1/agent/processes`, {
      headers: { authorization: auth },
    });
    const pids = (
      (await processes.json()) as { data: { contents: { pid: number }[] } }
    ).data.contents.map((p) => p.pid);
    expect(pids).toHaveLength(5);
    for (const pid of pids) expect(isAlive(pid)).toBe(true);

    // A request in flight when SIGTERM arrives is answered before the process exits. The
    // scheme in lower case is a credential not in the cache yet: its scrypt check (~0.3 s)
    // keeps the request in flight while the signal arrives.
    const started = Date.now();
    const inFlight = fetch(`${url}/compute/hosts/1/agent/stop`, {
      method: 'POST',
      headers: { authorization: auth.replace('Basic', 'basic') },
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    first.child.kill('SIGTERM');
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThan(100);
    expect(await first.exited).toBe(0);
    const log = first.stdout
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(log.map((line) => line['msg'])).toEqual(
      expect.arrayContaining([
        'shutting down: finishing requests in flight and running steps',
        'stopped',
      ]),
    );
    expect(first.stdout.join('\n')).not.toContain(password);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);

    // A second start on the same data: no new password, the first one still works.
    const second = run(env);
    const url2 = await listening(second);
    expect(second.stderr).not.toContain('generated password');
    const health = await fetch(`${url2}/compute/hosts/1/agent/processes`, {
      headers: { authorization: auth },
    });
    expect(health.status).toBe(200);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 60_000);
});
