import { describe, expect, it } from 'vitest';
import { configFromEnv, ConfigError } from './service-config.js';

describe('configFromEnv', () => {
  it('has defaults for everything', () => {
    expect(configFromEnv({}, '/srv/app')).toEqual({
      port: 8080,
      host: '127.0.0.1',
      dataDir: '/srv/app/.dagops',
      databaseUrl: undefined,
      databasePoolSize: 16,
      databasePrepare: true,
      schema: 'dagops',
      demoHosts: 3,
      agent: 'local',
      stopGracePeriodMs: 10_000,
      adminUser: 'admin',
      adminPassword: undefined,
      maxBatchHosts: 10_000,
      bodyLimitBytes: 1_048_576,
      logLevel: 'info',
      engineConcurrency: 32,
      shutdownTimeoutMs: 30_000,
      taskCacheSize: 10_000,
    });
  });

  it('reads every variable', () => {
    const config = configFromEnv(
      {
        PORT: '0',
        HOST: '0.0.0.0',
        DAGOPS_DATA_DIR: '/var/lib/dagops',
        DATABASE_URL: 'postgres://u:p@db:5432/x',
        DAGOPS_DEMO_HOSTS: '0',
        DAGOPS_AGENT: 'simulated',
        DAGOPS_ADMIN_USER: 'root',
        DAGOPS_ADMIN_PASSWORD: 'long-enough',
        DAGOPS_MAX_BATCH_HOSTS: '5',
        DAGOPS_LOG_LEVEL: 'warn',
        DAGOPS_DB_SCHEMA: 'ops',
      },
      '/srv',
    );
    expect(config).toMatchObject({
      port: 0,
      host: '0.0.0.0',
      dataDir: '/var/lib/dagops',
      databaseUrl: 'postgres://u:p@db:5432/x',
      demoHosts: 0,
      agent: 'simulated',
      adminUser: 'root',
      adminPassword: 'long-enough',
      maxBatchHosts: 5,
      logLevel: 'warn',
      schema: 'ops',
    });
  });

  it('turns prepared statements off on request', () => {
    expect(configFromEnv({ DAGOPS_DB_PREPARE: 'off' }).databasePrepare).toBe(false);
  });

  it.each([
    ['DAGOPS_DB_PREPARE', 'no', 'DAGOPS_DB_PREPARE must be one of on, off, got "no"'],
    ['PORT', '8080.5', 'PORT must be an integer in 0..65535, got "8080.5"'],
    ['PORT', ' 80', 'PORT must be an integer in 0..65535, got " 80"'],
    [
      'DAGOPS_MAX_BATCH_HOSTS',
      '0',
      'DAGOPS_MAX_BATCH_HOSTS must be an integer in 1..1000000, got "0"',
    ],
    [
      'DAGOPS_LOG_LEVEL',
      'loud',
      'DAGOPS_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
    [
      'DAGOPS_DB_SCHEMA',
      'Bad-Name',
      'DAGOPS_DB_SCHEMA must be a lower-case identifier of at most 41 characters, got "Bad-Name"',
    ],
    [
      'DAGOPS_ADMIN_USER',
      'a:b',
      `DAGOPS_ADMIN_USER must be at most 64 characters without ':', spaces or control characters, got "a:b"`,
    ],
  ])('refuses %s=%j naming both', (variable, value, message) => {
    let error: unknown;
    try {
      configFromEnv({ [variable]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toBe(message);
  });

  it('never echoes a database URL or a password', () => {
    for (const env of [
      { DATABASE_URL: 'mysql://u:secret@h/x' },
      { DAGOPS_ADMIN_PASSWORD: 'secret' },
    ]) {
      expect(() => configFromEnv(env)).toThrow(ConfigError);
      try {
        configFromEnv(env);
      } catch (error) {
        expect((error as Error).message).not.toContain('secret');
      }
    }
  });
});
