import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ssoProviderLoader } from '../../auth/oidc.js';
import type { SsoProvider } from '../../auth/sso.js';
import { loadSsoKey, openTransaction, sealTransaction } from '../../auth/sso-transaction.js';
import { pathsFor } from '../../core/paths.js';
import { createLogger } from '../../core/log.js';
import { commands, runCommand, type CommandIO } from '../../receiver/commands/index.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';
import { startIdp, type TestIdp } from '../support/oidc-idp.js';

// Single sign-on end to end against a real OpenID provider on loopback: the commands configure
// it, the provider the sign-in server would use drives the real authorization-code flow.
const CALLBACK = 'http://127.0.0.1:9/_auth/oidc/callback';

describe('single sign-on with OpenID Connect', () => {
  let idp: TestIdp;
  let mini: MiniPlatform;
  let logged: string;
  let sso: () => SsoProvider | null;
  let clock: number;
  const origin = { actor: 'admin', source: 'test' };

  const as = async (user: string, argv: string[], stdin = '') => {
    let out = '';
    let err = '';
    const io: CommandIO = { out: (d) => void (out += d), err: (d) => void (err += d), readStdin: async () => stdin, signal: new AbortController().signal, actor: user, local: false, user };
    const code = await runCommand(commands, argv, io, mini.platform);
    return { code, out, err };
  };
  const configure = (...extra: string[]) => as('admin', ['auth:oidc', idp.issuer, idp.clientId, '--secret-stdin', ...extra], `${idp.clientSecret}\n`);

  /** One browser round trip: begin, the provider's login and consent, the callback URL. */
  const roundTrip = async (account: string, next = '/Portal') => {
    const provider = sso()!;
    const begun = await provider.begin({ next, callbackUrl: CALLBACK });
    return { provider, begun, callback: await idp.login(begun.redirect, account) };
  };
  const signIn = async (account: string, next = '/Portal') => {
    const { provider, begun, callback } = await roundTrip(account, next);
    return provider.finish({ callbackUrl: callback, transaction: begun.transaction, from: 'http 127.0.0.1' });
  };

  beforeAll(async () => {
    idp = await startIdp({ redirectUri: CALLBACK });
  });
  afterAll(() => idp.close());

  beforeEach(async () => {
    mini = await miniPlatform();
    logged = '';
    clock = Date.now();
    const logger = createLogger('debug', { write: (d: string) => void (logged += d) } as unknown as NodeJS.WritableStream);
    sso = ssoProviderLoader({ db: mini.platform.users.db, paths: pathsFor(mini.dir), logger, now: () => new Date(clock) });
    idp.accounts.clear();
    idp.accounts.set('u-100', { preferred_username: 'Alice.Smith', email: 'alice@example.com', email_verified: true, groups: ['eng', '/Ops', 'not in slipway'] });
    idp.accounts.set('u-200', { preferred_username: 'carol', email: 'carol@example.com' });
    idp.accounts.set('u-300', { email: 'dave@example.com', groups: [] });
  });
  afterEach(() => mini.close());

  it('is off until configured, and configured by auth:oidc after discovery', async () => {
    expect(sso()).toBeNull();
    const r = await configure('--role', 'developer');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('Register this redirect URI at the provider: http://localhost:8080/_auth/oidc/callback');
    expect(sso()?.label).toBe('Sign in with SSO');
    expect(sso()).toBe(sso());
    expect((await as('admin', ['auth:oidc:off'])).out).toContain('Single sign-on off');
    expect(sso()).toBeNull();
  });

  it('creates the user on first sign-in with the configured role, maps groups that exist, and reuses the user after', async () => {
    mini.platform.users.createGroup(origin, 'eng');
    mini.platform.users.createGroup(origin, 'ops');
    mini.platform.users.createGroup(origin, 'sales');
    expect((await configure('--role', 'developer')).code).toBe(0);

    const first = await signIn('u-100', '/Manager');
    expect(first).toEqual({ user: 'alice-smith', next: '/Manager' });
    const alice = mini.platform.users.info('alice-smith');
    expect(alice).toMatchObject({ role: 'developer', email: 'alice@example.com', locked: false, hasPassword: false, groups: ['eng', 'ops'] });
    expect(mini.platform.users.listGroups().map((g) => g.name)).toEqual(['eng', 'ops', 'sales']);

    // An admin's changes to the role stand; group memberships follow the provider's claim.
    mini.platform.users.setRole(origin, 'alice-smith', 'admin');
    mini.platform.users.setMembers(origin, 'sales', ['alice-smith'], true);
    idp.accounts.set('u-100', { ...idp.accounts.get('u-100'), preferred_username: 'renamed-at-idp', groups: ['eng'] });
    expect(await signIn('u-100')).toEqual({ user: 'alice-smith', next: '/Portal' });
    expect(mini.platform.users.info('alice-smith')).toMatchObject({ role: 'admin', groups: ['eng'] });
    expect(mini.platform.users.list().map((u) => u.name)).toEqual(['admin', 'alice-smith']);

    const audit = mini.platform.users.auditLog({ actor: 'alice-smith', limit: 10 });
    expect(audit.map((e) => e.action)).toEqual(['users:add', 'sign-in', 'sign-in']);
    expect(audit[1]).toMatchObject({ source: 'http 127.0.0.1', detail: 'via=oidc groups=eng,ops' });
  });

  it('falls back to the email local part for the name; without a groups claim memberships stay', async () => {
    mini.platform.users.createGroup(origin, 'eng');
    expect((await configure()).code).toBe(0);
    idp.accounts.set('u-300', { email: 'dave@example.com' });
    expect((await signIn('u-300')).user).toBe('dave');
    expect(mini.platform.users.info('dave')).toMatchObject({ role: 'viewer', groups: [] });
    mini.platform.users.setMembers(origin, 'eng', ['dave'], true);
    expect((await signIn('u-300')).user).toBe('dave');
    expect(mini.platform.users.info('dave').groups).toEqual(['eng']);
  });

  it('refuses a callback without its transaction, a tampered one, and a tampered or foreign state', async () => {
    expect((await configure()).code).toBe(0);
    const a = await roundTrip('u-100');
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: '' })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION', message: expect.stringContaining('no sign-in in progress') });
    const t = a.begun.transaction;
    const flipped = `${t.slice(0, 20)}${t[20] === 'A' ? 'B' : 'A'}${t.slice(21)}`;
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: flipped })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION' });
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: 'v1.not-base64!' })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION' });

    const forged = new URL(a.callback);
    forged.searchParams.set('state', 'forged-state');
    await expect(a.provider.finish({ callbackUrl: forged, transaction: t })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION', message: expect.stringContaining('state mismatch') });
    // Another round trip's cookie does not fit this callback (login CSRF).
    const b = await a.provider.begin({ next: '/', callbackUrl: CALLBACK });
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: b.transaction })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION' });
    // None of it cost the real round trip its code: it still signs in, exactly once.
    expect((await a.provider.finish({ callbackUrl: a.callback, transaction: t })).user).toBe('alice-smith');
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: t })).rejects.toMatchObject({ code: 'E_SSO_PROVIDER', message: expect.stringContaining('invalid_grant') });
    expect(mini.platform.users.auditLog({ limit: 20 }).filter((e) => e.action === 'sign-in-failed')).toHaveLength(6);
  });

  it('refuses an ID token whose nonce is not the one sent, and an expired round trip', async () => {
    expect((await configure()).code).toBe(0);
    const key = await loadSsoKey(pathsFor(mini.dir).ssoKey);
    expect((await fs.stat(pathsFor(mini.dir).ssoKey)).mode & 0o777).toBe(0o600);
    const a = await roundTrip('u-100');
    const other = sealTransaction(key, { ...openTransaction(key, a.begun.transaction, clock), nonce: 'a-different-nonce' });
    await expect(a.provider.finish({ callbackUrl: a.callback, transaction: other })).rejects.toMatchObject({ code: 'E_SSO_TOKEN', message: expect.stringContaining('unexpected ID Token "nonce" claim value') });

    const b = await roundTrip('u-100');
    clock += 11 * 60 * 1000;
    await expect(b.provider.finish({ callbackUrl: b.callback, transaction: b.begun.transaction })).rejects.toMatchObject({ code: 'E_SSO_TRANSACTION', message: expect.stringContaining('too long') });
    expect(mini.platform.users.list().map((u) => u.name)).toEqual(['admin']);
  });

  it('refuses locked users, names that clash with existing users, and names outside the rule', async () => {
    expect((await configure()).code).toBe(0);
    expect((await signIn('u-100')).user).toBe('alice-smith');
    mini.platform.users.setLocked(origin, 'alice-smith', true);
    await expect(signIn('u-100')).rejects.toMatchObject({ code: 'E_SSO_LOCKED', message: expect.stringContaining('users:unlock alice-smith') });
    expect(mini.platform.users.auditLog({ actor: 'alice-smith', limit: 1 })[0]).toMatchObject({ action: 'sign-in-failed', detail: 'via=oidc code=E_SSO_LOCKED' });

    // A password user, or the built-in admin, is never taken over by an SSO account of that name.
    mini.platform.users.add(origin, { name: 'carol', role: 'viewer', email: null, passwordHash: null });
    await expect(signIn('u-200')).rejects.toMatchObject({ code: 'E_SSO_USER', message: expect.stringContaining('"carol" exists') });
    idp.accounts.set('u-200', { preferred_username: 'admin' });
    await expect(signIn('u-200')).rejects.toMatchObject({ code: 'E_SSO_USER' });
    expect(mini.platform.users.info('admin').groups).toEqual([]);
    idp.accounts.set('u-200', { preferred_username: '42' });
    await expect(signIn('u-200')).rejects.toMatchObject({ code: 'E_SSO_USER', message: expect.stringContaining('cannot be a Slipway user name') });
    idp.accounts.set('u-200', { preferred_username: "x'; DROP TABLE users; --" });
    expect((await signIn('u-200')).user).toBe('x-drop-table-users');
    expect(mini.platform.users.list().map((u) => u.name)).toEqual(['admin', 'alice-smith', 'carol', 'x-drop-table-users']);
  });

  it('says clearly when the provider refuses the client', async () => {
    expect((await configure()).code).toBe(0);
    // The secret is stored as given; a wrong one shows at the token exchange, not before.
    mini.platform.users.db.prepare('UPDATE oidc_settings SET client_secret = ?').run('wrong-secret');
    await expect(signIn('u-100')).rejects.toMatchObject({ code: 'E_SSO_PROVIDER', message: expect.stringContaining('refused this platform as its client (invalid_client)') });
    expect(logged).not.toContain('wrong-secret');
  });

  it('never shows, logs or audits the client secret', async () => {
    const secret = idp.clientSecret;
    const r = await configure('--groups-claim', 'groups', '--role', 'viewer', '--user-claim', 'email');
    expect(r.code, r.err).toBe(0);
    const info = await as('admin', ['auth:oidc:info']);
    expect(info.out).toMatch(/secret\s+\*\*\*/);
    expect(info.out).toContain('user claim    email');
    const infoJson = JSON.parse((await as('admin', ['auth:oidc:info', '--json'])).out) as Record<string, unknown>;
    expect(infoJson).toMatchObject({ issuer: idp.issuer, clientId: 'slipway', clientSecret: '***', groupsClaim: 'groups', role: 'viewer' });
    expect((await signIn('u-100')).user).toBe('alice');
    const audit = await as('admin', ['audit', '--json']);
    expect(audit.out).toContain('"action": "auth:oidc"');
    for (const text of [r.out, r.err, info.out, audit.out, JSON.stringify(infoJson), logged, mini.unexpected.join('')]) expect(text).not.toContain(secret);
    expect(logged).not.toMatch(/code=|id_token|access_token/);
  });

  it('checks the arguments and the provider before changing anything, and is for admins only', async () => {
    const closed = await freePort();
    mini.platform.users.add(origin, { name: 'dev', role: 'developer', email: null, passwordHash: null });
    const cases: [string[], string, number, RegExp][] = [
      [['auth:oidc', idp.issuer, 'slipway'], 'x\n', 2, /needs --secret-stdin/],
      [['auth:oidc', idp.issuer, 'slipway', '--secret-stdin'], '', 2, /no client secret on standard input/],
      [['auth:oidc', 'ftp://idp.example', 'slipway', '--secret-stdin'], 'x\n', 2, /invalid issuer URL/],
      [['auth:oidc', 'https://u:p@idp.example', 'slipway', '--secret-stdin'], 'x\n', 2, /invalid issuer URL/],
      [['auth:oidc', idp.issuer, 'has space', '--secret-stdin'], 'x\n', 2, /invalid client id/],
      [['auth:oidc', idp.issuer, 'slipway', '--secret-stdin', '--role', 'owner'], 'x\n', 2, /invalid role/],
      [['auth:oidc', idp.issuer, 'slipway', '--secret-stdin', '--groups-claim', 'a b'], 'x\n', 2, /invalid --groups-claim/],
      [['auth:oidc', `http://127.0.0.1:${closed}/realms/none`, 'slipway', '--secret-stdin'], 'x\n', 1, /could not read the OpenID configuration of http:\/\/127\.0\.0\.1:\d+\/realms\/none \(ECONNREFUSED\): check the issuer URL/],
      [['auth:oidc', `${idp.issuer}/other`, 'slipway', '--secret-stdin'], 'x\n', 1, /could not read the OpenID configuration/],
    ];
    for (const [argv, stdin, code, message] of cases) {
      const r = await as('admin', argv, stdin);
      expect(r.code, argv.join(' ')).toBe(code);
      expect(r.err).toMatch(message);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
    expect((await as('admin', ['auth:oidc:info'])).out).toContain('single sign-on is off');
    for (const argv of [['auth:oidc', idp.issuer, 'slipway', '--secret-stdin'], ['auth:oidc:off'], ['auth:oidc:info']]) {
      expect((await as('dev', argv, `${idp.clientSecret}\n`)).err, argv[0]).toMatch(/^slipway: permission denied/);
    }
    expect((await as('admin', ['auth:oidc:off'])).out).toBe('single sign-on was already off\n');
    expect(mini.platform.users.auditLog({ limit: 50 }).filter((e) => e.action.startsWith('auth:'))).toEqual([]);
  });
});

/** A loopback port nothing listens on. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the single sign-on key', () => {
  it('is made once and shared: concurrent loads agree', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-sso-key-'));
    try {
      const file = path.join(dir, 'state', 'sso.key');
      const keys = await Promise.all(Array.from({ length: 8 }, () => loadSsoKey(file)));
      expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(1);
      expect(keys[0]).toHaveLength(32);
      expect((await fs.readdir(path.dirname(file)))).toEqual(['sso.key']);
      await fs.writeFile(file, 'garbage\n');
      await expect(loadSsoKey(file)).rejects.toMatchObject({ code: 'E_STATE' });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
