/** What a user may do. Host endpoints need `HOST_MANAGER`; task operations need `TASK_MANAGER`. */
export const Permission = {
  /** Stop, batch stop and restart OCP agents; stop one agent process; list a host's processes. */
  HOST_MANAGER: 'HOST_MANAGER',
  /** Retry, skip, cancel and roll back tasks and subtasks. */
  TASK_MANAGER: 'TASK_MANAGER',
} as const;
/** One of the {@link Permission} values. */
export type Permission = (typeof Permission)[keyof typeof Permission];

/** Every permission, in a stable order. */
export const ALL_PERMISSIONS: readonly Permission[] = Object.freeze(Object.values(Permission));

/** Whether `value` names a {@link Permission}. */
export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && (ALL_PERMISSIONS as readonly string[]).includes(value);
}
