import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Engine, HandlerRegistry, type Logger } from '@dagops/engine';
import {
  LocalProcessAgent,
  registerAgentHandlers,
  SimulatedAgent,
  type HostAgent,
} from '@dagops/definitions';
import {
  createPgDriver,
  createPgliteDriver,
  PostgresStore,
  type SqlDriver,
} from '@dagops/store-postgres';
import { buildServer } from './build-server.js';
import { demoHostIds, startDemoFleet, stopDemoFleet } from './demo-fleet.js';
import { AgentKind, type ServiceConfig } from './service-config.js';
import type { LogDestination } from './server-options.js';
import { SqlServiceState } from './sql-service-state.js';
import { PostgresTaskLister } from './task-lister.js';
import { ensureAdmin, type AdminBootstrap, type UserOptions } from './users.js';

/** A started service. */
export interface RunningService {
  readonly app: FastifyInstance;
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  readonly engine: Engine;
  readonly store: PostgresStore;
  readonly state: SqlServiceState;
  readonly agent: HostAgent;
  /** What happened to the first admin at start-up (a generated password is in it, once). */
  readonly admin: AdminBootstrap;
  /**
   * Graceful shutdown: stops taking requests and lets those in flight finish, closes the engine
   * (running attempts end), the state and the store, then stops the demo processes.
   */
  close(): Promise<void>;
}

/** Extras for tests and embedding. */
export interface StartServiceOptions extends UserOptions {
  /** Where the request log goes. @default stdout */
  readonly logStream?: LogDestination;
}

/**
 * Starts the OCP agent service: opens the database (PostgreSQL at `databaseUrl`, else PGlite in
 * `dataDir`), the engine store and the service's tables, the host agent and its demo fleet, the
 * first admin, the engine, and the HTTP server on `host:port`.
 */
export async function startService(
  config: ServiceConfig,
  options: StartServiceOptions = {},
): Promise<RunningService> {
  mkdirSync(config.dataDir, { recursive: true });
  const driver: SqlDriver =
    config.databaseUrl === undefined
      ? await createPgliteDriver(join(config.dataDir, 'pgdata'))
      : createPgDriver(config.databaseUrl, {
          maxConnections: config.databasePoolSize,
          prepareStatements: config.databasePrepare,
        });
  const cleanups: { readonly step: string; readonly run: () => Promise<unknown> }[] = [];
  let log: FastifyInstance['log'] | undefined;
  const undo = async () => {
    for (const { step, run } of cleanups.reverse()) {
      log?.debug({ step }, 'shutdown step');
      await run().catch((error: unknown) =>
        log?.error({ err: error, step }, 'shutdown step failed'),
      );
    }
  };
  try {
    const store = await PostgresStore.open(driver, { schema: config.schema });
    cleanups.push({
      step: 'close the store',
      run: async () => {
        // Let a write the engine scheduled in its last moments start before the store waits
        // for it (PostgresStore.close spins while a step is only scheduled; see the README).
        await new Promise((resolve) => setTimeout(resolve, 20));
        await store.close();
      },
    });
    const state = await SqlServiceState.open(driver, { schema: `${config.schema}_server` });
    cleanups.push({ step: 'close the service state', run: () => state.close() });

    const hostIds = demoHostIds(config.demoHosts);
    let agent: HostAgent;
    let local: LocalProcessAgent | undefined;
    if (config.agent === AgentKind.LOCAL) {
      local = new LocalProcessAgent({
        stateDir: join(config.dataDir, 'agent'),
        stopGracePeriodMs: config.stopGracePeriodMs,
      });
      const fleet = local;
      cleanups.push({ step: 'stop the demo processes', run: () => stopDemoFleet(fleet, hostIds) });
      await startDemoFleet(local, hostIds);
      agent = local;
    } else {
      agent = new SimulatedAgent({ hostIds });
    }
    await state.addHosts(hostIds);
    const admin = await ensureAdmin(state, config.adminUser, config.adminPassword, options);

    // The engine reports to the request log's logger once the server exists.
    const logger: Logger = {
      error: (message, details) =>
        log ? log.error(details ?? {}, message) : console.error(message, details),
      warn: (message, details) =>
        log ? log.warn(details ?? {}, message) : console.warn(message, details),
    };
    const engine = new Engine({
      store,
      handlers: registerAgentHandlers(new HandlerRegistry(), agent),
      concurrency: config.engineConcurrency,
      logger,
    });
    cleanups.push({ step: 'close the engine', run: () => engine.close() });

    const app = buildServer({
      engine,
      agent,
      state,
      lister: new PostgresTaskLister(driver, store.schemaName, store),
      maxBatchHosts: config.maxBatchHosts,
      bodyLimitBytes: config.bodyLimitBytes,
      taskCacheSize: config.taskCacheSize,
      logger: {
        level: config.logLevel,
        ...(options.logStream ? { stream: options.logStream } : {}),
      },
    });
    log = app.log;
    cleanups.push({ step: 'close the HTTP server', run: () => app.close() });
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;

    // Forget answers of idempotency keys whose 24 hours are up.
    const purge = setInterval(() => {
      state.purgeIdempotencyKeys(Date.now()).catch((error: unknown) => {
        app.log.warn({ err: error }, 'purging idempotency keys failed');
      });
    }, 3_600_000);
    purge.unref();
    cleanups.push({
      step: 'stop the purge timer',
      run: () => Promise.resolve(clearInterval(purge)),
    });

    let closing: Promise<void> | undefined;
    return {
      app,
      url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
      port,
      engine,
      store,
      state,
      agent,
      admin,
      close: () => (closing ??= undo()),
    };
  } catch (error) {
    await undo();
    await driver.close().catch(() => {});
    throw error;
  }
}
