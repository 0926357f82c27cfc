import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DagopsError, ErrorCode, TaskArgumentsError } from '@dagops/engine';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { AgentOperationError, HostOperationConflictError } from './errors.js';
import { LocalProcessAgent, LOCAL_AGENT_STATE_FILE } from './local-process-agent.js';
import {
  describeHostAgentConformance,
  expectProcessShape,
} from './test-support/host-agent-conformance.js';
import {
  createLocalFleet,
  eventually,
  isAlive,
  killStrays,
  pidExists,
  stubbornArgv,
  trackPid,
  type LocalFleet,
} from './test-support/local-fleet.js';

describeHostAgentConformance('LocalProcessAgent', async () => {
  const fleet = await createLocalFleet({ hosts: { 7: ['ocp_agentd', 'pos_proxy'] } });
  return { agent: fleet.agent, hostId: 7, unknownHostId: 99, cleanup: () => fleet.cleanup() };
});

describe('LocalProcessAgent on real processes', () => {
  let fleet: LocalFleet | undefined;

  afterEach(async () => {
    vi.restoreAllMocks();
    await fleet?.cleanup();
    fleet = undefined;
  });
  afterAll(() => {
    // Every process the tests started was stopped by the tests or their cleanup.
    expect(killStrays()).toEqual([]);
  });

  function readState(dir: string) {
    return JSON.parse(readFileSync(`${dir}/${LOCAL_AGENT_STATE_FILE}`, 'utf8')) as {
      hosts: Record<string, { processes: { alias: string; run?: Record<string, unknown> }[] }>;
    };
  }

  it('stops processes for good: the pids are gone (ESRCH)', async () => {
    fleet = await createLocalFleet({ hosts: { 1: ['ocp_agentd', 'ocp_monagent', 'obstat2'] } });
    const { agent } = fleet;
    const before = await agent.listProcesses(1);
    for (const record of before) expect(pidExists(record.pid)).toBe(true);
    for (const record of before) {
      const stopped = await agent.stopProcess(1, record.id);
      expect(stopped).toMatchObject({ status: 'STOPPED', pid: 0 });
      expect(() => process.kill(record.pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    }
  });

  it('starts with spawn (no shell), logging to the file its logFilePattern names', async () => {
    fleet = await createLocalFleet({ hosts: {}, start: false });
    const { agent } = fleet;
    const declared = agent.declareProcess({
      hostId: 3,
      alias: 'obstat2',
      argv: [
        process.execPath,
        '-e',
        'console.log("hello $(whoami) from", process.pid); setInterval(() => {}, 1e9)',
      ],
      ports: [62888, 62889],
    });
    expectProcessShape(declared);
    expect(declared).toMatchObject({ status: 'STOPPED', lastActiveTime: null, operable: true });
    const started = await agent.startProcess(3, declared.id);
    expectProcessShape(started);
    expect(started).toMatchObject({ status: 'STARTED', ports: '62888,62889', hostId: 3 });
    expect(started.startCommand).toContain(process.execPath);
    const logFile = (started.logFilePattern as string).replace(/\*$/, '');
    await eventually(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('from'));
    // No shell: `$(whoami)` is printed as written, not substituted.
    expect(readFileSync(logFile, 'utf8')).toBe(`hello $(whoami) from ${started.pid}\n`);
  });

  it('sends SIGKILL to a process that ignores SIGTERM, after the grace period', async () => {
    fleet = await createLocalFleet({ hosts: {}, start: false, stopGracePeriodMs: 300 });
    const { agent } = fleet;
    const { id, logFilePattern } = agent.declareProcess({
      hostId: 1,
      alias: 'stubborn',
      argv: stubbornArgv(),
    });
    const { pid } = await agent.startProcess(1, id);
    const log = (logFilePattern as string).replace(/\*$/, '');
    await eventually(() => readFileSync(log, 'utf8').includes('ready'));
    const begun = Date.now();
    await agent.stopProcess(1, id);
    expect(Date.now() - begun).toBeGreaterThanOrEqual(290);
    expect(pidExists(pid)).toBe(false);
    expect(readFileSync(log, 'utf8')).toContain('ignoring SIGTERM');
  });

  it('fails a start whose executable cannot be spawned with a typed error, and stays STOPPED', async () => {
    fleet = await createLocalFleet({ hosts: {}, start: false });
    const { agent } = fleet;
    const { id } = agent.declareProcess({
      hostId: 1,
      alias: 'broken',
      argv: ['/nonexistent/bin/agentd', '-d'],
    });
    const error = await agent.startProcess(1, id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentOperationError);
    expect(error).toMatchObject({
      code: ErrorCode.AGENT_OPERATION_FAILED,
      hostId: 1,
      action: 'start',
      alias: 'broken',
    });
    expect((error as Error).message).toContain('/nonexistent/bin/agentd');
    expect((error as Error).message).toContain('ENOENT');
    expect((await agent.listProcesses(1))[0]?.status).toBe('STOPPED');
  });

  it('never signals a pid whose recorded identity does not match (pid reuse)', async () => {
    fleet = await createLocalFleet({ hosts: { 1: ['ocp_agentd'] } });
    const [record] = await fleet.agent.listProcesses(1);
    const pid = (record as { pid: number }).pid;
    // Tamper the recorded identity, as if the process had died and its pid had been reused.
    const state = readState(fleet.stateDir);
    const run = (state.hosts['1']?.processes[0] as { run: Record<string, unknown> }).run;
    run['startTicks'] = '1';
    writeFileSync(`${fleet.stateDir}/${LOCAL_AGENT_STATE_FILE}`, JSON.stringify(state));

    const kill = vi.spyOn(process, 'kill');
    const agent = fleet.reopen();
    expect((await agent.listProcesses(1))[0]).toMatchObject({ status: 'STOPPED', pid: 0 });
    expect((await agent.stopProcess(1, (record as { id: number }).id)).status).toBe('STOPPED');
    expect(kill).not.toHaveBeenCalled();
    expect(isAlive(pid)).toBe(true); // the "other" process was left alone
    kill.mockRestore();
    process.kill(pid, 'SIGKILL');
    await eventually(() => !pidExists(pid));
  });

  it('never signals a process it did not start, even when the state names its pid', async () => {
    fleet = await createLocalFleet({ hosts: { 1: ['ocp_agentd'] }, start: false });
    const stranger = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], {
      stdio: 'ignore',
    });
    const pid = stranger.pid as number;
    await eventually(() => isAlive(pid));
    trackPid(pid);
    const state = readState(fleet.stateDir);
    (state.hosts['1']?.processes[0] as { run?: unknown }).run = {
      pid,
      startTicks: '12345',
      bootId: 'some-other-boot',
      startedAt: Date.now(),
      user: 'admin',
    };
    writeFileSync(`${fleet.stateDir}/${LOCAL_AGENT_STATE_FILE}`, JSON.stringify(state));
    const kill = vi.spyOn(process, 'kill');
    const agent = fleet.reopen();
    const id = agent.processId(1, 'ocp_agentd');
    expect((await agent.stopProcess(1, id)).status).toBe('STOPPED');
    expect((await agent.restartProcess(1, id)).status).toBe('STARTED');
    expect(kill).not.toHaveBeenCalled();
    expect(isAlive(pid)).toBe(true);
    kill.mockRestore();
    stranger.kill('SIGKILL');
    await new Promise((resolve) => stranger.once('exit', resolve));
  });

  it('keeps its state across instances: running processes, marks and notes', async () => {
    fleet = await createLocalFleet({ hosts: { 1: ['ocp_agentd', 'pos_proxy'] } });
    const before = await fleet.agent.listProcesses(1);
    await fleet.agent.markOperation(1, 'task:1');
    await fleet.agent.recordOperationNote(1, 'task:1', 'plan', ['ocp_agentd']);

    const agent = fleet.reopen();
    const after = await agent.listProcesses(1);
    expect(after.map((p) => [p.alias, p.status, p.pid])).toEqual(
      before.map((p) => [p.alias, 'STARTED', p.pid]),
    );
    expect(await agent.getOperation(1)).toMatchObject({
      owner: 'task:1',
      notes: { plan: ['ocp_agentd'] },
    });
    await expect(agent.markOperation(1, 'task:2')).rejects.toThrow(HostOperationConflictError);
    for (const record of after) {
      await agent.stopProcess(1, record.id);
      expect(pidExists(record.pid)).toBe(false);
    }
    // Written atomically: the file parses, and no temporary file is left behind.
    expect(readdirSync(fleet.stateDir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('stops processes started by an agent in another OS process that has exited', async () => {
    fleet = await createLocalFleet({ hosts: {}, start: false });
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const script = `
      const { LocalProcessAgent } = await import(${JSON.stringify(dist)});
      const agent = new LocalProcessAgent({ stateDir: ${JSON.stringify(fleet.stateDir)} });
      for (const alias of ['ocp_agentd', 'ocp_monagent']) {
        const { id } = agent.declareProcess({ hostId: 5, alias, argv: [process.execPath, '-e', 'setInterval(() => {}, 1e9)'] });
        await agent.startProcess(5, id);
      }
      console.log(JSON.stringify((await agent.listProcesses(5)).map((p) => p.pid)));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    const pids = JSON.parse(out) as number[];
    for (const pid of pids) {
      trackPid(pid);
      expect(isAlive(pid)).toBe(true);
    }
    const agent = fleet.reopen();
    const listed = await agent.listProcesses(5);
    expect(listed.map((p) => [p.status, p.pid])).toEqual(pids.map((pid) => ['STARTED', pid]));
    for (const record of listed) {
      expect((await agent.stopProcess(5, record.id)).status).toBe('STOPPED');
      expect(isAlive(record.pid)).toBe(false);
    }
    // The orphans' new parent reaps them; then the pids are gone for good.
    await eventually(() => pids.every((pid) => !pidExists(pid)), 10_000, 'orphans reaped');
  });

  it('validates declarations and options, naming the field and the value', () => {
    const dir = `/tmp/dagops-never-created-${process.pid}`;
    expect(() => new LocalProcessAgent({ stateDir: '' })).toThrow(
      /stateDir must be a non-empty path, got ""/,
    );
    expect(() => new LocalProcessAgent({ stateDir: dir, stopGracePeriodMs: -1 })).toThrow(
      /stopGracePeriodMs must be a non-negative integer, got -1/,
    );
    const agent = new LocalProcessAgent({ stateDir: dir });
    const error = (() => {
      try {
        agent.declareProcess({ hostId: 0, alias: 'a b', argv: [], ports: [70000] });
      } catch (thrown) {
        return thrown;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TaskArgumentsError);
    expect((error as TaskArgumentsError).issues.map((i) => [i.path, i.value])).toEqual([
      ['hostId', 0],
      ['alias', 'a b'],
      ['argv', []],
      ['ports[0]', 70000],
    ]);
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses a state file it cannot read', async () => {
    fleet = await createLocalFleet({ hosts: {}, start: false });
    writeFileSync(`${fleet.stateDir}/${LOCAL_AGENT_STATE_FILE}`, JSON.stringify({ version: 9 }));
    const error = (() => {
      try {
        fleet.reopen();
      } catch (thrown) {
        return thrown;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(DagopsError);
    expect((error as DagopsError).code).toBe(ErrorCode.OPTIONS_INVALID);
    writeFileSync(
      `${fleet.stateDir}/${LOCAL_AGENT_STATE_FILE}`,
      '{"version":1,"nextProcessId":1,"hosts":{}}',
    );
  });
});
