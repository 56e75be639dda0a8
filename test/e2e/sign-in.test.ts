import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, uniqueApp } from '../support/platform.js';

// Web sign-in and private apps on a real platform: `slipway server` starts the auth server and
// nginx, the app is a real deploy, requests are real HTTP through the router. The detailed bad
// inputs (next, CSRF, fixation, limits) are in test/auth/router-check.test.ts.
const PASSWORD = 'a long enough password';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('sign-in and private apps on the platform', () => {
  let platform: TestPlatform;
  const app = uniqueApp('priv');

  const send = (o: { path: string; host?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string }): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: platform.httpPort, method: o.method ?? 'GET', path: o.path, agent: false, headers: { host: o.host ?? `127.0.0.1:${platform.httpPort}`, ...o.headers } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end(o.body);
    });
  const cookieOf = (r: Reply, name: string): string | undefined => (r.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`))?.split(';')[0]!.slice(name.length + 1);
  const signIn = async (user: string, next = '/'): Promise<Reply> => {
    const page = await send({ path: '/_auth/login', host: `${app}.localhost:${platform.httpPort}` });
    expect(page.body).toContain('<button type="submit">Sign in</button>');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)![1]!;
    return send({
      path: '/_auth/login',
      method: 'POST',
      host: `${app}.localhost:${platform.httpPort}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `slipway_csrf=${cookieOf(page, 'slipway_csrf')}` },
      body: new URLSearchParams({ username: user, password: PASSWORD, next, csrf }).toString(),
    });
  };
  const getApp = (session?: string, o: { by?: 'host' | 'path'; headers?: http.OutgoingHttpHeaders } = {}): Promise<Reply> =>
    send({
      path: o.by === 'path' ? `/${app}/who` : '/who',
      ...(o.by === 'path' ? {} : { host: `${app}.localhost:${platform.httpPort}` }),
      headers: { ...(session ? { cookie: `slipway_session=${session}` } : {}), ...o.headers },
    });
  const until = async (fn: () => Promise<Reply>, ok: (r: Reply) => boolean, ms = 5000): Promise<Reply> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await fn();
      if (ok(r) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const authPid = async (): Promise<number> => Number((await fs.readFile(path.join(platform.home, 'run', 'auth.pid'), 'utf8')).trim());

  beforeAll(async () => {
    platform = await TestPlatform.start();
    for (const user of ['ann', 'bob']) {
      const r = await platform.cli(['users:add', user, '--role', 'viewer', '--password-stdin'], `${PASSWORD}\n`);
      expect(r.code, r.stderr).toBe(0);
    }
    await platform.createApp(app, { private: true });
    // The app tells what the router passed on: the identity headers and the cookies.
    const push = await platform.pushIdentityEcho(app);
    expect(push.code, push.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('starts the auth server with the platform and keeps a new app private: 302 to sign in for browsers, 401 otherwise', async () => {
    expect(platform.serverLog).toMatch(/Auth server \(pid \d+\) listening/);
    for (const by of ['host', 'path'] as const) {
      const browser = await getApp(undefined, { by, headers: { accept: 'text/html' } });
      expect(browser.status, by).toBe(302);
      expect(browser.headers.location).toBe(`/_auth/login?next=${encodeURIComponent(by === 'path' ? `/${app}/who` : '/who')}`);
      expect((await getApp(undefined, { by })).status).toBe(401);
    }
    // The release records who pushed: the key's user.
    const releases = JSON.parse((await platform.cli(['releases', app, '--json'])).stdout) as { by: string }[];
    expect(releases.at(-1)!.by).toBe('admin');
  });

  it('signs in; without the right the app is not found, with it the app learns who; access changes apply within 5 s', async () => {
    const r = await signIn('ann', '/who');
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/who');
    const session = cookieOf(r, 'slipway_session')!;
    const hidden = await getApp(session);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toBe(`app not found: ${app}\n`);
    expect((await platform.cli(['access:add', app, 'ann'])).code).toBe(0);
    const t0 = Date.now();
    const seen = await until(() => getApp(session, { headers: { 'x-slipway-user': 'admin', 'x-slipway-groups': 'root' } }), (x) => x.status === 200);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(seen.body).toContain('user ann\n');
    // ann is in no group: the forged X-Slipway-Groups is gone, not passed on.
    expect(seen.body).toContain('groups undefined\n');
    expect(seen.body).not.toContain('slipway_session');
    expect((await getApp(session, { by: 'path' })).body).toContain('user ann\n');
  });

  it('serves a public app to anyone, forged identity stripped, and closes it again within 5 s', async () => {
    expect((await platform.cli(['access:set', app, 'public'])).code).toBe(0);
    const open = await until(() => getApp(undefined, { headers: { 'x-slipway-user': 'admin' } }), (x) => x.status === 200);
    expect(open.status).toBe(200);
    expect(open.body).toContain('user undefined\n');
    expect((await platform.cli(['access:set', app, 'restricted'])).code).toBe(0);
    expect((await until(() => getApp(), (x) => x.status === 401)).status).toBe(401);
  });

  it('keeps sessions through a daemon restart (the auth server is untouched) and a killed auth server', async () => {
    const session = cookieOf(await signIn('ann'), 'slipway_session')!;
    const pid = await authPid();
    await platform.restartDaemon();
    expect(await authPid()).toBe(pid);
    expect(platform.serverLog).toMatch(/Auth server \(pid \d+\) adopted/);
    expect((await getApp(session)).body).toContain('user ann\n');
    // Killed: the platform starts it again, and sessions live in the database.
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await authPid().catch(() => pid)) === pid) await new Promise((r) => setTimeout(r, 200));
    expect(await authPid()).not.toBe(pid);
    const back = await until(() => send({ path: '/_auth/login' }), (x) => x.status === 200, 15_000);
    expect(back.status).toBe(200);
    expect((await getApp(session)).body).toContain('user ann\n');
    expect((await signIn('bob')).status).toBe(303);
  }, 120_000);

  it('ends sessions on lock and on a password change, and audits sign-ins', async () => {
    const session = cookieOf(await signIn('ann'), 'slipway_session')!;
    expect((await getApp(session)).status).toBe(200);
    expect((await platform.cli(['users:lock', 'ann'])).code).toBe(0);
    expect((await until(() => getApp(session), (x) => x.status === 401)).status).toBe(401);
    expect((await platform.cli(['users:unlock', 'ann'])).code).toBe(0);
    expect((await getApp(session)).status).toBe(401);
    const again = cookieOf(await signIn('ann'), 'slipway_session')!;
    expect((await platform.cli(['users:passwd', 'ann', '--password-stdin'], `${PASSWORD}\n`)).code).toBe(0);
    expect((await until(() => getApp(again), (x) => x.status === 401)).status).toBe(401);
    const audit = JSON.parse((await platform.cli(['audit', '--user', 'ann', '--json'])).stdout) as { action: string; source: string }[];
    expect(audit.map((e) => e.action)).toContain('sign-in');
    expect(audit.find((e) => e.action === 'sign-in')!.source).toMatch(/^web 127\.0\.0\.1$/);
  });
});
