/** Engine worker processes for the crash and multi-process tests, and what they print. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./engine-worker.ts', import.meta.url));
const SUBMITTER = fileURLToPath(new URL('./submit-worker.ts', import.meta.url));

/** One engine process and what it printed. */
export interface Worker {
  readonly executor: string;
  readonly child: ChildProcess;
  /** `[subtaskId, runTime]` of each execution it started. */
  readonly executions: [number, number][];
  /** `[subtaskId, runTime]` of each success the store acknowledged. */
  readonly acks: [number, number][];
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Everything it wrote to stderr. */
  readonly stderr: string[];
}

/** Starts an engine worker (see engine-worker.ts for the arguments). */
export function startWorker(
  where: string,
  schema: string,
  taskId: number,
  executor: string,
  options: { leaseSeconds?: number; concurrency?: number; sleepMs?: number } = {},
): Worker {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      WORKER,
      where,
      schema,
      String(taskId),
      executor,
      String(options.leaseSeconds ?? 1),
      String(options.concurrency ?? 32),
      String(options.sleepMs ?? 1),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const worker: Worker = {
    executor,
    child,
    executions: [],
    acks: [],
    stderr: [],
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
    }),
  };
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const [kind, id, runTime] = line.split(' ');
    if (kind === 'x') worker.executions.push([Number(id), Number(runTime)]);
    else if (kind === 'ack') worker.acks.push([Number(id), Number(runTime)]);
  });
  child.stderr?.on('data', (chunk: Buffer) => worker.stderr.push(chunk.toString()));
  return worker;
}

/** Resolves once `check()` holds, polling every 5 ms; rejects after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Kills a worker with SIGKILL (kill -9) and waits for it to be gone. */
export async function kill9(worker: Worker): Promise<void> {
  if (worker.child.pid !== undefined) process.kill(worker.child.pid, 'SIGKILL');
  await worker.exited;
}

/** A submitter process (see submit-worker.ts) stopped between a head-first task's transactions. */
export interface Submitter {
  /** Resolves with the task's id once its first transaction has committed. */
  readonly saved: Promise<number>;
  /** Kills it with SIGKILL (kill -9) and waits for it to be gone. */
  kill9(): Promise<void>;
}

/**
 * Starts a submitter saving a batch stop of `hosts` hosts with `headSubtasks: head`; with
 * `chunks`, its rest `size` subtasks a transaction, the first `written` chunks let through.
 */
export function startSubmitter(
  where: string,
  schema: string,
  hosts: number,
  head: number,
  chunks?: { readonly size: number; readonly written: number },
): Submitter {
  const chunkArgs = chunks ? [String(chunks.size), String(chunks.written)] : [];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', SUBMITTER, where, schema, String(hosts), String(head), ...chunkArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const saved = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const [kind, id] = line.split(' ');
      if (kind === 'saved') resolve(Number(id));
    });
    void exited.then(() => reject(new Error(`the submitter exited first: ${stderr.join('')}`)));
  });
  return {
    saved,
    async kill9() {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}
