import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthHandler, listenAuth } from '../../auth/server.js';
import { signOutToken } from '../../auth/csrf.js';
import { SessionStore } from '../../auth/sessions.js';
import { SignInLimiter } from '../../auth/rate-limit.js';
import type { SsoProvider } from '../../auth/sso.js';
import { SlipwayError } from '../../core/errors.js';
import { openDb, type Db } from '../../core/db.js';
import { createLogger } from '../../core/log.js';
import { hashPassword } from '../../core/passwords.js';
import { UserStore } from '../../core/users.js';
import { nginxFiles } from '../../router/nginx-config.js';
import type { RouteTable } from '../../router/table.js';
import { eventually, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from '../router/helpers.js';

// The sign-in check at the router: real nginx (the platform's renderer and supervisor), the real
// auth server on a unix socket, real HTTP. The platform-level flows are in test/e2e/sign-in.test.ts.
const PASSWORD = 'correct horse battery';
const admin = { actor: 'admin', source: 'test' };

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('sign-in and private apps at the router', () => {
  let dir: string;
  let db: Db;
  let users: UserStore;
  let clock = Date.now();
  let up: Upstream;
  let fx: NginxFixture;
  let auth: http.Server;
  const checks: string[] = [];

  const send = (o: { path: string; host?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string; from?: string }): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: fx.router.port, method: o.method ?? 'GET', path: o.path, agent: false, ...(o.from ? { localAddress: o.from } : {}), headers: { host: o.host ?? `127.0.0.1:${fx.router.port}`, ...o.headers } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end(o.body);
    });
  const cookieOf = (r: Reply, name: string): string | undefined =>
    (r.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`))?.split(';')[0]!.slice(name.length + 1);
  /** The sign-in form's CSRF token and its cookie, as a browser gets them. */
  const form = async (from?: string): Promise<{ csrf: string; cookie: string }> => {
    const page = await send({ path: '/_auth/login', ...(from ? { from } : {}) });
    expect(page.status).toBe(200);
    return { csrf: /name="csrf" value="([^"]+)"/.exec(page.body)![1]!, cookie: `slipway_csrf=${cookieOf(page, 'slipway_csrf')}` };
  };
  const signIn = async (user: string, o: { password?: string; next?: string; cookie?: string; from?: string; csrf?: string | null } = {}): Promise<Reply> => {
    const f = await form(o.from);
    const fields = new URLSearchParams({ username: user, password: o.password ?? PASSWORD, next: o.next ?? '/' });
    if (o.csrf !== null) fields.set('csrf', o.csrf ?? f.csrf);
    return send({
      path: '/_auth/login',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: [f.cookie, o.cookie].filter(Boolean).join('; ') },
      body: fields.toString(),
      ...(o.from ? { from: o.from } : {}),
    });
  };
  const sessionOf = async (user: string): Promise<string> => {
    const r = await signIn(user);
    expect(r.status, r.body).toBe(303);
    return cookieOf(r, 'slipway_session')!;
  };
  const getApp = (app: string, session?: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> =>
    send({ path: `/${app}/x?a=1`, headers: { ...(session ? { cookie: `theme=dark; slipway_session=${session}; lang=en` } : {}), ...headers } });

  const sso: SsoProvider = {
    label: 'Sign in with SSO',
    async begin(i) {
      return { redirect: `https://idp.example/authorize?cb=${encodeURIComponent(i.callbackUrl)}`, transaction: `tx:${i.next}` };
    },
    async finish(i) {
      if (!i.transaction.startsWith('tx:') || i.callbackUrl.searchParams.get('code') !== 'good') throw new SlipwayError('E_AUTH', 'state mismatch');
      return { user: 'carol', next: i.transaction.slice(3) };
    },
  };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-auth-'));
    db = openDb(path.join(dir, 'slipway.db'));
    users = new UserStore(db);
    const hash = await hashPassword(PASSWORD);
    for (const [name, role] of [['alice', 'developer'], ['bob', 'viewer'], ['carol', 'viewer'], ['mallory', 'viewer']] as const) users.add(admin, { name, role, email: null, passwordHash: hash });
    users.createGroup(admin, 'team');
    users.setMembers(admin, 'team', ['bob'], true);
    for (const app of ['priv', 'pub', 'sleepy']) users.appCreated(admin, app, 'alice');
    users.setGrants(admin, 'priv', ['@team'], true);
    users.setGrants(admin, 'sleepy', ['bob'], true);
    users.setLevel(admin, 'pub', 'public');
    const handler = createAuthHandler({
      users,
      sessions: new SessionStore(db, { idleMs: 60 * 60_000, maxMs: 24 * 60 * 60_000 }, () => clock),
      limiter: new SignInLimiter(db, { user: { failures: 5, windowMs: 15 * 60_000 }, address: { failures: 50, windowMs: 15 * 60_000 } }),
      secret: Buffer.alloc(32, 7),
      domain: 'localhost',
      cookieMaxAgeSeconds: 86_400,
      sso: () => sso,
      logger: createLogger('silent'),
    });
    auth = await listenAuth(path.join(dir, 'auth.sock'), (req, res) => {
      if (req.url === '/_auth/check') checks.push(String(req.headers['x-slipway-app']));
      handler(req, res);
    });
    up = await startUpstream('app');
    const table: RouteTable = {
      version: 1,
      domain: 'localhost',
      apps: { priv: { upstreams: [up.target], private: true }, pub: { upstreams: [up.target] }, sleepy: { upstreams: [], private: true } },
      git: null,
    };
    fx = await startNginxFixture(table, { auth: `unix:${path.join(dir, 'auth.sock')}` });
  }, 60_000);

  afterAll(async () => {
    await fx?.close();
    await up?.close();
    auth?.closeAllConnections();
    auth?.close();
    db?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sends browsers without a session to sign in (302 with next), others get 401; public apps never cause a check', async () => {
    const browser = await getApp('priv', undefined, { accept: 'text/html,application/xhtml+xml' });
    expect(browser.status).toBe(302);
    expect(browser.headers.location).toBe(`/_auth/login?next=${encodeURIComponent('/priv/x?a=1')}`);
    const api = await getApp('priv', undefined, { accept: 'application/json' });
    expect(api.status).toBe(401);
    expect(api.body).toMatch(/^sign-in required/);
    // An idle private app says nothing about itself before sign-in either.
    expect((await getApp('sleepy')).status).toBe(401);
    const before = checks.length;
    const pub = await getApp('pub');
    expect(pub.status).toBe(200);
    expect(checks.length).toBe(before);
  });

  it('shows an accessible self-contained form and signs in with a fresh HttpOnly session cookie; the app learns who', async () => {
    const page = await send({ path: '/_auth/login?next=/priv/', headers: { accept: 'text/html' } });
    expect(page.body).toContain('<label for="username">Username</label>');
    expect(page.body).toContain('<label for="password">Password</label>');
    expect(page.body).toContain('<button type="submit">Sign in</button>');
    expect(page.body).not.toMatch(/<script|src=|href="http/);
    const r = await signIn('bob', { next: '/priv/x?a=1' });
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/priv/x?a=1');
    const set = r.headers['set-cookie']!.find((c) => c.startsWith('slipway_session='))!;
    expect(set).toMatch(/; HttpOnly/);
    expect(set).toMatch(/; SameSite=Lax/);
    expect(set).not.toMatch(/Secure/);
    const session = cookieOf(r, 'slipway_session')!;
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const app = await getApp('priv', session);
    expect(app.status).toBe(200);
    const seen = JSON.parse(app.body) as { headers: Record<string, string> };
    expect(seen.headers['x-slipway-user']).toBe('bob');
    expect(seen.headers['x-slipway-groups']).toBe('team');
    // Apps never see the session cookie; the app's own cookies pass.
    expect(seen.headers.cookie).not.toContain('slipway_session');
    expect(seen.headers.cookie).toContain('theme=dark');
    expect(seen.headers.cookie).toContain('lang=en');
    // However many session cookies come (an app could set more for the parent domain): none passes.
    for (const cookie of [`slipway_session=${session}; a=1; slipway_session=x2; slipway_session=x3`, `slipway_session=${session};slipway_session=x2;slipway_session=x3;slipway_session=x4; b=2`]) {
      const many = await getApp('priv', undefined, { cookie });
      expect(many.status).toBe(200);
      expect((JSON.parse(many.body) as { headers: Record<string, string> }).headers.cookie ?? '').not.toContain('slipway_session');
    }
    // Only the hash is stored.
    expect(JSON.stringify(db.prepare('SELECT * FROM sessions').all())).not.toContain(session);
    // Idle and signed in: now it may say so.
    expect((await getApp('sleepy', session)).status).toBe(503);
    // The router log names the app, although the check's subrequest ran in between.
    const logged = await eventually(
      async () => (await fs.readFile(nginxFiles(fx.prefix).accessLog, 'utf8')).split('\n').filter((l) => l.includes('"status":200') && l.includes('"method":"GET"')),
      (lines) => lines.length > 0,
      5000,
    );
    expect(logged.some((l) => l.includes('"app":"priv"'))).toBe(true);
    expect(logged.some((l) => l.includes('"app":""'))).toBe(false);
  });

  it('strips forged identity headers, on public and private apps alike', async () => {
    const forged = { 'x-slipway-user': 'admin', 'x-slipway-groups': 'admins' };
    const pub = JSON.parse((await getApp('pub', undefined, forged)).body) as { headers: Record<string, string> };
    expect(pub.headers['x-slipway-user']).toBeUndefined();
    expect(pub.headers['x-slipway-groups']).toBeUndefined();
    const priv = JSON.parse((await getApp('priv', await sessionOf('bob'), forged)).body) as { headers: Record<string, string> };
    expect(priv.headers['x-slipway-user']).toBe('bob');
    expect(priv.headers['x-slipway-groups']).toBe('team');
    expect((await getApp('priv', undefined, forged)).status).toBe(401);
  });

  it('refuses tampered, expired and revoked session cookies', async () => {
    const session = await sessionOf('bob');
    const tampered = `${session.slice(0, -1)}${session.endsWith('A') ? 'B' : 'A'}`;
    expect((await getApp('priv', tampered)).status).toBe(401);
    expect((await getApp('priv', "x' OR '1'='1")).status).toBe(401);
    // Expired: an hour and a bit without use (the idle limit of this server).
    const old = await sessionOf('bob');
    clock += 61 * 60_000;
    try {
      expect((await getApp('priv', old)).status).toBe(401);
    } finally {
      clock -= 61 * 60_000;
    }
    // Revoked: sign out (a form post with its CSRF token), then the cookie is dead within the cache time.
    const f = await form();
    const out = await send({ path: '/_auth/logout', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${f.cookie}; slipway_session=${session}` }, body: `csrf=${f.csrf}` });
    expect(out.status).toBe(303);
    expect(out.headers['set-cookie']!.join()).toMatch(/slipway_session=; Path=\/; Max-Age=0/);
    expect((await eventually(() => getApp('priv', session), (r) => r.status === 401, 5000)).status).toBe(401);
    // A password change ends the others.
    const other = await sessionOf('bob');
    users.setPasswordHash(admin, 'bob', await hashPassword(PASSWORD));
    expect((await eventually(() => getApp('priv', other), (r) => r.status === 401, 5000)).status).toBe(401);
  });

  it('signs out in one post with the session-bound token the App Manager carries, and with no other', async () => {
    const session = await sessionOf('bob');
    const post = (csrf: string, cookie = `slipway_session=${session}`) =>
      send({ path: '/_auth/logout', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie }, body: `csrf=${encodeURIComponent(csrf)}` });
    // Another session's token, a guessed one and an empty one end nothing.
    const other = await sessionOf('bob');
    for (const bad of [signOutToken(Buffer.alloc(32, 7), other), signOutToken(Buffer.alloc(32, 8), session), 'A'.repeat(43), '']) {
      expect((await post(bad)).status).toBe(403);
    }
    expect((await getApp('priv', session)).status).toBe(200);
    // No session cookie: no token can match.
    expect((await post(signOutToken(Buffer.alloc(32, 7), ''), '')).status).toBe(403);
    const out = await post(signOutToken(Buffer.alloc(32, 7), session));
    expect(out.status).toBe(303);
    expect(out.headers.location).toBe('/_auth/login');
    expect(out.headers['set-cookie']!.join()).toMatch(/slipway_session=; Path=\/; Max-Age=0/);
    expect((await eventually(() => getApp('priv', session), (r) => r.status === 401, 5000)).status).toBe(401);
    expect((await getApp('priv', other)).status).toBe(200);
  });

  it('never lets a cookie set before sign-in survive it (no fixation)', async () => {
    const planted = await sessionOf('mallory');
    const r = await signIn('bob', { cookie: `slipway_session=${planted}` });
    expect(r.status).toBe(303);
    const fresh = cookieOf(r, 'slipway_session')!;
    expect(fresh).not.toBe(planted);
    expect((await getApp('priv', planted, { 'cache-control': 'no-cache' })).status).toBe(401);
    expect((await getApp('priv', fresh)).status).toBe(200);
  });

  it('sends next only to the platform: paths and its own hosts, never elsewhere', async () => {
    for (const next of ['//evil.example', 'https://evil.example', '/\\evil.example', 'javascript:alert(1)', '/\t/evil.example', 'http://priv.localhost.evil.example/']) {
      const r = await signIn('bob', { next });
      expect(r.status, next).toBe(303);
      expect(r.headers.location, next).toBe('/');
    }
    expect((await signIn('bob', { next: 'http://priv.localhost:8080/a?b=1' })).headers.location).toBe('http://priv.localhost:8080/a?b=1');
  });

  it('refuses a form post without its CSRF token, signing no one in', async () => {
    const none = await signIn('bob', { csrf: null });
    expect(none.status).toBe(403);
    expect(cookieOf(none, 'slipway_session')).toBeUndefined();
    const wrong = await signIn('bob', { csrf: 'A'.repeat(43) });
    expect(wrong.status).toBe(403);
    expect(cookieOf(wrong, 'slipway_session')).toBeUndefined();
  });

  it('answers a wrong name and a wrong password the same way, SQL metacharacters included', async () => {
    const wrongPassword = await signIn('bob', { password: 'not the password at all', from: '127.0.0.5' });
    const noUser = await signIn('nobody-here', { from: '127.0.0.5' });
    const sql = await signIn("bob' OR '1'='1' --", { password: "' OR ''='", from: '127.0.0.5' });
    for (const r of [wrongPassword, noUser, sql]) {
      expect(r.status).toBe(401);
      expect(r.body).toContain('Wrong username or password.');
      expect(cookieOf(r, 'slipway_session')).toBeUndefined();
    }
    expect(users.list().map((u) => u.name)).toEqual(['admin', 'alice', 'bob', 'carol', 'mallory']);
    const audit = users.auditLog({ limit: 20 }).filter((e) => e.action === 'sign-in-failed');
    expect(audit.length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(audit)).not.toContain('not the password');
  });

  it('says app not found to a signed-in user without the right, exactly as for no app; a grant applies within 5 s', async () => {
    const session = await sessionOf('carol');
    const hidden = await getApp('priv', session);
    const none = await getApp('nosuch', session);
    expect(hidden.status).toBe(404);
    expect(hidden.body.replace('priv', 'X')).toBe(none.body.replace('nosuch', 'X'));
    users.setGrants(admin, 'priv', ['carol'], true);
    const t0 = Date.now();
    const granted = await eventually(() => getApp('priv', session), (r) => r.status === 200, 5000);
    expect(granted.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(5000);
    users.setGrants(admin, 'priv', ['carol'], false);
    expect((await eventually(() => getApp('priv', session), (r) => r.status === 404, 5000)).status).toBe(404);
  });

  it('limits wrong passwords per user and per address; 10,000 against one user leave the others alone', async () => {
    const attacker = '127.0.0.9';
    const f = await form(attacker);
    const body = new URLSearchParams({ username: 'alice', password: 'guess guess guess', next: '/', csrf: f.csrf }).toString();
    const statuses = new Map<number, number>();
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < 10_000) {
        sent++;
        const r = await send({ path: '/_auth/login', method: 'POST', from: attacker, headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: f.cookie }, body });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    expect(statuses.get(200)).toBeUndefined();
    expect(statuses.get(303)).toBeUndefined();
    expect(statuses.get(401)).toBeLessThanOrEqual(5);
    expect(statuses.get(429)).toBeGreaterThanOrEqual(9_990);
    // alice is blocked even with her password, from anywhere; bob and the others are not.
    expect((await signIn('alice', { from: '127.0.0.10' })).status).toBe(429);
    expect((await signIn('bob')).status).toBe(303);
    expect((await signIn('carol', { from: '127.0.0.11' })).status).toBe(303);
  }, 120_000);

  it('offers single sign-on when a provider is configured, and signs in through it like a password', async () => {
    expect((await send({ path: '/_auth/login' })).body).toContain('>Sign in with SSO</a>');
    const start = await send({ path: '/_auth/oidc/start?next=%2Fpriv%2F', host: `priv.localhost:${fx.router.port}` });
    expect(start.status).toBe(302);
    expect(start.headers.location).toBe(`https://idp.example/authorize?cb=${encodeURIComponent(`http://priv.localhost:${fx.router.port}/_auth/oidc/callback`)}`);
    const tx = start.headers['set-cookie']!.find((c) => c.startsWith('slipway_sso='))!;
    expect(tx).toMatch(/HttpOnly/);
    expect(tx).toMatch(/Max-Age=600/);
    const txCookie = tx.split(';')[0]!;
    const bad = await send({ path: '/_auth/oidc/callback?code=good' });
    expect(bad.status).toBe(401);
    expect(cookieOf(bad, 'slipway_session')).toBeUndefined();
    const done = await send({ path: '/_auth/oidc/callback?code=good', headers: { cookie: txCookie } });
    expect(done.status).toBe(303);
    expect(done.headers.location).toBe('/priv/');
    expect(cookieOf(done, 'slipway_sso')).toBe('');
    const session = cookieOf(done, 'slipway_session')!;
    users.setGrants(admin, 'priv', ['carol'], true);
    const app = await eventually(() => getApp('priv', session), (r) => r.status === 200, 5000);
    expect((JSON.parse(app.body) as { headers: Record<string, string> }).headers['x-slipway-user']).toBe('carol');
  });
});
