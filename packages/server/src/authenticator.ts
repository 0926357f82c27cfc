import { createHmac, randomBytes } from 'node:crypto';
import { ApiError, ServiceErrorCode } from './api-error.js';
import { verifyAgainstDecoy, verifyPassword } from './passwords.js';
import type { Permission } from './permissions.js';
import type { ServiceState } from './service-state.js';

/** Who made a request: an authenticated user and what they may do. */
export interface Caller {
  readonly name: string;
  readonly permissions: readonly Permission[];
}

/** Options of an {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** How long a verified credential is trusted without a new scrypt check, ms. @default 60_000 */
  readonly cacheTtlMs?: number;
  /** Most verified credentials remembered. @default 10_000 */
  readonly cacheSize?: number;
}

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="dagops", charset="UTF-8"' } as const;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function unauthenticated(message: string): ApiError {
  return new ApiError(ServiceErrorCode.UNAUTHENTICATED, message, { headers: CHALLENGE });
}

/** Splits `Basic base64(user:password)`; undefined when the header is not that. */
export function parseBasicAuthorization(
  header: string | undefined,
): { readonly user: string; readonly password: string } | undefined {
  if (header === undefined) return undefined;
  const match = /^Basic +(\S+) *$/i.exec(header);
  const encoded = match?.[1];
  if (encoded === undefined || encoded.length % 4 !== 0 || !BASE64.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * HTTP Basic authentication against the users of a {@link ServiceState}, whose passwords are
 * scrypt hashes. scrypt is slow on purpose (about 0.3 s at the default cost), so a verified
 * credential is remembered for `cacheTtlMs` under an HMAC of the header with a key that lives
 * only in this process (never the password itself), and concurrent checks of one credential
 * share one scrypt run. Unknown users cost one scrypt run too, so timing does not tell them
 * apart from wrong passwords.
 */
export class Authenticator {
  private readonly ttlMs: number;
  private readonly size: number;
  private readonly key = randomBytes(32);
  private readonly cache = new Map<string, { caller: Caller; expiresAt: number }>();
  private readonly pending = new Map<string, Promise<Caller | undefined>>();

  constructor(
    private readonly state: ServiceState,
    options: AuthenticatorOptions = {},
  ) {
    this.ttlMs = options.cacheTtlMs ?? 60_000;
    this.size = options.cacheSize ?? 10_000;
  }

  /**
   * The caller named by an `Authorization` header.
   * @throws ApiError 20101 (401) without credentials, for an unknown user or a wrong password.
   */
  async authenticate(header: string | undefined): Promise<Caller> {
    if (header === undefined || header === '') {
      throw unauthenticated('authentication required: send HTTP Basic credentials');
    }
    const id = createHmac('sha256', this.key).update(header).digest('base64');
    const now = Date.now();
    const cached = this.cache.get(id);
    if (cached && cached.expiresAt > now) return cached.caller;
    if (cached) this.cache.delete(id);
    let check = this.pending.get(id);
    if (!check) {
      check = this.verify(header).finally(() => this.pending.delete(id));
      this.pending.set(id, check);
    }
    const caller = await check;
    if (!caller) throw unauthenticated('invalid credentials');
    if (!this.cache.has(id)) {
      if (this.cache.size >= this.size) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(id, { caller, expiresAt: Date.now() + this.ttlMs });
    }
    return caller;
  }

  /** Forgets every verified credential (after a user or password changed). */
  forget(): void {
    this.cache.clear();
  }

  private async verify(header: string): Promise<Caller | undefined> {
    const credentials = parseBasicAuthorization(header);
    if (!credentials) return undefined;
    const user = await this.state.getUser(credentials.user);
    if (!user) return verifyAgainstDecoy(credentials.password).then(() => undefined);
    if (!(await verifyPassword(credentials.password, user.passwordHash))) return undefined;
    return Object.freeze({ name: user.name, permissions: Object.freeze([...user.permissions]) });
  }
}
