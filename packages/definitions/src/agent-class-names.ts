import { WAIT_NODE_CLASS_NAME } from '@dagops/engine';

const OBAGENT = 'com.alipay.ocp.service.task.business.obagent';

/**
 * The classNames of the OCP agent steps, exactly as OCP names them in its task JSON (seeds 000,
 * 002, 004). `registerAgentHandlers` registers a handler for each.
 */
export const AgentClassName = {
  PREPARE_STOP: `${OBAGENT}.PrepareStopOcpAgentTask`,
  PREPARE_RESTART: `${OBAGENT}.PrepareRestartOcpAgentTask`,
  STOP_ALL: `${OBAGENT}.StopAllOcpAgentProcessesTask`,
  START_ALL: `${OBAGENT}.StartAllOcpAgentProcessesTask`,
  RESTART_POS_PROXY: `${OBAGENT}.RestartPosProxyTask`,
  FINISH: `${OBAGENT}.FinishOcpAgentOperationTask`,
} as const;
/** One of the {@link AgentClassName} values. */
export type AgentClassName = (typeof AgentClassName)[keyof typeof AgentClassName];

/** OCP's barrier node (`com.alipay.ocp.service.task.business.WaitNode`), built into the engine. */
export const WAIT_NODE = WAIT_NODE_CLASS_NAME;
