import type { Template, TemplateNode } from '@dagops/engine';
import { AgentClassName, WAIT_NODE } from './agent-class-names.js';

/** The list argument Batch stop splits over: one branch per host id. */
export const HOST_IDS_KEY = 'host_ids';
/** The string argument naming the host of a single-host operation. */
export const HOST_ID_KEY = 'host_id';

function step(
  key: string,
  className: string,
  name: string,
  timeout: number,
  splitKey?: string,
): TemplateNode {
  return Object.freeze({
    key,
    className,
    name,
    description: name,
    timeout,
    ...(splitKey === undefined ? {} : { splitKey }),
  });
}

function chain(name: string, description: string, nodes: readonly TemplateNode[]): Template {
  return Object.freeze({
    name,
    description,
    nodes: Object.freeze([...nodes]),
    edges: Object.freeze(
      nodes
        .slice(1)
        .map((node, i) => Object.freeze({ from: (nodes[i] as TemplateNode).key, to: node.key })),
    ),
  });
}

const prepareStop = (splitKey?: string) =>
  step('prepare', AgentClassName.PREPARE_STOP, 'Prepare stop OCP agent', 60, splitKey);
const stopAll = (splitKey?: string) =>
  step('stopAll', AgentClassName.STOP_ALL, 'Stop all OCP agent processes', 600, splitKey);
const finish = (splitKey?: string) =>
  step('finish', AgentClassName.FINISH, 'Finish OCP agent operation', 60, splitKey);

/**
 * **Stop OCP agent** (`POST /compute/hosts/{hostId}/agent/stop`, seed 000): Prepare stop OCP
 * agent (60 s) → Stop all OCP agent processes (600 s) → Finish OCP agent operation (60 s).
 * Arguments: {@link stopAgentArguments}.
 */
export const stopAgentTemplate: Template = chain(
  'Stop OCP agent',
  "Stops the basic OCP agent processes of one host, under the host's operation mark.",
  [prepareStop(), stopAll(), finish()],
);

/**
 * **Batch stop OCP agent** (`POST /compute/hosts/batchStopAgents`, seed 002): per host in
 * `host_ids`, Prepare (60 s) → Wait node (30 s) → Stop all (600 s) → Wait node (30 s) → Finish
 * (60 s); each Wait node waits for the whole previous stage. Arguments:
 * {@link batchStopAgentArguments}.
 */
export const batchStopAgentTemplate: Template = chain(
  'Batch stop OCP agent',
  'Stops the basic OCP agent processes of many hosts, stage by stage: every host is prepared ' +
    'before any is stopped, and every host is stopped before any is finished.',
  [
    prepareStop(HOST_IDS_KEY),
    step('waitPrepared', WAIT_NODE, 'Wait node', 30),
    stopAll(HOST_IDS_KEY),
    step('waitStopped', WAIT_NODE, 'Wait node', 30),
    finish(HOST_IDS_KEY),
  ],
);

/**
 * **Restart OCP agent** (`POST /compute/hosts/{hostId}/agent/restart`, seed 004): Prepare
 * restart OCP agent (60 s) → Restart pos proxy (60 s) → Stop all OCP agent processes (600 s) →
 * Start all OCP agent processes (600 s) → Finish OCP agent operation (60 s). Arguments:
 * {@link restartAgentArguments}.
 */
export const restartAgentTemplate: Template = chain(
  'Restart OCP agent',
  "Restarts the basic OCP agent processes of one host, under the host's operation mark.",
  [
    step('prepare', AgentClassName.PREPARE_RESTART, 'Prepare restart OCP agent', 60),
    step('restartPosProxy', AgentClassName.RESTART_POS_PROXY, 'Restart pos proxy', 60),
    stopAll(),
    step('startAll', AgentClassName.START_ALL, 'Start all OCP agent processes', 600),
    finish(),
  ],
);

/** Every template this package ships. */
export const agentTemplates: readonly Template[] = Object.freeze([
  stopAgentTemplate,
  batchStopAgentTemplate,
  restartAgentTemplate,
]);
