import { randomUUID } from 'node:crypto';
import { TaskArgumentsError, type ValidationIssue } from '@dagops/engine';
import { AgentProcessNotFoundError, AgentProcessNotOperableError } from './errors.js';
import type { AgentCallOptions, HostAgent, HostAgentProcess } from './host-agent.js';

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/**
 * **Stop one agent process** (`POST /compute/hosts/{hostId}/agent/processes/{agentProcessId}/stop`,
 * seed 003), synchronously, without a task: stops the process and resolves with its
 * `HostAgentProcess` record (`pid` 0, `STOPPED`). It is an operation on the host like any other:
 * it holds the host's operation mark while it works, so it is refused while a task operates on
 * the host. Stopping a stopped process succeeds and changes nothing.
 *
 * @throws TaskArgumentsError (20011) for an id that is not a positive safe integer;
 *   HostNotFoundError / AgentProcessNotFoundError (20000) for an unknown host or process;
 *   AgentProcessNotOperableError (20003) for a process users may not operate;
 *   HostOperationConflictError (20003) while another operation holds the host.
 * @example
 * const record = await stopAgentProcess(agent, 20, 185); // record.status === 'STOPPED'
 */
export async function stopAgentProcess(
  agent: HostAgent,
  hostId: number,
  agentProcessId: number,
  options: AgentCallOptions = {},
): Promise<HostAgentProcess> {
  const issues: ValidationIssue[] = [];
  if (!isId(hostId)) {
    issues.push({ path: 'hostId', message: 'must be a positive safe integer', value: hostId });
  }
  if (!isId(agentProcessId)) {
    issues.push({
      path: 'agentProcessId',
      message: 'must be a positive safe integer',
      value: agentProcessId,
    });
  }
  if (issues.length > 0) throw new TaskArgumentsError('(stop agent process)', issues);

  const processes = await agent.listProcesses(hostId, options);
  const target = processes.find((p) => p.id === agentProcessId);
  if (!target) throw new AgentProcessNotFoundError(hostId, agentProcessId);
  if (!target.operable) throw new AgentProcessNotOperableError(hostId, target.id, target.alias);

  const owner = `stop-process:${agentProcessId}:${randomUUID()}`;
  await agent.markOperation(hostId, owner, options);
  try {
    return await agent.stopProcess(hostId, agentProcessId, options);
  } finally {
    await agent.clearOperation(hostId, owner);
  }
}
