import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { DagopsError, ErrorCode, TaskArgumentsError } from '@dagops/engine';
import { AgentOperationError, AgentProcessNotFoundError, HostNotFoundError } from './errors.js';
import {
  AgentProcessStatus,
  type AgentCallOptions,
  type HostAgent,
  type HostAgentProcess,
  type HostOperationMark,
} from './host-agent.js';
import { checkAborted } from './internal/abortable.js';
import { formatAgentTime } from './internal/agent-time.js';
import {
  addNote,
  markView,
  mayClear,
  takeMark,
  type MarkRecord,
} from './internal/operation-marks.js';
import {
  isRunning,
  registerChild,
  sendSignal,
  waitUntilGone,
  type RunRecord,
} from './internal/own-processes.js';
import { canProbeProcesses, probeProcess } from './internal/process-identity.js';
import { readJsonFile, writeJsonFileAtomic } from './internal/state-file.js';
import { declarationIssues, type LocalProcessDeclaration } from './local-process-declaration.js';

/** Options of a {@link LocalProcessAgent}. */
export interface LocalProcessAgentOptions {
  /** Directory of the state file (`local-agent-state.json`) and default log files. */
  readonly stateDir: string;
  /** Time a process has to exit after SIGTERM before it gets SIGKILL. @default 10_000 ms */
  readonly stopGracePeriodMs?: number;
  /** Time a process has to disappear after SIGKILL before the stop fails. @default 5_000 ms */
  readonly killTimeoutMs?: number;
  /** UTC offset of the times in records, minutes east. @default this process's offset */
  readonly utcOffsetMinutes?: number;
}

interface ResolvedOptions {
  readonly stateDir: string;
  readonly stopGracePeriodMs: number;
  readonly killTimeoutMs: number;
  readonly utcOffsetMinutes: number | undefined;
}

interface ProcessState {
  readonly id: number;
  readonly alias: string;
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  ports: number[];
  operable: boolean;
  logFile: string;
  readonly createdAt: number;
  updatedAt: number;
  lastActiveAt?: number;
  run?: RunRecord;
}

interface HostState {
  processes: ProcessState[];
  mark?: MarkRecord;
}

interface StateFile {
  version: 1;
  nextProcessId: number;
  hosts: Record<string, HostState>;
}

/** Name of the state file inside `stateDir`. */
export const LOCAL_AGENT_STATE_FILE = 'local-agent-state.json';

/**
 * A {@link HostAgent} over real OS processes on this machine (Linux: it reads `/proc`).
 * Processes are declared per (logical) host with an argv start command and started with
 * `child_process.spawn` (no shell, detached, stdout and stderr appended to a log file); a stop
 * sends SIGTERM, waits `stopGracePeriodMs`, then sends SIGKILL. It never signals a pid it did
 * not start: each start records the process's identity (`/proc/<pid>/stat` start time and the
 * boot id), checked before every signal; a pid now held by another process counts as stopped.
 * Its state (declarations, pids, identities, operation marks) is a JSON file in `stateDir`,
 * written atomically, so a new instance (after an engine restart) sees running processes as
 * running and can stop them. One instance per state directory at a time.
 *
 * @example
 * const agent = new LocalProcessAgent({ stateDir: '/var/lib/dagops-agent' });
 * agent.declareProcess({ hostId: 1, alias: 'ocp_agentd', argv: ['/opt/agent/bin/ocp_agentd'] });
 * await agent.startProcess(1, agent.processId(1, 'ocp_agentd'));
 */
export class LocalProcessAgent implements HostAgent {
  private readonly options: ResolvedOptions;
  private readonly statePath: string;
  private readonly state: StateFile;
  private readonly locks = new Map<number, Promise<unknown>>();
  private readonly user = userInfo().username;

  constructor(options: LocalProcessAgentOptions) {
    this.options = resolveLocalAgentOptions(options);
    if (!canProbeProcesses()) {
      throw new DagopsError(
        ErrorCode.OPTIONS_INVALID,
        'LocalProcessAgent needs /proc (Linux) to verify process identities before signalling',
      );
    }
    this.statePath = join(this.options.stateDir, LOCAL_AGENT_STATE_FILE);
    this.state = loadState(this.statePath);
  }

  /** Where the state is kept. */
  get stateFile(): string {
    return this.statePath;
  }

  /**
   * Declares a process on a host, or updates the declaration with the same host and alias
   * (keeping its id and what runs). Returns its record.
   * @throws TaskArgumentsError naming each bad field and its value.
   */
  declareProcess(declaration: LocalProcessDeclaration): HostAgentProcess {
    const issues = declarationIssues(declaration);
    if (issues.length > 0) throw new TaskArgumentsError('(declare process)', issues);
    const now = Date.now();
    const key = String(declaration.hostId);
    const host = (this.state.hosts[key] ??= { processes: [] });
    let entry = host.processes.find((p) => p.alias === declaration.alias);
    const fields = {
      argv: [...declaration.argv],
      ports: [...(declaration.ports ?? [])],
      operable: declaration.operable ?? true,
      logFile: resolve(
        declaration.logFile ??
          join(
            this.options.stateDir,
            'logs',
            `host-${declaration.hostId}`,
            `${declaration.alias}.log`,
          ),
      ),
    };
    if (entry) {
      Object.assign(entry, fields, { updatedAt: now });
    } else {
      entry = {
        id: this.state.nextProcessId++,
        alias: declaration.alias,
        ...fields,
        createdAt: now,
        updatedAt: now,
      };
      host.processes.push(entry);
    }
    if (declaration.cwd === undefined) delete entry.cwd;
    else entry.cwd = declaration.cwd;
    if (declaration.env === undefined) delete entry.env;
    else entry.env = { ...declaration.env };
    this.save();
    return this.view(declaration.hostId, entry, now);
  }

  /** The id of the process `alias` on `hostId`. @throws AgentProcessNotFoundError */
  processId(hostId: number, alias: string): number {
    const entry = this.host(hostId).processes.find((p) => p.alias === alias);
    if (!entry) throw new AgentProcessNotFoundError(hostId, alias);
    return entry.id;
  }

  /** Hosts with declared processes. */
  hostIds(): number[] {
    return Object.keys(this.state.hosts).map(Number);
  }

  /** {@inheritDoc HostAgent.listProcesses} */
  listProcesses(hostId: number, options: AgentCallOptions = {}): Promise<HostAgentProcess[]> {
    return this.call(options, () => {
      const host = this.host(hostId);
      const now = Date.now();
      let changed = false;
      for (const entry of host.processes) changed = this.refresh(entry, now) || changed;
      if (changed) this.save();
      return host.processes.map((entry) => this.view(hostId, entry, now));
    });
  }

  /** {@inheritDoc HostAgent.stopProcess} */
  stopProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.call(options, () => {
      const entry = this.processOf(hostId, processId);
      return this.locked(entry.id, async () => {
        await this.stop(hostId, entry, options.signal);
        return this.view(hostId, entry, Date.now());
      });
    });
  }

  /** {@inheritDoc HostAgent.startProcess} */
  startProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.call(options, () => {
      const entry = this.processOf(hostId, processId);
      return this.locked(entry.id, async () => {
        await this.start(hostId, entry, options.signal);
        return this.view(hostId, entry, Date.now());
      });
    });
  }

  /** {@inheritDoc HostAgent.restartProcess} */
  restartProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.call(options, () => {
      const entry = this.processOf(hostId, processId);
      return this.locked(entry.id, async () => {
        await this.stop(hostId, entry, options.signal);
        await this.start(hostId, entry, options.signal);
        return this.view(hostId, entry, Date.now());
      });
    });
  }

  /** {@inheritDoc HostAgent.markOperation} */
  markOperation(
    hostId: number,
    owner: string,
    options: AgentCallOptions = {},
  ): Promise<HostOperationMark> {
    return this.call(options, () => {
      const host = this.host(hostId);
      const mark = takeMark(hostId, host.mark, owner, Date.now());
      if (mark !== host.mark) {
        host.mark = mark;
        this.save();
      }
      return markView(hostId, mark, this.options.utcOffsetMinutes);
    });
  }

  /** {@inheritDoc HostAgent.clearOperation} */
  clearOperation(hostId: number, owner: string, options: AgentCallOptions = {}): Promise<boolean> {
    return this.call(options, () => {
      const host = this.host(hostId);
      if (!mayClear(host.mark, owner)) return false;
      delete host.mark;
      this.save();
      return true;
    });
  }

  /** {@inheritDoc HostAgent.getOperation} */
  getOperation(
    hostId: number,
    options: AgentCallOptions = {},
  ): Promise<HostOperationMark | undefined> {
    return this.call(options, () => {
      const { mark } = this.host(hostId);
      return mark && markView(hostId, mark, this.options.utcOffsetMinutes);
    });
  }

  /** {@inheritDoc HostAgent.recordOperationNote} */
  recordOperationNote(
    hostId: number,
    owner: string,
    key: string,
    values: readonly string[],
    options: AgentCallOptions = {},
  ): Promise<readonly string[]> {
    return this.call(options, () => {
      const host = this.host(hostId);
      const had = host.mark !== undefined && Object.hasOwn(host.mark.notes, key);
      const stored = addNote(hostId, host.mark, owner, key, values);
      if (!had) this.save();
      return stored;
    });
  }

  /** Runs `body` unless the signal has aborted; anything it throws becomes a rejection. */
  private call<T>(options: AgentCallOptions, body: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve) => {
      checkAborted(options.signal);
      resolve(body());
    });
  }

  /** Runs `body` after every earlier locked call on the same process has ended. */
  private locked<T>(processId: number, body: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(processId) ?? Promise.resolve();
    const next = previous.then(body, body);
    const settled = next.catch(() => undefined);
    this.locks.set(processId, settled);
    void settled.then(() => {
      if (this.locks.get(processId) === settled) this.locks.delete(processId);
    });
    return next;
  }

  private host(hostId: number): HostState {
    const host = Object.hasOwn(this.state.hosts, String(hostId))
      ? this.state.hosts[String(hostId)]
      : undefined;
    if (!host) throw new HostNotFoundError(hostId);
    return host;
  }

  private processOf(hostId: number, processId: number): ProcessState {
    const entry = this.host(hostId).processes.find((p) => p.id === processId);
    if (!entry) throw new AgentProcessNotFoundError(hostId, processId);
    return entry;
  }

  /**
   * Checks that the recorded process still runs: same pid, same identity, not a zombie. Drops
   * the run record otherwise; returns whether the state changed.
   */
  private refresh(entry: ProcessState, now: number): boolean {
    const { run } = entry;
    if (!run) return false;
    if (isRunning(run)) {
      entry.lastActiveAt = now;
      return false;
    }
    delete entry.run;
    entry.updatedAt = now;
    return true;
  }

  private async stop(hostId: number, entry: ProcessState, signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    if (this.refresh(entry, now)) this.save();
    const { run } = entry;
    if (!run) return;
    if (sendSignal(hostId, entry.alias, run, 'SIGTERM')) {
      if (!(await waitUntilGone(run, this.options.stopGracePeriodMs, signal))) {
        if (sendSignal(hostId, entry.alias, run, 'SIGKILL')) {
          if (!(await waitUntilGone(run, this.options.killTimeoutMs, signal))) {
            throw new AgentOperationError(
              hostId,
              'stop',
              entry.alias,
              `pid ${run.pid} is still there ${this.options.killTimeoutMs} ms after SIGKILL`,
            );
          }
        }
      }
    }
    delete entry.run;
    entry.lastActiveAt = Date.now();
    entry.updatedAt = entry.lastActiveAt;
    this.save();
  }

  private async start(hostId: number, entry: ProcessState, signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    if (this.refresh(entry, now)) this.save();
    if (entry.run) return;
    checkAborted(signal);
    const [command, ...args] = entry.argv as [string, ...string[]];
    mkdirSync(dirname(entry.logFile), { recursive: true });
    const log = openSync(entry.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        shell: false,
        detached: true,
        stdio: ['ignore', log, log],
        ...(entry.cwd === undefined ? {} : { cwd: entry.cwd }),
        ...(entry.env === undefined ? {} : { env: entry.env }),
      });
    } catch (error) {
      throw new AgentOperationError(hostId, 'start', entry.alias, `cannot spawn ${command}`, {
        cause: error,
      });
    } finally {
      closeSync(log);
    }
    // Both are emitted once, after spawn returned; a missing executable emits 'error'.
    child.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (error) {
      throw new AgentOperationError(
        hostId,
        'start',
        entry.alias,
        `cannot spawn ${command}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const pid = child.pid as number;
    const probe = probeProcess(pid);
    if (probe.state !== 'running') {
      throw new AgentOperationError(
        hostId,
        'start',
        entry.alias,
        `pid ${pid} exited at once; see ${entry.logFile}`,
      );
    }
    registerChild(child, pid, probe.identity);
    child.unref();
    const startedAt = Date.now();
    entry.run = { pid, ...probe.identity, startedAt, user: this.user };
    entry.lastActiveAt = startedAt;
    entry.updatedAt = startedAt;
    this.save();
  }

  private view(hostId: number, entry: ProcessState, now: number): HostAgentProcess {
    const { run } = entry;
    const time = (ms: number) => formatAgentTime(ms, this.options.utcOffsetMinutes);
    return {
      alias: entry.alias,
      createTime: time(entry.createdAt),
      elapsedTime: run ? Math.max(0, Math.floor((now - run.startedAt) / 1000)) : 0,
      hostId,
      id: entry.id,
      lastActiveTime: entry.lastActiveAt === undefined ? null : time(entry.lastActiveAt),
      logFilePattern: `${entry.logFile}*`,
      operable: entry.operable,
      pid: run ? run.pid : 0,
      ports: run && entry.ports.length > 0 ? entry.ports.join(',') : null,
      startCommand: run ? renderCommand(entry.argv) : null,
      status: run ? AgentProcessStatus.STARTED : AgentProcessStatus.STOPPED,
      updateTime: time(entry.updatedAt),
      user: run ? run.user : null,
    };
  }

  private save(): void {
    writeJsonFileAtomic(this.statePath, this.state);
  }
}

/** argv as one line for display (`startCommand`); arguments with special characters quoted. */
function renderCommand(argv: readonly string[]): string {
  return argv
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

function invalidOption(option: string, expected: string, value: unknown): DagopsError {
  return new DagopsError(
    ErrorCode.OPTIONS_INVALID,
    `LocalProcessAgent option ${option} must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    { target: option },
  );
}

/** Applies defaults and checks every option, naming the option and the value received. */
function resolveLocalAgentOptions(options: LocalProcessAgentOptions): ResolvedOptions {
  const { stateDir } = options as { stateDir?: unknown };
  if (typeof stateDir !== 'string' || stateDir.length === 0) {
    throw invalidOption('stateDir', 'a non-empty path', stateDir);
  }
  const stopGracePeriodMs = options.stopGracePeriodMs ?? 10_000;
  if (!Number.isSafeInteger(stopGracePeriodMs) || stopGracePeriodMs < 0) {
    throw invalidOption('stopGracePeriodMs', 'a non-negative integer', stopGracePeriodMs);
  }
  const killTimeoutMs = options.killTimeoutMs ?? 5_000;
  if (!Number.isSafeInteger(killTimeoutMs) || killTimeoutMs < 0) {
    throw invalidOption('killTimeoutMs', 'a non-negative integer', killTimeoutMs);
  }
  const offset = options.utcOffsetMinutes;
  if (offset !== undefined && (!Number.isInteger(offset) || Math.abs(offset) > 18 * 60)) {
    throw invalidOption('utcOffsetMinutes', 'an integer within ±1080', offset);
  }
  return {
    stateDir: isAbsolute(stateDir) ? stateDir : resolve(stateDir),
    stopGracePeriodMs,
    killTimeoutMs,
    utcOffsetMinutes: offset,
  };
}

function loadState(path: string): StateFile {
  const raw = readJsonFile(path);
  if (raw === undefined) return { version: 1, nextProcessId: 1, hosts: {} };
  const state = raw as Partial<StateFile>;
  if (
    state.version !== 1 ||
    !Number.isSafeInteger(state.nextProcessId) ||
    typeof state.hosts !== 'object' ||
    state.hosts === null
  ) {
    throw new DagopsError(
      ErrorCode.OPTIONS_INVALID,
      `${path} is not a LocalProcessAgent state file (version 1)`,
      { target: 'stateDir' },
    );
  }
  return state as StateFile;
}
