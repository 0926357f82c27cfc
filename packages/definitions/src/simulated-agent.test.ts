import { DagopsError, ErrorCode } from '@dagops/engine';
import { describe, expect, it } from 'vitest';
import { OCP_AGENT_PROCESS_ALIASES } from './host-agent.js';
import { SimulatedAgent, SimulatedFaultError } from './simulated-agent.js';
import { describeHostAgentConformance } from './test-support/host-agent-conformance.js';

describeHostAgentConformance('SimulatedAgent', () =>
  Promise.resolve({
    agent: new SimulatedAgent({ hostIds: [3, 4] }),
    hostId: 3,
    unknownHostId: 99,
    cleanup: () => Promise.resolve(),
  }),
);

describe('SimulatedAgent', () => {
  it('builds N hosts with the five OCP agent processes, all running', async () => {
    const agent = new SimulatedAgent({ hostCount: 3, firstHostId: 1001 });
    expect(agent.hostIds()).toEqual([1001, 1002, 1003]);
    const processes = await agent.listProcesses(1002);
    expect(processes.map((p) => p.alias)).toEqual([...OCP_AGENT_PROCESS_ALIASES]);
    expect(processes.every((p) => p.status === 'STARTED' && p.operable)).toBe(true);
    const ids = (await Promise.all(agent.hostIds().map((h) => agent.listProcesses(h)))).flatMap(
      (list) => list.map((p) => p.id),
    );
    expect(new Set(ids).size).toBe(15);
  });

  it('fails the calls a rule matches, before or after the effect, as often as told', async () => {
    const agent = new SimulatedAgent({ hostCount: 2 });
    const [agentd, monagent] = await agent.listProcesses(1);
    agent.injectFault({ kind: 'fail', hostId: 1, action: 'stop', alias: 'ocp_agentd', times: 1 });
    const error = await agent.stopProcess(1, agentd?.id as number).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SimulatedFaultError);
    expect(error).toMatchObject({
      code: ErrorCode.AGENT_OPERATION_FAILED,
      hostId: 1,
      action: 'stop',
      alias: 'ocp_agentd',
    });
    expect(agent.fleetState()['1']?.['ocp_agentd']).toBe('STARTED'); // failed before the effect
    expect((await agent.stopProcess(1, agentd?.id as number)).status).toBe('STOPPED'); // used up

    agent.injectFault({ kind: 'fail', action: 'stop', afterEffect: true });
    await expect(agent.stopProcess(1, monagent?.id as number)).rejects.toThrow('after the effect');
    expect(agent.fleetState()['1']?.['ocp_monagent']).toBe('STOPPED'); // the reply was lost
    expect(agent.injectedFaults().map((f) => [f.action, f.alias, f.afterEffect])).toEqual([
      ['stop', 'ocp_agentd', false],
      ['stop', 'ocp_monagent', true],
    ]);
    agent.clearFaults();
    expect((await agent.startProcess(1, monagent?.id as number)).status).toBe('STARTED');
  });

  it('hangs a call until its signal aborts, and slows a call by delayMs', async () => {
    const agent = new SimulatedAgent();
    agent.injectFault({ kind: 'hang', action: 'mark' });
    const controller = new AbortController();
    const pending = agent.markOperation(1, 'task:1', { signal: controller.signal });
    setTimeout(() => controller.abort(new DagopsError(ErrorCode.ATTEMPT_TIMEOUT, 'timed out')), 20);
    await expect(pending).rejects.toThrow('timed out');
    expect(await agent.getOperation(1)).toBeUndefined();

    agent.clearFaults();
    agent.injectFault({ kind: 'slow', action: 'list', delayMs: 60 });
    const begun = Date.now();
    await agent.listProcesses(1);
    expect(Date.now() - begun).toBeGreaterThanOrEqual(55);
  });

  it('injects random faults reproducibly from a seed', async () => {
    const run = async (seed: number) => {
      const agent = new SimulatedAgent({ hostCount: 50, randomFaultRate: 0.2, seed });
      const outcomes: string[] = [];
      for (const hostId of agent.hostIds()) {
        outcomes.push(
          await agent.markOperation(hostId, 'task:1').then(
            () => 'ok',
            (error: Error) => error.message,
          ),
        );
      }
      return { outcomes, faults: agent.injectedFaults() };
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a).toEqual(b);
    expect(a.outcomes).not.toEqual(c.outcomes);
    expect(a.faults.length).toBeGreaterThan(2);
    expect(a.faults.length).toBeLessThan(25);
    expect(a.faults.every((f) => f.random && f.kind === 'fail')).toBe(true);
  });

  it('adds latency to every call', async () => {
    const agent = new SimulatedAgent({ latencyMs: { min: 20, max: 30 } });
    const begun = Date.now();
    await agent.listProcesses(1);
    expect(Date.now() - begun).toBeGreaterThanOrEqual(18);
  });

  it('validates its options, naming the option and the value', () => {
    expect(() => new SimulatedAgent({ randomFaultRate: 2 })).toThrow(
      /randomFaultRate must be within \[0, 1\], got 2/,
    );
    expect(() => new SimulatedAgent({ latencyMs: { min: 5, max: 1 } })).toThrow(/latencyMs/);
    expect(() => new SimulatedAgent({ hostIds: [0] })).toThrow(
      /hostIds must be positive integers, got 0/,
    );
  });
});
