import {
  TaskArgumentsError,
  type Handler,
  type HandlerContext,
  type HandlerRegistry,
} from '@dagops/engine';
import { AgentClassName } from './agent-class-names.js';
import { HOST_ID_KEY, HOST_IDS_KEY } from './agent-templates.js';
import { AgentProcessNotFoundError } from './errors.js';
import {
  AgentProcessStatus,
  POS_PROXY_ALIAS,
  type HostAgent,
  type HostAgentProcess,
} from './host-agent.js';

/**
 * Context lists the handlers write, entries `<hostId>/<alias>` (Restart pos proxy:
 * `<hostId>/<alias>:<status before>`). Lists of sibling branches are united downstream, so every
 * entry names its host.
 */
export const AgentContextKey = {
  /** What Stop all stopped (or found stopped after an earlier attempt stopped it). */
  STOPPED_PROCESSES: 'stopped_agent_processes',
  /** What Start all started. */
  STARTED_PROCESSES: 'started_agent_processes',
  /** What Restart pos proxy restarted, with its status before. */
  RESTARTED_PROCESSES: 'restarted_agent_processes',
} as const;
/** One of the {@link AgentContextKey} values. */
export type AgentContextKey = (typeof AgentContextKey)[keyof typeof AgentContextKey];

/** The owner token of a task's operation marks: `task:<taskId>`. */
export function operationOwner(taskId: number): string {
  return `task:${taskId}`;
}

/** The host a subtask works on: `host_id`, or its branch's element of `host_ids`. */
function hostOf(ctx: HandlerContext): number {
  const raw = ctx.get(HOST_ID_KEY, HOST_IDS_KEY);
  const id = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(id) || id <= 0 || String(id) !== raw) {
    throw new TaskArgumentsError(`(${ctx.nodeKey})`, [
      {
        path: `${HOST_ID_KEY} / ${HOST_IDS_KEY}[${ctx.parallelIdx}]`,
        message: 'must be a positive integer host id',
        value: raw,
      },
    ]);
  }
  return id;
}

/** The mark note a step keeps its plan under; stable across the subtask's retries and rollback. */
const noteKey = (step: string, ctx: HandlerContext) => `${step}:${ctx.subtaskId}`;

const entry = (hostId: number, alias: string) => `${hostId}/${alias}`;

/** The aliases of `hostId` in a context list of `<hostId>/<alias>` entries. */
function aliasesOf(list: readonly string[], hostId: number): string[] {
  const prefix = `${hostId}/`;
  return list.filter((item) => item.startsWith(prefix)).map((item) => item.slice(prefix.length));
}

function byAlias(hostId: number, processes: readonly HostAgentProcess[], alias: string) {
  const found = processes.find((p) => p.alias === alias);
  if (!found) throw new AgentProcessNotFoundError(hostId, alias);
  return found;
}

/**
 * What a step set out to change, for its rollback: its own context output when it succeeded,
 * else (a failed attempt's output is never saved) the plan it noted in the host's mark before
 * changing anything. No note means the step changed nothing.
 */
async function recordedPlan(
  agent: HostAgent,
  ctx: HandlerContext,
  hostId: number,
  key: AgentContextKey,
  step: string,
): Promise<readonly string[]> {
  const list = ctx.getList(key);
  if (list !== undefined) return aliasesOf(list, hostId);
  const mark = await agent.getOperation(hostId, { signal: ctx.signal });
  const note =
    mark?.owner === operationOwner(ctx.taskId) ? mark.notes[noteKey(step, ctx)] : undefined;
  if (note === undefined) ctx.log(`host ${hostId}: nothing was changed, nothing to undo`);
  return note ?? [];
}

/** Prepare (stop or restart): takes the host's operation mark; rollback releases it. */
function prepareHandler(agent: HostAgent): Handler {
  return {
    async execute(ctx) {
      const hostId = hostOf(ctx);
      const owner = operationOwner(ctx.taskId);
      const mark = await agent.markOperation(hostId, owner, { signal: ctx.signal });
      ctx.log(`host ${hostId}: marked for ${owner} since ${mark.markedAt}`);
    },
    async rollback(ctx) {
      const hostId = hostOf(ctx);
      const owner = operationOwner(ctx.taskId);
      const cleared = await agent.clearOperation(hostId, owner, { signal: ctx.signal });
      ctx.log(`host ${hostId}: ${cleared ? 'mark cleared' : `no mark of ${owner} to clear`}`);
    },
  };
}

/** Finish: releases the host's operation mark; rollback takes it again. */
function finishHandler(agent: HostAgent): Handler {
  return {
    async execute(ctx) {
      const hostId = hostOf(ctx);
      const owner = operationOwner(ctx.taskId);
      const cleared = await agent.clearOperation(hostId, owner, { signal: ctx.signal });
      ctx.log(`host ${hostId}: ${cleared ? 'mark cleared' : `no mark of ${owner} left to clear`}`);
    },
    async rollback(ctx) {
      const hostId = hostOf(ctx);
      const owner = operationOwner(ctx.taskId);
      await agent.markOperation(hostId, owner, { signal: ctx.signal });
      ctx.log(`host ${hostId}: marked again for ${owner}`);
    },
  };
}

/**
 * Stop all / Start all: brings every operable process that is in `from` to the other status,
 * notes the plan in the mark before acting (so a re-execution finishes the same plan and a
 * failed attempt can be undone), and writes the plan to `key`. Rollback moves exactly those back.
 */
function bulkHandler(
  agent: HostAgent,
  step: string,
  from: AgentProcessStatus,
  key: AgentContextKey,
): Handler {
  const forward = (hostId: number, id: number, signal: AbortSignal) =>
    from === AgentProcessStatus.STARTED
      ? agent.stopProcess(hostId, id, { signal })
      : agent.startProcess(hostId, id, { signal });
  const backward = (hostId: number, id: number, signal: AbortSignal) =>
    from === AgentProcessStatus.STARTED
      ? agent.startProcess(hostId, id, { signal })
      : agent.stopProcess(hostId, id, { signal });
  const verb = from === AgentProcessStatus.STARTED ? 'stopped' : 'started';
  const undoVerb = from === AgentProcessStatus.STARTED ? 'started' : 'stopped';
  return {
    async execute(ctx) {
      const hostId = hostOf(ctx);
      const { signal } = ctx;
      const processes = await agent.listProcesses(hostId, { signal });
      const candidates = processes.filter((p) => p.operable && p.status === from);
      const plan = await agent.recordOperationNote(
        hostId,
        operationOwner(ctx.taskId),
        noteKey(step, ctx),
        candidates.map((p) => p.alias),
        { signal },
      );
      for (const alias of plan) {
        const proc = byAlias(hostId, processes, alias);
        if (proc.status !== from) {
          ctx.log(`host ${hostId}: ${alias} already ${verb}`);
          continue;
        }
        const after = await forward(hostId, proc.id, signal);
        ctx.log(`host ${hostId}: ${verb} ${alias} (pid ${proc.pid || after.pid})`);
      }
      ctx.setList(
        key,
        plan.map((alias) => entry(hostId, alias)),
      );
    },
    async rollback(ctx) {
      const hostId = hostOf(ctx);
      const { signal } = ctx;
      const plan = await recordedPlan(agent, ctx, hostId, key, step);
      if (plan.length === 0) return;
      const processes = await agent.listProcesses(hostId, { signal });
      for (const alias of plan) {
        const proc = byAlias(hostId, processes, alias);
        if (proc.status === from) continue;
        const after = await backward(hostId, proc.id, signal);
        ctx.log(`host ${hostId}: ${undoVerb} ${alias} again (pid ${after.pid || proc.pid})`);
      }
    },
  };
}

/**
 * Restart pos proxy: restarts `pos_proxy` (a stopped one is started). It notes the status and
 * pid it found first, so a re-execution does not restart twice; rollback returns `pos_proxy` to
 * the status it had (a restart of a running process cannot be undone beyond that).
 */
function restartPosProxyHandler(agent: HostAgent): Handler {
  const step = 'restart-pos-proxy';
  return {
    async execute(ctx) {
      const hostId = hostOf(ctx);
      const { signal } = ctx;
      const proc = byAlias(hostId, await agent.listProcesses(hostId, { signal }), POS_PROXY_ALIAS);
      const [before = ''] = await agent.recordOperationNote(
        hostId,
        operationOwner(ctx.taskId),
        noteKey(step, ctx),
        [`${proc.status}:${proc.pid}`],
        { signal },
      );
      const [status, pid] = before.split(':');
      const done =
        proc.status === AgentProcessStatus.STARTED &&
        (status === AgentProcessStatus.STOPPED || String(proc.pid) !== pid);
      if (done) {
        ctx.log(`host ${hostId}: ${POS_PROXY_ALIAS} already restarted (pid ${proc.pid})`);
      } else {
        const after = await agent.restartProcess(hostId, proc.id, { signal });
        ctx.log(`host ${hostId}: restarted ${POS_PROXY_ALIAS} (pid ${pid} -> ${after.pid})`);
      }
      ctx.setList(AgentContextKey.RESTARTED_PROCESSES, [
        `${entry(hostId, POS_PROXY_ALIAS)}:${status}`,
      ]);
    },
    async rollback(ctx) {
      const hostId = hostOf(ctx);
      const { signal } = ctx;
      const recorded = ctx.getList(AgentContextKey.RESTARTED_PROCESSES);
      let before: string | undefined;
      if (recorded !== undefined) {
        const [item] = aliasesOf(recorded, hostId);
        before = item?.slice(item.indexOf(':') + 1);
      } else {
        const mark = await agent.getOperation(hostId, { signal });
        const note =
          mark?.owner === operationOwner(ctx.taskId) ? mark.notes[noteKey(step, ctx)] : undefined;
        before = note?.[0]?.split(':')[0];
      }
      if (before === undefined) {
        ctx.log(`host ${hostId}: nothing was changed, nothing to undo`);
        return;
      }
      const proc = byAlias(hostId, await agent.listProcesses(hostId, { signal }), POS_PROXY_ALIAS);
      if (before === AgentProcessStatus.STOPPED && proc.status === AgentProcessStatus.STARTED) {
        await agent.stopProcess(hostId, proc.id, { signal });
        ctx.log(`host ${hostId}: stopped ${POS_PROXY_ALIAS} again, as it was`);
      } else if (
        before === AgentProcessStatus.STARTED &&
        proc.status === AgentProcessStatus.STOPPED
      ) {
        await agent.startProcess(hostId, proc.id, { signal });
        ctx.log(`host ${hostId}: started ${POS_PROXY_ALIAS} again, as it was`);
      }
    },
  };
}

/**
 * The handlers of every OCP agent className, working through `agent`. Each is idempotent
 * (execution is at-least-once), passes `ctx.signal` to every agent call, and takes the host from
 * `ctx.get('host_id', 'host_ids')`.
 */
export function createAgentHandlers(agent: HostAgent): Readonly<Record<AgentClassName, Handler>> {
  const prepare = prepareHandler(agent);
  return Object.freeze({
    [AgentClassName.PREPARE_STOP]: prepare,
    [AgentClassName.PREPARE_RESTART]: prepare,
    [AgentClassName.STOP_ALL]: bulkHandler(
      agent,
      'stop-all',
      AgentProcessStatus.STARTED,
      AgentContextKey.STOPPED_PROCESSES,
    ),
    [AgentClassName.START_ALL]: bulkHandler(
      agent,
      'start-all',
      AgentProcessStatus.STOPPED,
      AgentContextKey.STARTED_PROCESSES,
    ),
    [AgentClassName.RESTART_POS_PROXY]: restartPosProxyHandler(agent),
    [AgentClassName.FINISH]: finishHandler(agent),
  });
}

/**
 * Registers the OCP agent handlers (see {@link createAgentHandlers}) in `registry`; the Wait node
 * is built into the engine. Returns the registry.
 *
 * @example
 * const handlers = registerAgentHandlers(new HandlerRegistry(), new SimulatedAgent({ hostCount: 3 }));
 * const engine = new Engine({ handlers });
 */
export function registerAgentHandlers(
  registry: HandlerRegistry,
  agent: HostAgent,
): HandlerRegistry {
  for (const [className, handler] of Object.entries(createAgentHandlers(agent))) {
    registry.register(className, handler);
  }
  return registry;
}
