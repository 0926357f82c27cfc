/**
 * Signalling only what we started. A process is recorded at spawn with its identity; every signal
 * checks it first. Used by `LocalProcessAgent`.
 */
import type { ChildProcess } from 'node:child_process';
import { AgentOperationError } from '../errors.js';
import { checkAborted, reasonOf, sleep } from './abortable.js';
import { probeProcess, sameIdentity, type ProcessIdentity } from './process-identity.js';

const POLL_MS = 20;

/** A running process as recorded at spawn: enough to recognise it later. */
export interface RunRecord extends ProcessIdentity {
  readonly pid: number;
  /** Epoch ms. */
  readonly startedAt: number;
  readonly user: string;
}

/**
 * Children spawned by this OS process, by pid, whichever agent instance spawned them. While a
 * child is ours and not yet reaped its pid cannot be reused, so signalling it through its handle
 * is race-free; `exited` settles once Node has reaped it.
 */
const children = new Map<
  number,
  {
    readonly child: ChildProcess;
    readonly identity: ProcessIdentity;
    readonly exited: Promise<void>;
  }
>();

/** Registers a child this process just spawned; it leaves the registry once Node has reaped it. */
export function registerChild(child: ChildProcess, pid: number, identity: ProcessIdentity): void {
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      children.delete(pid);
      resolve();
    });
  });
  children.set(pid, { child, identity, exited });
}

/** Whether the recorded process is alive: its pid holds a running process with its identity. */
export function isRunning(run: RunRecord): boolean {
  const probe = probeProcess(run.pid);
  return probe.state === 'running' && sameIdentity(probe.identity, run);
}

/**
 * Sends `signal` to the recorded process if, and only if, it is still that process. Returns
 * false when it is gone (or its pid now belongs to someone else): nothing was sent.
 */
export function sendSignal(
  hostId: number,
  alias: string,
  run: RunRecord,
  signal: NodeJS.Signals,
): boolean {
  const own = children.get(run.pid);
  if (own && sameIdentity(own.identity, run)) {
    // Our unreaped child: its pid cannot have been reused, so the handle is safe to signal.
    if (own.child.exitCode !== null || own.child.signalCode !== null) return false;
    return own.child.kill(signal);
  }
  // Started by an earlier agent process: check the identity right before signalling.
  if (!isRunning(run)) return false;
  try {
    process.kill(run.pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw new AgentOperationError(
      hostId,
      'stop',
      alias,
      `cannot send ${signal} to pid ${run.pid}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Waits up to `ms` for the process to be gone. Our own child is gone once Node has reaped it
 * (its pid is then free); a process started by an earlier agent process is gone once `/proc` no
 * longer shows it running (an unreaped zombie no longer runs; its new parent reaps it).
 */
export async function waitUntilGone(
  run: RunRecord,
  ms: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const own = children.get(run.pid);
  if (own && sameIdentity(own.identity, run)) {
    checkAborted(signal);
    return new Promise<boolean>((resolve, reject) => {
      const done = (gone: boolean, error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve(gone);
      };
      const onAbort = () => done(false, reasonOf(signal as AbortSignal));
      const timer = setTimeout(() => done(false), ms);
      signal?.addEventListener('abort', onAbort, { once: true });
      void own.exited.then(() => done(true));
    });
  }
  const deadline = Date.now() + ms;
  for (;;) {
    if (!isRunning(run)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS, signal);
  }
}
