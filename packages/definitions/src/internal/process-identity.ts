import { readFileSync } from 'node:fs';

/**
 * Who a pid is: its start time in clock ticks since boot (`/proc/<pid>/stat` field 22) and the
 * boot it belongs to. A pid is reused by the kernel once its process is gone; a process with the
 * same pid but another identity is somebody else's, and must never be signalled.
 */
export interface ProcessIdentity {
  /** Field 22 of `/proc/<pid>/stat`, as a decimal string (it may exceed 2^53 in theory). */
  readonly startTicks: string;
  /** `/proc/sys/kernel/random/boot_id`: ticks count from boot, so the boot must match too. */
  readonly bootId: string;
}

/** What `/proc` says about a pid right now. */
export type ProcessProbe =
  | { readonly state: 'running'; readonly identity: ProcessIdentity }
  /** Exited but not yet reaped by its parent: it holds the pid, but it is not running. */
  | { readonly state: 'zombie'; readonly identity: ProcessIdentity }
  | { readonly state: 'gone' };

let cachedBootId: string | undefined;

function bootId(): string {
  cachedBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return cachedBootId;
}

/** Whether this platform exposes `/proc/<pid>/stat` (Linux). */
export function canProbeProcesses(): boolean {
  try {
    bootId();
    readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last `)`.
 */
export function probeProcess(pid: number): ProcessProbe {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return { state: 'gone' };
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const state = fields[0];
  const startTicks = fields[19];
  if (state === undefined || startTicks === undefined) return { state: 'gone' };
  const identity = { startTicks, bootId: bootId() };
  return state === 'Z' || state === 'X'
    ? { state: 'zombie', identity }
    : { state: 'running', identity };
}

/** Whether two identities name the same process. */
export function sameIdentity(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.startTicks === b.startTicks && a.bootId === b.bootId;
}
