import { describe, expect, it, vi } from 'vitest';
import { ApiError } from './api-error.js';
import { Authenticator, parseBasicAuthorization } from './authenticator.js';
import { MemoryServiceState } from './memory-service-state.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { Permission } from './permissions.js';
import { basic, TEST_PASSWORD_COST } from './test-support/harness.js';
import { ensureAdmin } from './users.js';

describe('passwords', () => {
  it('hashes with scrypt and a salt, verifies, and refuses malformed hashes', async () => {
    const a = await hashPassword('pässword', { cost: TEST_PASSWORD_COST });
    const b = await hashPassword('pässword', { cost: TEST_PASSWORD_COST });
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('pässword', a)).toBe(true);
    // NFC and NFD spellings are one password.
    expect(await verifyPassword('pa\u0308ssword', a)).toBe(true);
    expect(await verifyPassword('password', a)).toBe(false);
    for (const bad of [
      '',
      'plain',
      'scrypt$x$8$1$a$b',
      'bcrypt$1$2$3$4$5',
      'scrypt$1024$8$1$c2FsdA==$',
    ]) {
      expect(await verifyPassword('pässword', bad)).toBe(false);
    }
    await expect(hashPassword('x', { cost: 1000 })).rejects.toThrow(RangeError);
  });

  it('uses the OWASP cost by default', async () => {
    expect((await hashPassword('x')).split('$')[1]).toBe('131072');
  });
});

describe('parseBasicAuthorization', () => {
  it('splits user and password at the first colon', () => {
    expect(parseBasicAuthorization(basic('ann', 'a:b:c'))).toEqual({
      user: 'ann',
      password: 'a:b:c',
    });
    expect(parseBasicAuthorization(`basic ${Buffer.from('ann:').toString('base64')}`)).toEqual({
      user: 'ann',
      password: '',
    });
    for (const bad of [
      undefined,
      '',
      'Basic',
      'Bearer x',
      'Basic a',
      'Basic ####',
      `Basic ${Buffer.from('nocolon').toString('base64')}`,
    ]) {
      expect(parseBasicAuthorization(bad)).toBeUndefined();
    }
  });
});

describe('Authenticator', () => {
  async function setup(ttl = 60_000) {
    const state = new MemoryServiceState();
    await state.putUser({
      name: 'ann',
      passwordHash: await hashPassword('ann-password', { cost: TEST_PASSWORD_COST }),
      permissions: [Permission.HOST_MANAGER],
    });
    const getUser = vi.spyOn(state, 'getUser');
    return { state, getUser, auth: new Authenticator(state, { cacheTtlMs: ttl }) };
  }

  it('authenticates, then trusts the credential from its cache', async () => {
    const { auth, getUser } = await setup();
    const header = basic('ann', 'ann-password');
    expect(await auth.authenticate(header)).toEqual({ name: 'ann', permissions: ['HOST_MANAGER'] });
    await Promise.all([auth.authenticate(header), auth.authenticate(header)]);
    expect(getUser).toHaveBeenCalledTimes(1);
    auth.forget();
    await auth.authenticate(header);
    expect(getUser).toHaveBeenCalledTimes(2);
  });

  it('shares one check among concurrent requests with the same credential', async () => {
    const { auth, getUser } = await setup();
    const header = basic('ann', 'ann-password');
    await Promise.all(Array.from({ length: 10 }, () => auth.authenticate(header)));
    expect(getUser).toHaveBeenCalledTimes(1);
  });

  it('refuses without caching a failure', async () => {
    const { auth, getUser } = await setup();
    const wrong = basic('ann', 'nope');
    await expect(auth.authenticate(wrong)).rejects.toBeInstanceOf(ApiError);
    await expect(auth.authenticate(wrong)).rejects.toMatchObject({
      code: 20101,
      message: 'invalid credentials',
    });
    expect(getUser).toHaveBeenCalledTimes(2);
    await expect(auth.authenticate(undefined)).rejects.toMatchObject({
      code: 20101,
      message: 'authentication required: send HTTP Basic credentials',
    });
  });

  it('checks again once the cache entry expired', async () => {
    const { auth, getUser } = await setup(1);
    const header = basic('ann', 'ann-password');
    await auth.authenticate(header);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await auth.authenticate(header);
    expect(getUser).toHaveBeenCalledTimes(2);
  });
});

describe('ensureAdmin', () => {
  it('creates the admin with every permission, generating a password when none is given', async () => {
    const state = new MemoryServiceState();
    const created = await ensureAdmin(state, 'admin', undefined, {
      passwordCost: TEST_PASSWORD_COST,
    });
    expect(created.kind).toBe('created');
    const generated = (created as { generatedPassword: string }).generatedPassword;
    expect(generated).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const user = await state.getUser('admin');
    expect(user?.permissions).toEqual(['HOST_MANAGER', 'TASK_MANAGER']);
    expect(user?.passwordHash).not.toContain(generated);
    expect(await verifyPassword(generated, user?.passwordHash ?? '')).toBe(true);
    expect(await ensureAdmin(state, 'admin', undefined)).toEqual({ kind: 'unchanged' });
    expect(
      await ensureAdmin(state, 'admin', 'chosen-password', { passwordCost: TEST_PASSWORD_COST }),
    ).toEqual({ kind: 'passwordReset' });
    expect(await ensureAdmin(state, 'admin', 'chosen-password')).toEqual({ kind: 'unchanged' });
  });
});
