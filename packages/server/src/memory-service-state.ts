import type {
  IdempotencyClaim,
  IdempotencyKeyRequest,
  ServiceState,
  UserRecord,
} from './service-state.js';

interface KeyRecord {
  readonly fingerprint: string;
  readonly claimedAt: number;
  expiresAt: number;
  response?: { readonly status: number; readonly body: string };
}

/** A {@link ServiceState} in this process's memory: for tests and embedding. */
export class MemoryServiceState implements ServiceState {
  private readonly users = new Map<string, UserRecord>();
  private readonly hosts = new Set<number>();
  private readonly keys = new Map<string, KeyRecord>();

  getUser(name: string): Promise<UserRecord | undefined> {
    const user = this.users.get(name);
    return Promise.resolve(user && { ...user, permissions: [...user.permissions] });
  }

  putUser(user: UserRecord): Promise<void> {
    this.users.set(user.name, { ...user, permissions: [...user.permissions] });
    return Promise.resolve();
  }

  countUsers(): Promise<number> {
    return Promise.resolve(this.users.size);
  }

  addHosts(hostIds: readonly number[]): Promise<void> {
    for (const id of hostIds) this.hosts.add(id);
    return Promise.resolve();
  }

  unknownHosts(hostIds: readonly number[]): Promise<number[]> {
    return Promise.resolve(hostIds.filter((id) => !this.hosts.has(id)));
  }

  countHosts(): Promise<number> {
    return Promise.resolve(this.hosts.size);
  }

  listHostIds(): Promise<number[]> {
    return Promise.resolve([...this.hosts]);
  }

  claimIdempotencyKey(request: IdempotencyKeyRequest): Promise<IdempotencyClaim> {
    const id = `${request.owner}\u0000${request.key}`;
    const found = this.keys.get(id);
    const stale =
      found !== undefined &&
      (found.expiresAt <= request.now ||
        (found.response === undefined &&
          found.claimedAt + request.pendingTimeoutMs <= request.now));
    if (found === undefined || stale) {
      this.keys.set(id, {
        fingerprint: request.fingerprint,
        claimedAt: request.now,
        expiresAt: request.now + request.ttlMs,
      });
      return Promise.resolve({ kind: 'claimed' });
    }
    if (found.fingerprint !== request.fingerprint) return Promise.resolve({ kind: 'mismatch' });
    if (found.response === undefined) return Promise.resolve({ kind: 'inProgress' });
    return Promise.resolve({ kind: 'replay', ...found.response });
  }

  completeIdempotencyKey(
    owner: string,
    key: string,
    response: { readonly status: number; readonly body: string },
  ): Promise<void> {
    const found = this.keys.get(`${owner}\u0000${key}`);
    if (found) found.response = response;
    return Promise.resolve();
  }

  releaseIdempotencyKey(owner: string, key: string): Promise<void> {
    const id = `${owner}\u0000${key}`;
    if (this.keys.get(id)?.response === undefined) this.keys.delete(id);
    return Promise.resolve();
  }

  purgeIdempotencyKeys(now: number): Promise<number> {
    let purged = 0;
    for (const [id, record] of this.keys) {
      if (record.expiresAt <= now) {
        this.keys.delete(id);
        purged++;
      }
    }
    return Promise.resolve(purged);
  }

  /** Idempotency keys held, answered or not (for tests and diagnostics). */
  get idempotencyKeyCount(): number {
    return this.keys.size;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
