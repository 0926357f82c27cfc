import { DagopsError, ErrorCode } from '@dagops/engine';
import {
  AgentOperationError,
  AgentProcessNotFoundError,
  HostNotFoundError,
  type AgentAction,
} from './errors.js';
import {
  AgentProcessStatus,
  OCP_AGENT_PROCESS_ALIASES,
  type AgentCallOptions,
  type HostAgent,
  type HostAgentProcess,
  type HostOperationMark,
} from './host-agent.js';
import { checkAborted, hang, sleep } from './internal/abortable.js';
import { formatAgentTime } from './internal/agent-time.js';
import {
  addNote,
  markView,
  mayClear,
  takeMark,
  type MarkRecord,
} from './internal/operation-marks.js';
import { seededRandom } from './internal/seeded-random.js';

/** What an injected fault does to a call. */
export const FaultKind = {
  /** The call rejects with a {@link SimulatedFaultError}. */
  FAIL: 'fail',
  /** The call never settles, until its signal aborts. */
  HANG: 'hang',
  /** The call takes `delayMs` longer. */
  SLOW: 'slow',
} as const;
/** One of the {@link FaultKind} values. */
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

/** A fault rule: which calls it hits (absent fields match anything) and what it does. */
export interface SimulatedFault {
  /** What it does. */
  readonly kind: FaultKind;
  /** Only calls about this host. */
  readonly hostId?: number;
  /** Only calls about this process (stop, start, restart). */
  readonly alias?: string;
  /** Only this action. */
  readonly action?: AgentAction;
  /** Extra latency of a `slow` fault. @default 1000 */
  readonly delayMs?: number;
  /**
   * For `fail`: the call takes effect, then rejects (a lost reply), as a real agent may.
   * @default false
   */
  readonly afterEffect?: boolean;
  /** How many calls it hits before it is used up. @default Infinity */
  readonly times?: number;
}

/** A fault that hit a call: which call, and how. */
export interface InjectedFault {
  readonly kind: FaultKind;
  readonly action: AgentAction;
  readonly hostId: number;
  readonly alias: string | undefined;
  readonly afterEffect: boolean;
  /** Whether it came from the random fault rate (not from a rule). */
  readonly random: boolean;
}

/** Options of a {@link SimulatedAgent}. */
export interface SimulatedAgentOptions {
  /** Number of hosts, with ids `firstHostId`, `firstHostId + 1`, …; ignored with `hostIds`. @default 1 */
  readonly hostCount?: number;
  /** Id of the first host. @default 1 */
  readonly firstHostId?: number;
  /** The hosts' ids, when they are not consecutive. */
  readonly hostIds?: readonly number[];
  /** The processes of every host, all STARTED and operable at first. @default the five OCP agent processes */
  readonly aliases?: readonly string[];
  /** Latency of every call: fixed, or uniform in `[min, max]`. @default 0 */
  readonly latencyMs?: number | { readonly min: number; readonly max: number };
  /** Probability that a call of `randomFaultActions` fails (half of them after their effect). @default 0 */
  readonly randomFaultRate?: number;
  /** The actions random faults may hit. @default every action that changes something */
  readonly randomFaultActions?: readonly AgentAction[];
  /** Seed of the random latency and faults: the same seed gives the same run. @default 1 */
  readonly seed?: number;
  /** UTC offset of the times in records, minutes east. @default this process's offset */
  readonly utcOffsetMinutes?: number;
  /** Time source (epoch ms). @default Date.now */
  readonly now?: () => number;
}

/** A call failed because a fault was injected. */
export class SimulatedFaultError extends AgentOperationError {
  override name = 'SimulatedFaultError';
}

interface SimProcess {
  readonly id: number;
  readonly alias: string;
  status: AgentProcessStatus;
  pid: number;
  operable: boolean;
  startedAt: number;
  lastActiveAt: number | undefined;
  readonly createdAt: number;
  updatedAt: number;
}

interface SimHost {
  readonly processes: SimProcess[];
  mark: MarkRecord | undefined;
}

interface FaultRule extends SimulatedFault {
  remaining: number;
}

const SIM_PORTS: Readonly<Record<string, string>> = {
  ocp_agentd: '62888',
  ocp_monagent: '62889',
  ocp_mgragent: '62890',
  pos_proxy: '2022',
};

const CHANGING_ACTIONS: readonly AgentAction[] = [
  'stop',
  'start',
  'restart',
  'mark',
  'clear',
  'note',
];

function checkOption(ok: boolean, option: string, expected: string, value: unknown): void {
  if (!ok) {
    throw new DagopsError(
      ErrorCode.OPTIONS_INVALID,
      `SimulatedAgent option ${option} must be ${expected}, got ${JSON.stringify(value)}`,
      { target: option },
    );
  }
}

/**
 * An in-memory fleet behind the {@link HostAgent} interface, for tests and benchmarks of large
 * fleets: N hosts with the five OCP agent processes each, injectable latency, and injectable
 * faults per host, process and action (fail, hang, slow), plus a seeded random fault rate.
 *
 * @example
 * const agent = new SimulatedAgent({ hostCount: 1000, randomFaultRate: 0.01, seed: 7 });
 * agent.injectFault({ kind: 'fail', hostId: 3, action: 'stop', alias: 'obstat2' });
 */
export class SimulatedAgent implements HostAgent {
  private readonly hosts = new Map<number, SimHost>();
  private readonly rules: FaultRule[] = [];
  private readonly injected: InjectedFault[] = [];
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly latency: { readonly min: number; readonly max: number };
  private readonly offset: number | undefined;
  private readonly randomActions: ReadonlySet<AgentAction>;
  private faultRate: number;
  private nextPid = 10_000;
  private calls = 0;

  constructor(options: SimulatedAgentOptions = {}) {
    const hostCount = options.hostCount ?? 1;
    const first = options.firstHostId ?? 1;
    checkOption(
      Number.isSafeInteger(hostCount) && hostCount >= 0,
      'hostCount',
      'a non-negative integer',
      hostCount,
    );
    checkOption(
      Number.isSafeInteger(first) && first > 0,
      'firstHostId',
      'a positive integer',
      first,
    );
    const ids = options.hostIds ?? Array.from({ length: hostCount }, (_, i) => first + i);
    for (const id of ids) {
      checkOption(Number.isSafeInteger(id) && id > 0, 'hostIds', 'positive integers', id);
    }
    const rate = options.randomFaultRate ?? 0;
    checkOption(rate >= 0 && rate <= 1, 'randomFaultRate', 'within [0, 1]', rate);
    const latency =
      typeof options.latencyMs === 'object'
        ? options.latencyMs
        : { min: options.latencyMs ?? 0, max: options.latencyMs ?? 0 };
    checkOption(
      latency.min >= 0 && latency.max >= latency.min,
      'latencyMs',
      'a non-negative number or {min, max} with min <= max',
      options.latencyMs,
    );
    this.latency = latency;
    this.faultRate = rate;
    this.randomActions = new Set(options.randomFaultActions ?? CHANGING_ACTIONS);
    this.random = seededRandom(options.seed ?? 1);
    this.now = options.now ?? Date.now;
    this.offset = options.utcOffsetMinutes;
    const aliases = options.aliases ?? OCP_AGENT_PROCESS_ALIASES;
    const now = this.now();
    let processId = 1;
    for (const hostId of ids) {
      this.hosts.set(hostId, {
        mark: undefined,
        processes: aliases.map((alias) => ({
          id: processId++,
          alias,
          status: AgentProcessStatus.STARTED,
          pid: this.nextPid++,
          operable: true,
          startedAt: now,
          lastActiveAt: now,
          createdAt: now,
          updatedAt: now,
        })),
      });
    }
  }

  /** The hosts' ids. */
  hostIds(): number[] {
    return [...this.hosts.keys()];
  }

  /** Adds a fault rule; it hits matching calls until used up or {@link clearFaults}. */
  injectFault(fault: SimulatedFault): void {
    this.rules.push({ ...fault, remaining: fault.times ?? Infinity });
  }

  /** Removes every fault rule and sets the random fault rate to 0. */
  clearFaults(): void {
    this.rules.length = 0;
    this.faultRate = 0;
  }

  /** Sets the random fault rate. */
  setRandomFaultRate(rate: number): void {
    checkOption(rate >= 0 && rate <= 1, 'randomFaultRate', 'within [0, 1]', rate);
    this.faultRate = rate;
  }

  /** Every fault that hit a call so far, in order. */
  injectedFaults(): readonly InjectedFault[] {
    return [...this.injected];
  }

  /** Number of calls so far. */
  callCount(): number {
    return this.calls;
  }

  /** Sets a process's status directly (no latency, no faults): for arranging a test fleet. */
  setProcessStatus(hostId: number, alias: string, status: AgentProcessStatus): void {
    const proc = this.byAlias(hostId, alias);
    if (proc.status !== status) this.apply(proc, status);
  }

  /** Sets whether users may operate a process. */
  setOperable(hostId: number, alias: string, operable: boolean): void {
    this.byAlias(hostId, alias).operable = operable;
  }

  /** Every host's process statuses, `{hostId: {alias: status}}`: for comparing fleets. */
  fleetState(): Record<string, Record<string, AgentProcessStatus>> {
    const state: Record<string, Record<string, AgentProcessStatus>> = {};
    for (const [hostId, host] of this.hosts) {
      state[hostId] = Object.fromEntries(host.processes.map((p) => [p.alias, p.status]));
    }
    return state;
  }

  /** Every mark currently held. */
  marks(): HostOperationMark[] {
    const marks: HostOperationMark[] = [];
    for (const [hostId, host] of this.hosts) {
      if (host.mark) marks.push(markView(hostId, host.mark, this.offset));
    }
    return marks;
  }

  /** {@inheritDoc HostAgent.listProcesses} */
  listProcesses(hostId: number, options: AgentCallOptions = {}): Promise<HostAgentProcess[]> {
    return this.call('list', hostId, undefined, options, (host) => {
      const now = this.now();
      return host.processes.map((p) => this.view(hostId, p, now));
    });
  }

  /** {@inheritDoc HostAgent.stopProcess} */
  stopProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.processCall('stop', hostId, processId, options, (p) => {
      if (p.status === AgentProcessStatus.STARTED) this.apply(p, AgentProcessStatus.STOPPED);
    });
  }

  /** {@inheritDoc HostAgent.startProcess} */
  startProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.processCall('start', hostId, processId, options, (p) => {
      if (p.status === AgentProcessStatus.STOPPED) this.apply(p, AgentProcessStatus.STARTED);
    });
  }

  /** {@inheritDoc HostAgent.restartProcess} */
  restartProcess(
    hostId: number,
    processId: number,
    options: AgentCallOptions = {},
  ): Promise<HostAgentProcess> {
    return this.processCall('restart', hostId, processId, options, (p) => {
      if (p.status === AgentProcessStatus.STARTED) this.apply(p, AgentProcessStatus.STOPPED);
      this.apply(p, AgentProcessStatus.STARTED);
    });
  }

  /** {@inheritDoc HostAgent.markOperation} */
  markOperation(
    hostId: number,
    owner: string,
    options: AgentCallOptions = {},
  ): Promise<HostOperationMark> {
    return this.call('mark', hostId, undefined, options, (host) => {
      host.mark = takeMark(hostId, host.mark, owner, this.now());
      return markView(hostId, host.mark, this.offset);
    });
  }

  /** {@inheritDoc HostAgent.clearOperation} */
  clearOperation(hostId: number, owner: string, options: AgentCallOptions = {}): Promise<boolean> {
    return this.call('clear', hostId, undefined, options, (host) => {
      if (!mayClear(host.mark, owner)) return false;
      host.mark = undefined;
      return true;
    });
  }

  /** {@inheritDoc HostAgent.getOperation} Never faulted: it only reads. */
  getOperation(
    hostId: number,
    options: AgentCallOptions = {},
  ): Promise<HostOperationMark | undefined> {
    return new Promise((resolve) => {
      checkAborted(options.signal);
      const { mark } = this.host(hostId);
      resolve(mark && markView(hostId, mark, this.offset));
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
    return this.call('note', hostId, undefined, options, (host) =>
      addNote(hostId, host.mark, owner, key, values),
    );
  }

  private async processCall(
    action: AgentAction,
    hostId: number,
    processId: number,
    options: AgentCallOptions,
    effect: (p: SimProcess) => void,
  ): Promise<HostAgentProcess> {
    const found = this.host(hostId).processes.find((p) => p.id === processId);
    if (!found) throw new AgentProcessNotFoundError(hostId, processId);
    return this.call(action, hostId, found.alias, options, () => {
      effect(found);
      return this.view(hostId, found, this.now());
    });
  }

  /** One call: latency, then the matching fault if any, then the effect. */
  private async call<T>(
    action: AgentAction,
    hostId: number,
    alias: string | undefined,
    options: AgentCallOptions,
    effect: (host: SimHost) => T,
  ): Promise<T> {
    const { signal } = options;
    checkAborted(signal);
    this.calls++;
    const host = this.host(hostId);
    const fault = this.pickFault(action, hostId, alias);
    const { min, max } = this.latency;
    let delay = max > min ? min + (max - min) * this.random() : min;
    if (fault?.kind === FaultKind.SLOW) delay += fault.delayMs ?? 1000;
    if (delay > 0) await sleep(delay, signal);
    if (fault?.kind === FaultKind.HANG) await hang(signal);
    const fail = () =>
      new SimulatedFaultError(
        hostId,
        action,
        alias,
        `injected fault${fault?.afterEffect ? ' (after the effect)' : ''}`,
      );
    if (fault?.kind === FaultKind.FAIL && !fault.afterEffect) throw fail();
    const result = effect(host);
    if (fault?.kind === FaultKind.FAIL) throw fail();
    return result;
  }

  private pickFault(
    action: AgentAction,
    hostId: number,
    alias: string | undefined,
  ): SimulatedFault | undefined {
    const rule = this.rules.find(
      (r) =>
        r.remaining > 0 &&
        (r.hostId === undefined || r.hostId === hostId) &&
        (r.action === undefined || r.action === action) &&
        (r.alias === undefined || r.alias === alias),
    );
    let fault: SimulatedFault | undefined = rule;
    let random = false;
    if (rule) {
      rule.remaining--;
    } else if (
      this.faultRate > 0 &&
      this.randomActions.has(action) &&
      this.random() < this.faultRate
    ) {
      fault = { kind: FaultKind.FAIL, afterEffect: this.random() < 0.5 };
      random = true;
    }
    if (fault) {
      this.injected.push({
        kind: fault.kind,
        action,
        hostId,
        alias,
        afterEffect: fault.kind === FaultKind.FAIL && fault.afterEffect === true,
        random,
      });
    }
    return fault;
  }

  private apply(p: SimProcess, status: AgentProcessStatus): void {
    const now = this.now();
    p.status = status;
    p.updatedAt = now;
    p.lastActiveAt = now;
    if (status === AgentProcessStatus.STARTED) {
      p.pid = this.nextPid++;
      p.startedAt = now;
    } else {
      p.pid = 0;
    }
  }

  private host(hostId: number): SimHost {
    const host = this.hosts.get(hostId);
    if (!host) throw new HostNotFoundError(hostId);
    return host;
  }

  private byAlias(hostId: number, alias: string): SimProcess {
    const found = this.host(hostId).processes.find((p) => p.alias === alias);
    if (!found) throw new AgentProcessNotFoundError(hostId, alias);
    return found;
  }

  private view(hostId: number, p: SimProcess, now: number): HostAgentProcess {
    const running = p.status === AgentProcessStatus.STARTED;
    const time = (ms: number) => formatAgentTime(ms, this.offset);
    return {
      alias: p.alias,
      createTime: time(p.createdAt),
      elapsedTime: running ? Math.max(0, Math.floor((now - p.startedAt) / 1000)) : 0,
      hostId,
      id: p.id,
      lastActiveTime: p.lastActiveAt === undefined ? null : time(running ? now : p.lastActiveAt),
      logFilePattern: `/home/admin/ocp_agent/log/${p.alias}.log*`,
      operable: p.operable,
      pid: running ? p.pid : 0,
      ports: running && Object.hasOwn(SIM_PORTS, p.alias) ? (SIM_PORTS[p.alias] as string) : null,
      startCommand: running ? `/home/admin/ocp_agent/bin/${p.alias}` : null,
      status: p.status,
      updateTime: time(p.updatedAt),
      user: running ? 'admin' : null,
    };
  }
}
