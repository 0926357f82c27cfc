import { generatePassword, hashPassword, verifyPassword } from './passwords.js';
import { ALL_PERMISSIONS, type Permission } from './permissions.js';
import type { ServiceState } from './service-state.js';

/** What {@link ensureAdmin} did. */
export type AdminBootstrap =
  /** The admin was created; `generatedPassword` is set when no password was given. */
  | { readonly kind: 'created'; readonly generatedPassword?: string }
  /** The admin existed with another password than the one given: its password was reset. */
  | { readonly kind: 'passwordReset' }
  /** The admin existed and nothing was asked of it. */
  | { readonly kind: 'unchanged' };

/** Options of {@link ensureAdmin} and {@link createUser}. */
export interface UserOptions {
  /** scrypt cost of new hashes (see `hashPassword`); lower it only for tests. */
  readonly passwordCost?: number;
}

/** Creates or replaces a user with `password` (stored as a scrypt hash) and `permissions`. */
export async function createUser(
  state: ServiceState,
  name: string,
  password: string,
  permissions: readonly Permission[],
  options: UserOptions = {},
): Promise<void> {
  const cost = options.passwordCost;
  const passwordHash = await hashPassword(password, cost === undefined ? {} : { cost });
  await state.putUser({ name, passwordHash, permissions: [...permissions] });
}

/**
 * Makes sure the first admin exists with every permission: created with `password`, or a
 * generated one when `password` is undefined (the caller shows it once); when it exists and
 * `password` is given but does not match, its password is reset to it.
 */
export async function ensureAdmin(
  state: ServiceState,
  name: string,
  password: string | undefined,
  options: UserOptions = {},
): Promise<AdminBootstrap> {
  const existing = await state.getUser(name);
  if (!existing) {
    const chosen = password ?? generatePassword();
    await createUser(state, name, chosen, ALL_PERMISSIONS, options);
    return password === undefined
      ? { kind: 'created', generatedPassword: chosen }
      : { kind: 'created' };
  }
  if (password !== undefined && !(await verifyPassword(password, existing.passwordHash))) {
    const permissions = [...new Set([...existing.permissions, ...ALL_PERMISSIONS])];
    await createUser(state, name, password, permissions, options);
    return { kind: 'passwordReset' };
  }
  return { kind: 'unchanged' };
}
