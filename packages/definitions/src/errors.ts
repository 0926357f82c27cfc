import { DagopsError, ErrorCode } from '@dagops/engine';

/** No host with this id is known to the agent. `DagopsError` 20000 (HTTP 404). */
export class HostNotFoundError extends DagopsError {
  override name = 'HostNotFoundError';
  /** The id that was asked for. */
  readonly hostId: number;

  constructor(hostId: number) {
    super(ErrorCode.TASK_NOT_FOUND, `host ${hostId} does not exist`, {
      target: 'hostId',
      nonRetryable: true,
    });
    this.hostId = hostId;
  }
}

/** The host has no agent process with this id (or alias). `DagopsError` 20000 (HTTP 404). */
export class AgentProcessNotFoundError extends DagopsError {
  override name = 'AgentProcessNotFoundError';
  /** The host that was searched. */
  readonly hostId: number;
  /** The process id (or alias) that was asked for. */
  readonly agentProcess: number | string;

  constructor(hostId: number, agentProcess: number | string) {
    const what =
      typeof agentProcess === 'number'
        ? `agent process ${agentProcess}`
        : `agent process ${JSON.stringify(agentProcess)}`;
    super(ErrorCode.TASK_NOT_FOUND, `${what} does not exist on host ${hostId}`, {
      target: typeof agentProcess === 'number' ? 'agentProcessId' : 'alias',
      nonRetryable: true,
    });
    this.hostId = hostId;
    this.agentProcess = agentProcess;
  }
}

/**
 * The host is under another operation (its mark is held by another owner), or an operation
 * that should hold the mark does not. `DagopsError` 20003 (HTTP 409).
 */
export class HostOperationConflictError extends DagopsError {
  override name = 'HostOperationConflictError';
  /** The contested host. */
  readonly hostId: number;
  /** Who asked. */
  readonly owner: string;
  /** Who holds the mark; undefined when nobody does. */
  readonly heldBy: string | undefined;

  constructor(hostId: number, owner: string, heldBy: string | undefined) {
    super(
      ErrorCode.TASK_STATE_INVALID,
      heldBy === undefined
        ? `host ${hostId} is not marked for ${owner}: its operation mark is gone`
        : `host ${hostId} is under another operation (${heldBy}); ${owner} is refused`,
      { target: 'hostId' },
    );
    this.hostId = hostId;
    this.owner = owner;
    this.heldBy = heldBy;
  }
}

/** The process may not be operated by users (`operable: false`). `DagopsError` 20003 (HTTP 409). */
export class AgentProcessNotOperableError extends DagopsError {
  override name = 'AgentProcessNotOperableError';
  /** The host. */
  readonly hostId: number;
  /** The process that was asked for. */
  readonly agentProcessId: number;
  /** Its alias. */
  readonly alias: string;

  constructor(hostId: number, agentProcessId: number, alias: string) {
    super(
      ErrorCode.TASK_STATE_INVALID,
      `agent process ${agentProcessId} (${alias}) on host ${hostId} is not operable`,
      { target: 'agentProcessId', nonRetryable: true },
    );
    this.hostId = hostId;
    this.agentProcessId = agentProcessId;
    this.alias = alias;
  }
}

/** The action an {@link AgentOperationError} was about. */
export type AgentAction = 'list' | 'stop' | 'start' | 'restart' | 'mark' | 'clear' | 'note';

/**
 * A host agent could not carry out an action: a start command that cannot be spawned, a
 * process that exited at once, a signal that could not be sent, an injected fault.
 * `DagopsError` 20040 (`AGENT_OPERATION_FAILED`, HTTP 500); retryable by policy.
 */
export class AgentOperationError extends DagopsError {
  override name = 'AgentOperationError';
  /** The host. */
  readonly hostId: number;
  /** What was attempted. */
  readonly action: AgentAction;
  /** The process alias, when the action was about one. */
  readonly alias: string | undefined;

  constructor(
    hostId: number,
    action: AgentAction,
    alias: string | undefined,
    message: string,
    options: { readonly cause?: unknown } = {},
  ) {
    const subject = alias === undefined ? `host ${hostId}` : `${alias} on host ${hostId}`;
    super(ErrorCode.AGENT_OPERATION_FAILED, `${action} ${subject} failed: ${message}`, {
      target: alias ?? 'hostId',
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.hostId = hostId;
    this.action = action;
    this.alias = alias;
  }
}
