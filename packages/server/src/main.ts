#!/usr/bin/env node
/**
 * The service process (`pnpm start`): configuration from the environment, the service, and a
 * graceful shutdown on SIGTERM or SIGINT (a second signal exits at once).
 */
import { ConfigError, configFromEnv, type ServiceConfig } from './service-config.js';
import { startService, type RunningService } from './service.js';

function fail(message: string, code: number): never {
  process.stderr.write(`dagops: ${message}\n`);
  process.exit(code);
}

let config: ServiceConfig;
try {
  config = configFromEnv(process.env);
} catch (error) {
  if (error instanceof ConfigError) fail(error.message, 2);
  throw error;
}

let service: RunningService;
try {
  service = await startService(config);
} catch (error) {
  fail(`the service did not start: ${error instanceof Error ? error.message : String(error)}`, 1);
}

const { app, admin } = service;
if (admin.kind === 'created' && admin.generatedPassword !== undefined) {
  // The one time a secret is shown: on the terminal (stderr), never in the request log.
  process.stderr.write(
    `\ndagops: created user "${config.adminUser}" with the generated password: ${admin.generatedPassword}\n` +
      '        It is shown this once. Set DAGOPS_ADMIN_PASSWORD to choose the password instead.\n\n',
  );
} else if (admin.kind === 'passwordReset') {
  app.log.warn({ user: config.adminUser }, 'admin password reset from DAGOPS_ADMIN_PASSWORD');
}
app.log.info(
  {
    url: service.url,
    database: config.databaseUrl === undefined ? `PGlite in ${config.dataDir}` : 'PostgreSQL',
    agent: config.agent,
    demoHosts: config.demoHosts,
    executor: service.engine.executor,
  },
  'dagops service listening',
);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    app.log.warn({ signal }, 'second signal: exiting without waiting');
    process.exit(1);
  }
  stopping = true;
  app.log.info({ signal }, 'shutting down: finishing requests in flight and running steps');
  const deadline = setTimeout(() => {
    app.log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  deadline.unref();
  try {
    await service.close();
    app.log.info('stopped');
    process.exit(0);
  } catch (error) {
    app.log.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
