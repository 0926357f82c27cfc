import type { Permission } from './permissions.js';

/** A user as stored: name, scrypt hash (never the password), permissions. */
export interface UserRecord {
  readonly name: string;
  /** `scrypt$N$r$p$salt$hash`, from `hashPassword`. */
  readonly passwordHash: string;
  readonly permissions: readonly Permission[];
}

/** What {@link ServiceState.claimIdempotencyKey} is asked. */
export interface IdempotencyKeyRequest {
  /** Keys are per caller: the user's name. */
  readonly owner: string;
  /** The `Idempotency-Key` header. */
  readonly key: string;
  /** Hash of method, path and body: the same key with another request is refused. */
  readonly fingerprint: string;
  /** Epoch ms. */
  readonly now: number;
  /** How long a completed key is remembered, ms. */
  readonly ttlMs: number;
  /** A key claimed this long ago and never completed (a crash) may be claimed again, ms. */
  readonly pendingTimeoutMs: number;
}

/** The answer to a claim of an idempotency key. */
export type IdempotencyClaim =
  /** The key is new (or expired): the request runs, then completes or releases the key. */
  | { readonly kind: 'claimed' }
  /** The same request ran before: answer with its response. */
  | { readonly kind: 'replay'; readonly status: number; readonly body: string }
  /** The key was used with a different request. */
  | { readonly kind: 'mismatch' }
  /** The same key is being processed right now. */
  | { readonly kind: 'inProgress' };

/**
 * The service's own durable state, beside the engine's store: users, the host registry, and
 * idempotency keys. {@link MemoryServiceState} keeps it in this process; `SqlServiceState`
 * keeps it in the same PostgreSQL (server or PGlite) as the engine, in its own schema.
 */
export interface ServiceState {
  /** A user by name, or undefined. */
  getUser(name: string): Promise<UserRecord | undefined>;
  /** Creates or replaces a user. */
  putUser(user: UserRecord): Promise<void>;
  /** How many users exist. */
  countUsers(): Promise<number>;
  /** Registers hosts (known ones are left as they are). */
  addHosts(hostIds: readonly number[]): Promise<void>;
  /** The ids among `hostIds` that are not registered, in the order given. */
  unknownHosts(hostIds: readonly number[]): Promise<number[]>;
  /** How many hosts are registered. */
  countHosts(): Promise<number>;
  /** Every registered host id (the server keeps them in memory to answer 404s fast). */
  listHostIds(): Promise<number[]>;
  /** Claims an idempotency key for a request, or says why not. */
  claimIdempotencyKey(request: IdempotencyKeyRequest): Promise<IdempotencyClaim>;
  /** Stores the response of a claimed key's request (a success). */
  completeIdempotencyKey(
    owner: string,
    key: string,
    response: { readonly status: number; readonly body: string },
  ): Promise<void>;
  /** Forgets a claimed key whose request was refused or failed: nothing of it is kept. */
  releaseIdempotencyKey(owner: string, key: string): Promise<void>;
  /** Drops completed keys whose time is up; returns how many. */
  purgeIdempotencyKeys(now: number): Promise<number>;
  /** Releases what the state holds (not a database connection it was handed). */
  close(): Promise<void>;
}
