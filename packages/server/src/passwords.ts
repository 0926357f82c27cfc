import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt parameters: OWASP's minimum (N=2^17, r=8, p=1: 128 MiB and about 0.3 s per hash here). */
const DEFAULT_COST = 131_072;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const PREFIX = 'scrypt';

function derive(password: string, salt: Buffer, options: ScryptOptions, length: number) {
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, length, options, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/**
 * Hashes a password with scrypt and a random salt: `scrypt$N$r$p$salt$hash` (base64), the cost
 * parameters kept with the hash so that they can be raised later without breaking old hashes.
 *
 * @example await hashPassword('s3cret') // 'scrypt$16384$8$1$…$…'
 */
export async function hashPassword(
  password: string,
  options: HashPasswordOptions = {},
): Promise<string> {
  const cost = options.cost ?? DEFAULT_COST;
  if (!Number.isSafeInteger(cost) || cost < 2 || (cost & (cost - 1)) !== 0) {
    throw new RangeError(`scrypt cost must be a power of two >= 2, got ${cost}`);
  }
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(
    password,
    salt,
    { N: cost, r: BLOCK_SIZE, p: PARALLELISM, maxmem: maxMemory(cost, BLOCK_SIZE) },
    KEY_LENGTH,
  );
  return [
    PREFIX,
    cost,
    BLOCK_SIZE,
    PARALLELISM,
    salt.toString('base64'),
    key.toString('base64'),
  ].join('$');
}

/** Options of {@link hashPassword}. */
export interface HashPasswordOptions {
  /** scrypt's N, a power of two; lower it only for tests. @default 131072 (2^17) */
  readonly cost?: number;
}

/** scrypt needs 128 × N × r bytes; leave room above it. */
const maxMemory = (cost: number, blockSize: number) => 2 * 128 * cost * blockSize;

/**
 * Whether `password` matches `stored` (made by {@link hashPassword}); compares in constant time.
 * A malformed `stored` never matches.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return false;
  const [, n, r, p, saltText, keyText] = parts as [string, string, string, string, string, string];
  const N = Number(n);
  const blockSize = Number(r);
  const parallel = Number(p);
  if (![N, blockSize, parallel].every((v) => Number.isSafeInteger(v) && v > 0)) return false;
  const expected = Buffer.from(keyText, 'base64');
  if (expected.length === 0) return false;
  const actual = await derive(
    password,
    Buffer.from(saltText, 'base64'),
    { N, r: blockSize, p: parallel, maxmem: maxMemory(N, blockSize) },
    expected.length,
  );
  return timingSafeEqual(actual, expected);
}

/** Hashes of random passwords, per cost: verifying against one costs what a real check costs. */
const decoys = new Map<number, Promise<string>>();

/**
 * Spends the time of one password check at `cost` and answers false: used for unknown users, so
 * that response times do not tell which user names exist.
 */
export async function verifyAgainstDecoy(password: string, cost = DEFAULT_COST): Promise<false> {
  let decoy = decoys.get(cost);
  if (!decoy) decoys.set(cost, (decoy = hashPassword(randomBytes(16).toString('hex'), { cost })));
  await verifyPassword(password, await decoy);
  return false;
}

/** A random password for the first admin: 24 characters of base64url (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
