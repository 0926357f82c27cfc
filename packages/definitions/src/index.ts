export { AgentClassName, WAIT_NODE } from './agent-class-names.js';
export {
  stopAgentTemplate,
  batchStopAgentTemplate,
  restartAgentTemplate,
  agentTemplates,
  HOST_ID_KEY,
  HOST_IDS_KEY,
} from './agent-templates.js';
export {
  stopAgentArguments,
  restartAgentArguments,
  batchStopAgentArguments,
} from './agent-arguments.js';
export type { HostAgentOperationInput, BatchStopAgentInput } from './agent-arguments.js';
export { AgentProcessStatus, OCP_AGENT_PROCESS_ALIASES, POS_PROXY_ALIAS } from './host-agent.js';
export type {
  HostAgent,
  HostAgentProcess,
  HostOperationMark,
  AgentCallOptions,
} from './host-agent.js';
export {
  HostNotFoundError,
  AgentProcessNotFoundError,
  AgentProcessNotOperableError,
  HostOperationConflictError,
  AgentOperationError,
} from './errors.js';
export type { AgentAction } from './errors.js';
export {
  AgentContextKey,
  operationOwner,
  createAgentHandlers,
  registerAgentHandlers,
} from './agent-handlers.js';
export { stopAgentProcess } from './stop-agent-process.js';
export { LocalProcessAgent, LOCAL_AGENT_STATE_FILE } from './local-process-agent.js';
export type { LocalProcessAgentOptions } from './local-process-agent.js';
export type { LocalProcessDeclaration } from './local-process-declaration.js';
export { SimulatedAgent, SimulatedFaultError, FaultKind } from './simulated-agent.js';
export type { SimulatedAgentOptions, SimulatedFault, InjectedFault } from './simulated-agent.js';
