export { buildServer } from './build-server.js';
export type { DagopsRouteConfig, ServiceContext } from './build-server.js';
export {
  resolveServerOptions,
  DEFAULT_MAX_BATCH_HOSTS,
  DEFAULT_BODY_LIMIT_BYTES,
} from './server-options.js';
export type {
  ServerOptions,
  ResolvedServerOptions,
  ServerLogOptions,
  LogDestination,
} from './server-options.js';
export {
  ApiError,
  ServiceErrorCode,
  HTTP_STATUS_BY_CODE,
  httpStatusOf,
  toFailure,
} from './api-error.js';
export type { ApiErrorCode, ApiErrorOptions, ErrorBody, SubError, Failure } from './api-error.js';
export { successEnvelope, errorEnvelope, newTraceId, traceIdFrom } from './envelope.js';
export type { SuccessEnvelope, ErrorEnvelope, EnvelopeMeta } from './envelope.js';
export { Permission, ALL_PERMISSIONS, isPermission } from './permissions.js';
export { hashPassword, verifyPassword, generatePassword } from './passwords.js';
export type { HashPasswordOptions } from './passwords.js';
export { Authenticator, parseBasicAuthorization } from './authenticator.js';
export type { Caller, AuthenticatorOptions } from './authenticator.js';
export { createUser, ensureAdmin } from './users.js';
export type { AdminBootstrap, UserOptions } from './users.js';
export type {
  ServiceState,
  UserRecord,
  IdempotencyKeyRequest,
  IdempotencyClaim,
} from './service-state.js';
export { MemoryServiceState } from './memory-service-state.js';
export { SqlServiceState, SERVER_MIGRATIONS } from './sql-service-state.js';
export type { SqlServiceStateOptions } from './sql-service-state.js';
export { MemoryTaskLister, PostgresTaskLister } from './task-lister.js';
export type { TaskLister, TaskQuery, TaskPage } from './task-lister.js';
export { HostGuard } from './host-guard.js';
export type { HostReservation } from './host-guard.js';
export { IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER } from './idempotency.js';
export { buildOpenApiDocument } from './openapi.js';
export { demoHostIds, demoProcessArgv, startDemoFleet, stopDemoFleet } from './demo-fleet.js';
export { AgentKind, ConfigError, configFromEnv } from './service-config.js';
export type { ServiceConfig } from './service-config.js';
export { startService } from './service.js';
export type { RunningService, StartServiceOptions } from './service.js';
