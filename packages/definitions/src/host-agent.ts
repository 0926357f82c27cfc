/**
 * What the OCP agent handlers need from a host: its agent processes, and an exclusive
 * operation mark. `LocalProcessAgent` implements it on this machine's processes,
 * `SimulatedAgent` on an in-memory fleet; a real deployment would implement it over SSH or the
 * host's agent API.
 */

/** Status of an agent process, spelled as OCP's `HostAgentProcess.status`. */
export const AgentProcessStatus = {
  STOPPED: 'STOPPED',
  STARTED: 'STARTED',
} as const;
/** Status of an agent process. */
export type AgentProcessStatus = (typeof AgentProcessStatus)[keyof typeof AgentProcessStatus];

/**
 * One agent process of a host, in the wire shape of OCP's `HostAgentProcess` (seed 003), keys
 * in the seed's order. A stopped process has `pid` 0 and `user`, `startCommand`, `ports` null.
 * Times are ISO-8601 to the second with the UTC offset (`2021-08-03T15:02:44+08:00`).
 */
export interface HostAgentProcess {
  /** Process alias, unique on its host, e.g. `obstat2`. */
  readonly alias: string;
  /** When the process was declared on the host. */
  readonly createTime: string;
  /** Seconds the process has been running; 0 when stopped. */
  readonly elapsedTime: number;
  /** The host it runs on. */
  readonly hostId: number;
  /** Agent process id, unique across hosts. */
  readonly id: number;
  /** When the process was last seen running; null if it never ran. */
  readonly lastActiveTime: string | null;
  /** Where its logs go, e.g. `/home/admin/ocp_agent/log/obstat2.log*`. */
  readonly logFilePattern: string | null;
  /** Whether users may stop and start it. */
  readonly operable: boolean;
  /** OS process id; 0 when stopped. */
  readonly pid: number;
  /** Ports it listens on, comma-separated; null when stopped or none declared. */
  readonly ports: string | null;
  /** The command it runs, for display; null when stopped. */
  readonly startCommand: string | null;
  /** `STARTED` or `STOPPED`. */
  readonly status: AgentProcessStatus;
  /** When the process last changed (declared, started, stopped). */
  readonly updateTime: string;
  /** The OS user it runs as; null when stopped. */
  readonly user: string | null;
}

/**
 * A host's operation mark: while it is held, no other operation may work on the host. `notes`
 * are what the operation's steps recorded under it (see {@link HostAgent.recordOperationNote}).
 */
export interface HostOperationMark {
  /** The marked host. */
  readonly hostId: number;
  /** Who holds the mark, e.g. `task:30443`. */
  readonly owner: string;
  /** When the mark was taken, ISO-8601 with the UTC offset. */
  readonly markedAt: string;
  /** Values recorded by the operation's steps, by key; first write wins. */
  readonly notes: Readonly<Record<string, readonly string[]>>;
}

/** Options of every {@link HostAgent} call. */
export interface AgentCallOptions {
  /**
   * Aborts the call: a call not yet started rejects at once, a waiting one (a process that is
   * slow to stop, a simulated hang) rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

/**
 * The operations the OCP agent handlers perform on a host. Every method rejects with
 * `HostNotFoundError` for an unknown host and `AgentProcessNotFoundError` for an unknown process
 * id (both `DagopsError`, code 20000). Stop, start and restart are idempotent on the resulting
 * state: stopping a stopped process or starting a started one changes nothing.
 */
export interface HostAgent {
  /** The host's agent processes, in declaration order. */
  listProcesses(hostId: number, options?: AgentCallOptions): Promise<HostAgentProcess[]>;
  /** Stops a process (no-op when stopped); resolves with its record once it is gone. */
  stopProcess(
    hostId: number,
    processId: number,
    options?: AgentCallOptions,
  ): Promise<HostAgentProcess>;
  /** Starts a process (no-op when started); resolves with its record once it runs. */
  startProcess(
    hostId: number,
    processId: number,
    options?: AgentCallOptions,
  ): Promise<HostAgentProcess>;
  /** Stops the process if it runs, then starts it. */
  restartProcess(
    hostId: number,
    processId: number,
    options?: AgentCallOptions,
  ): Promise<HostAgentProcess>;
  /**
   * Marks the host as under an operation owned by `owner`. Marking again by the same owner
   * returns the existing mark (execution is at-least-once); a mark held by another owner
   * rejects with `HostOperationConflictError` (`DagopsError` 20003).
   */
  markOperation(
    hostId: number,
    owner: string,
    options?: AgentCallOptions,
  ): Promise<HostOperationMark>;
  /**
   * Clears the host's mark if `owner` holds it, with its notes. Resolves with whether a mark was
   * cleared; a mark held by someone else is left alone.
   */
  clearOperation(hostId: number, owner: string, options?: AgentCallOptions): Promise<boolean>;
  /** The host's mark, if any. */
  getOperation(hostId: number, options?: AgentCallOptions): Promise<HostOperationMark | undefined>;
  /**
   * Records `values` under `key` in the mark `owner` holds, unless the key is already there:
   * first write wins, and the stored values are returned. Steps record what they are about to
   * change before changing it, so a re-execution or a rollback after a failed attempt (whose
   * context output is never saved) knows what the first attempt set out to do. Rejects with
   * `HostOperationConflictError` when `owner` does not hold the mark.
   */
  recordOperationNote(
    hostId: number,
    owner: string,
    key: string,
    values: readonly string[],
    options?: AgentCallOptions,
  ): Promise<readonly string[]>;
}

/** The five basic OCP agent processes of a host. */
export const OCP_AGENT_PROCESS_ALIASES = Object.freeze([
  'ocp_agentd',
  'ocp_monagent',
  'ocp_mgragent',
  'obstat2',
  'pos_proxy',
] as const);

/** The alias of the process that the Restart pos proxy step restarts. */
export const POS_PROXY_ALIAS = 'pos_proxy';
