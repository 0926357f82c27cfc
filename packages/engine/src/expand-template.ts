import { TaskArgumentsError, type ValidationIssue } from './errors.js';
import type { IdAllocator } from './id-allocator.js';
import { Operation, SplitMethod, TaskStatus, TaskType } from './status.js';
import { SubtaskLayout, type LayoutNode } from './subtask-layout.js';
import { buildTaskContext } from './task-arguments.js';
import type { SubtaskRecord, TaskContext, TaskRecord } from './task.js';
import type { TemplateNode } from './template.js';
import type { ValidatedTemplate } from './validate-template.js';

/** Who and when, for a task being expanded. */
export interface ExpandOptions {
  /** Supplies the task id and the subtask ids. */
  readonly ids: IdAllocator;
  /** Who submitted the task. */
  readonly creator: string;
  /** Identity of the engine accepting it. */
  readonly executor: string;
  /** Submission time, epoch milliseconds. */
  readonly now: number;
  /** @default 'MANUAL' */
  readonly type?: TaskType;
  /** @default -1 (ad-hoc, as OCP) */
  readonly taskDefinitionId?: number;
}

/** A task at submission: the task record and its subtasks in expansion (`seriesId`) order. */
export interface ExpandedTask {
  /** The task, `RUNNING` with operation `EXECUTE`. */
  readonly task: TaskRecord;
  /**
   * Roots `READY`, the rest `PENDING`; `subtasks[i].seriesId === i`. From
   * {@link expandTemplate}, built when first read (then the same array on every read): a store
   * that saves from {@link layout} leaves the records unbuilt until after the first start.
   */
  readonly subtasks: SubtaskRecord[];
  /**
   * The same subtasks in columns, when {@link expandTemplate} made the task. A store may save
   * from it while {@link SubtaskLayout.built} is false; once `subtasks` has been read, its
   * records (which their reader may have changed) are the task.
   */
  readonly layout?: SubtaskLayout;
}

const isSplit = (node: TemplateNode): boolean => node.splitKey !== undefined;

/** Copies of each node: its split list's length, or 1. Throws when a split list is missing or empty. */
function splitSizes(validated: ValidatedTemplate, context: TaskContext): Map<string, number> {
  const sizes = new Map<string, number>();
  const issues: ValidationIssue[] = [];
  for (const node of validated.order) {
    if (node.splitKey === undefined) {
      sizes.set(node.key, 1);
      continue;
    }
    // Own keys only: a split key such as `constructor` must not find Object.prototype's.
    const list = Object.hasOwn(context.listMap, node.splitKey)
      ? context.listMap[node.splitKey]
      : undefined;
    if (list === undefined || list.length === 0) {
      issues.push({
        path: `listMap.${node.splitKey}`,
        message: `${list ? 'must not be empty' : 'is required'}: node ${JSON.stringify(node.key)} is split over it`,
        value: list,
      });
    }
    sizes.set(node.key, list?.length ?? 0);
  }
  if (issues.length > 0) {
    throw new TaskArgumentsError(JSON.stringify(validated.template.name), issues);
  }
  return sizes;
}

/** `host_id` as a number when it is a positive integer: what makes a task single-host. */
function hostIdOf(context: TaskContext): number | undefined {
  const raw = context.stringMap['host_id'];
  if (raw === undefined || !/^[1-9]\d*$/.test(raw)) return undefined;
  const id = Number(raw);
  return Number.isSafeInteger(id) ? id : undefined;
}

/**
 * Counts the subtasks `expandTemplate` would create, so a store can reserve ids first.
 * Throws like {@link expandTemplate} on bad arguments.
 */
export function countSubtasks(validated: ValidatedTemplate, args: unknown): number {
  const { template } = validated;
  const context = buildTaskContext(template.name, args, template.prohibitRollback ?? false);
  let total = 0;
  for (const size of splitSizes(validated, context).values()) total += size;
  return total;
}

/**
 * Calls `link(from, to)` (subtask indexes) for every dependency of the expansion, by SPEC §3:
 * plain→plain 1:1; plain→split fans out (a SERIAL split is entered at its first copy);
 * split→plain fans in (a SERIAL split is left from its last copy); split→split over the same
 * list joins copy i to copy i; a SERIAL split chains its copies.
 */
function forEachLink(
  { template, order }: ValidatedTemplate,
  firstIndex: ReadonlyMap<string, number>,
  sizes: ReadonlyMap<string, number>,
  link: (from: number, to: number) => void,
): void {
  const nodes = new Map(order.map((node) => [node.key, node]));
  for (const edge of template.edges) {
    const from = nodes.get(edge.from) as TemplateNode;
    const to = nodes.get(edge.to) as TemplateNode;
    const fromFirst = firstIndex.get(from.key) as number;
    const toFirst = firstIndex.get(to.key) as number;
    const fromSize = sizes.get(from.key) as number;
    const toSize = sizes.get(to.key) as number;
    if (isSplit(from) && isSplit(to)) {
      for (let i = 0; i < fromSize; i++) link(fromFirst + i, toFirst + i);
    } else if (isSplit(to)) {
      if (to.splitMethod === SplitMethod.SERIAL) link(fromFirst, toFirst);
      else for (let i = 0; i < toSize; i++) link(fromFirst, toFirst + i);
    } else if (isSplit(from)) {
      if (from.splitMethod === SplitMethod.SERIAL) link(fromFirst + fromSize - 1, toFirst);
      else for (let i = 0; i < fromSize; i++) link(fromFirst + i, toFirst);
    } else {
      link(fromFirst, toFirst);
    }
  }
  for (const node of order) {
    if (node.splitMethod !== SplitMethod.SERIAL) continue;
    const first = firstIndex.get(node.key) as number;
    const size = sizes.get(node.key) as number;
    for (let i = first + 1; i < first + size; i++) link(i - 1, i);
  }
}

/**
 * Expands a validated template with arguments into a task and its subtasks (SPEC §3), in time
 * and memory linear in the number of subtasks and edges; no graph library is involved. The
 * dependencies are laid out in columns first ({@link ExpandedTask.layout}); the records are
 * built from them when `subtasks` is first read.
 *
 * Wiring of a template edge `a → b`: plain→plain 1:1; plain→split fans out to every copy;
 * split→plain fans in from every copy; split→split (same list) joins copy i to copy i. A
 * SERIAL split chains its copies (i → i+1); it is entered at its first copy and left from its
 * last, so edges into or out of it are not repeated on every copy.
 *
 * @throws TaskArgumentsError when the arguments are malformed or a split list is missing or empty.
 */
export function expandTemplate(
  validated: ValidatedTemplate,
  args: unknown,
  options: ExpandOptions,
): ExpandedTask {
  const { template, order } = validated;
  const context = buildTaskContext(template.name, args, template.prohibitRollback ?? false);
  const sizes = splitSizes(validated, context);
  let count = 0;
  for (const size of sizes.values()) count += size;

  const taskId = options.ids.nextTaskId();
  const base = options.ids.reserveSubtaskIds(count);
  const firstIndex = new Map<string, number>();
  const nodes: LayoutNode[] = [];
  let next = 0;
  for (const node of order) {
    const size = sizes.get(node.key) as number;
    firstIndex.set(node.key, next);
    nodes.push({ node, first: next, size, split: isSplit(node) });
    next += size;
  }
  const layout = new SubtaskLayout(taskId, base, nodes, (link) =>
    forEachLink(validated, firstIndex, sizes, link),
  );

  const hostId = hostIdOf(context);
  const task: TaskRecord = {
    id: taskId,
    name: template.name,
    template,
    creator: options.creator,
    executor: options.executor,
    ...(hostId === undefined ? {} : { hostId }),
    type: options.type ?? TaskType.MANUAL,
    taskDefinitionId: options.taskDefinitionId ?? -1,
    context,
    status: TaskStatus.RUNNING,
    operation: Operation.EXECUTE,
    startTime: options.now,
  };
  return {
    task,
    layout,
    get subtasks() {
      return layout.records();
    },
  };
}
