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
export { DEFAULT_TASK_CONCURRENCY, MAX_TIMEOUT_SECONDS } from './template.js';
export type { Template, TemplateNode, TemplateEdge, RetryPolicy } from './template.js';
export { templateJsonSchema } from './template-schema.js';
export { validateTemplate } from './validate-template.js';
export type { ValidatedTemplate, ValidateTemplateOptions } from './validate-template.js';
export { PROHIBIT_ROLLBACK_KEY, argumentIssues, buildTaskContext } from './task-arguments.js';
export type { TaskArguments } from './task-arguments.js';
export { expandTemplate, countSubtasks } from './expand-template.js';
export type { ExpandOptions, ExpandedTask } from './expand-template.js';
export { createCounterIdAllocator } from './id-allocator.js';
export type { IdAllocator } from './id-allocator.js';
export type { TaskContext, TaskRecord, SubtaskRecord, TaskJson, SubtaskJson } from './task.js';
export { toTaskJson, toSubtaskJson } from './task-json.js';
export type { TaskJsonOptions } from './task-json.js';
export { formatTimestamp } from './time.js';
export { renderMermaid, renderDot } from './render.js';
export type { Drawable } from './render.js';
