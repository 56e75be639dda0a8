import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ssoProviderLoader } from '../../auth/oidc.js';
import { openDb, type Db } from '../../core/db.js';
import { createLogger } from '../../core/log.js';
import { pathsFor } from '../../core/paths.js';
import { startIdp, type TestIdp } from '../support/oidc-idp.js';
import { TestPlatform, uniqueApp } from '../support/platform.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

// Single sign-on configured through the real doors (the local CLI and ssh) of a running daemon,
// against a real OpenID provider on loopback; the provider the sign-in server uses sees each
// change at once, from the same database, without a restart. Then the whole way a browser goes:
// router (nginx), sign-in server, provider, back to a private app that learns who signed in.
describe('single sign-on on a running platform', () => {
  let platform: TestPlatform;
  let idp: TestIdp;
  let db: Db;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    idp = await startIdp({ redirectUri: `http://localhost:${platform.httpPort}/_auth/oidc/callback` });
    idp.accounts.set('u-1', { preferred_username: 'erin', email: 'erin@example.com', groups: ['eng'] });
    db = openDb(pathsFor(platform.home).database);
  }, 300_000);

  afterAll(async () => {
    db?.close();
    await idp?.close();
    await platform?.stop();
  }, 120_000);

  it('takes the secret on stdin over the socket and ssh, shows it nowhere, and applies without a restart', async () => {
    const secret = idp.clientSecret;
    const sso = ssoProviderLoader({ db, paths: pathsFor(platform.home), logger: createLogger('silent') });
    expect(sso()).toBeNull();

    const local = await platform.cli(['auth:oidc', idp.issuer, idp.clientId, '--secret-stdin', '--role', 'developer'], `${secret}\n`);
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toContain(`Register this redirect URI at the provider: http://localhost:${platform.httpPort}/_auth/oidc/callback`);
    const overSsh = await platform.ssh(['auth:oidc', idp.issuer, idp.clientId, '--secret-stdin', '--role', 'developer'], { input: `${secret}\n` });
    expect(overSsh.code, overSsh.stderr).toBe(0);
    expect((await platform.cli(['groups:create', 'eng'])).code).toBe(0);

    const provider = sso()!;
    const begun = await provider.begin({ next: '/Portal', callbackUrl: `http://localhost:${platform.httpPort}/_auth/oidc/callback` });
    const callback = await idp.login(begun.redirect, 'u-1');
    expect(await provider.finish({ callbackUrl: callback, transaction: begun.transaction })).toEqual({ user: 'erin', next: '/Portal' });
    const erin = JSON.parse((await platform.cli(['users:info', 'erin', '--json'])).stdout) as { role: string; groups: string[] };
    expect(erin).toMatchObject({ role: 'developer', groups: ['eng'] });

    const info = await platform.ssh(['auth:oidc:info']);
    expect(info.stdout).toMatch(/secret\s+\*\*\*/);
    expect((await platform.cli(['auth:oidc:off'])).stdout).toContain('Single sign-on off');
    expect(sso()).toBeNull();
    const audit = (await platform.cli(['audit', '--json'])).stdout;
    expect(audit).toContain('"action": "auth:oidc:off"');
    for (const text of [local.stdout, local.stderr, overSsh.stdout, overSsh.stderr, info.stdout, audit, platform.serverLog]) expect(text).not.toContain(secret);
  }, 120_000);

  it('signs a browser in through the router and the provider, and the private app learns the SSO user', async () => {
    const app = uniqueApp('sso');
    const host = `localhost:${platform.httpPort}`;
    // A browser's cookie jar for the platform's host; the provider keeps its own (idp.login).
    const jar = new Map<string, string>();
    const send = (p: string): Promise<Reply> =>
      new Promise((resolve, reject) => {
        const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        const req = http.request({ host: '127.0.0.1', port: platform.httpPort, path: p, agent: false, headers: { host, accept: 'text/html', ...(cookie ? { cookie } : {}) } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => {
            for (const c of res.headers['set-cookie'] ?? []) {
              const [pair] = c.split(';');
              const eq = pair!.indexOf('=');
              if (/max-age=0/i.test(c)) jar.delete(pair!.slice(0, eq));
              else jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          });
        });
        req.on('error', reject);
        req.end();
      });

    // A private app (any signed-in user) that tells what the router passed on.
    await platform.createApp(app, { private: true });
    expect((await platform.cli(['access:set', app, 'authenticated'])).code).toBe(0);
    const push = await platform.pushIdentityEcho(app);
    expect(push.code, push.stderr).toBe(0);

    idp.accounts.set('u-2', { preferred_username: 'sam', email: 'sam@example.com', groups: ['ops'] });
    expect((await platform.cli(['groups:create', 'ops'])).code).toBe(0);
    const on = await platform.cli(['auth:oidc', idp.issuer, idp.clientId, '--secret-stdin', '--role', 'viewer'], `${idp.clientSecret}\n`);
    expect(on.code, on.stderr).toBe(0);

    const first = await send(`/${app}/who`);
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe(`/_auth/login?next=${encodeURIComponent(`/${app}/who`)}`);
    const login = await send(first.headers.location!);
    expect(login.status).toBe(200);
    const start = /<a class="sso" href="([^"]+)">Sign in with SSO<\/a>/.exec(login.body)?.[1];
    expect(start).toBe(`/_auth/oidc/start?next=${encodeURIComponent(`/${app}/who`)}`);
    const toIdp = await send(start!);
    expect(toIdp.status).toBe(302);
    expect(toIdp.headers.location!.startsWith(`${idp.issuer}/`)).toBe(true);
    expect(jar.has('slipway_sso')).toBe(true);

    const callback = await idp.login(toIdp.headers.location!, 'u-2');
    expect(callback.origin).toBe(`http://${host}`);
    const back = await send(`${callback.pathname}${callback.search}`);
    expect(back.status, back.body).toBe(303);
    expect(back.headers.location).toBe(`/${app}/who`);
    expect(jar.has('slipway_session')).toBe(true);
    expect(jar.has('slipway_sso')).toBe(false);

    const seen = await send(back.headers.location!);
    expect(seen.status, seen.body).toBe(200);
    expect(seen.body).toContain('user sam\n');
    expect(seen.body).toContain('groups ops\n');
    const audit = JSON.parse((await platform.cli(['audit', '--user', 'sam', '--json'])).stdout) as { action: string; detail: string }[];
    expect(audit.find((e) => e.action === 'sign-in')?.detail).toMatch(/via=oidc/);
  }, 600_000);
});
