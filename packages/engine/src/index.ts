export {
  ErrorCode,
  DagopsError,
  TemplateValidationError,
  DagCycleError,
  TaskArgumentsError,
  formatIssue,
} from './errors.js';
export type { DagopsErrorOptions, ValidationIssue } from './errors.js';
export { TaskStatus, SubtaskStatus, Operation, TaskType, NodeType, SplitMethod } from './status.js';
export {
  DEFAULT_TASK_CONCURRENCY,
  MAX_TIMEOUT_SECONDS,
  MAX_TEMPLATE_NODES,
  MAX_TEMPLATE_EDGES,
} from './template.js';
export type { Template, TemplateNode, TemplateEdge, RetryPolicy } from './template.js';
export { templateJsonSchema } from './template-schema.js';
export { validateTemplate } from './validate-template.js';
export type { ValidatedTemplate, ValidateTemplateOptions } from './validate-template.js';
export { PROHIBIT_ROLLBACK_KEY, argumentIssues, buildTaskContext } from './task-arguments.js';
export type { TaskArguments } from './task-arguments.js';
export { expandTemplate, countSubtasks } from './expand-template.js';
export type { ExpandOptions, ExpandedTask } from './expand-template.js';
export { SubtaskLayout } from './subtask-layout.js';
export type { LayoutNode, LinkVisitor } from './subtask-layout.js';
export { createCounterIdAllocator } from './id-allocator.js';
export type { IdAllocator } from './id-allocator.js';
export type { TaskContext, TaskRecord, SubtaskRecord, TaskJson, SubtaskJson } from './task.js';
export { toTaskJson, toSubmittedTaskJson, toSubtaskJson } from './task-json.js';
export type { TaskJsonOptions } from './task-json.js';
export { formatTimestamp } from './time.js';
export { renderMermaid, renderDot } from './render.js';
export type { Drawable } from './render.js';
export { Engine } from './engine.js';
export type { SubmitMeta } from './engine.js';
export { DEFAULT_ENGINE_CONCURRENCY, resolveEngineOptions } from './engine-options.js';
export type { EngineOptions, ResolvedEngineOptions } from './engine-options.js';
export type { EngineEvents, SubtaskRef, Logger } from './events.js';
export { consoleLogger } from './events.js';
export { HandlerRegistry, WAIT_NODE_CLASS_NAME, waitNodeHandler } from './handler.js';
export type { Handler, HandlerContext } from './handler.js';
export { systemClock, createManualClock } from './clock.js';
export type { Clock, ManualClock, TimerHandle } from './clock.js';
export { resolveRetryPolicy, retryDelayMs, canRetry, NO_RETRY } from './retry-policy.js';
export type { ResolvedRetryPolicy } from './retry-policy.js';
export { toErrorInfo } from './error-info.js';
export type { ErrorInfo } from './error-info.js';
export { EMPTY_DELTA, mergeUpstreamOutputs, applyWrites, resolveContext } from './context.js';
export type { ContextDelta, ContextConflict, MergeResult } from './context.js';
export { MemoryStore } from './memory-store.js';
export { readTask } from './read-task.js';
export type {
  Store,
  ReservedIds,
  AttemptFence,
  ClaimRequest,
  Claim,
  StatusChange,
  TransitionResult,
  LogEntry,
  SubtaskContexts,
  TaskSnapshot,
  AuditEntry,
  OperationRequest,
  MaybePromise,
  HeartbeatResult,
  StoreNotice,
} from './store.js';
export {
  SUBTASK_TRANSITIONS,
  TASK_TRANSITIONS,
  assertSubtaskMove,
  assertTaskMove,
} from './transitions.js';
