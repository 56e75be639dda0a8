import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ssoProviderLoader } from '../../auth/oidc.js';
import { openDb, type Db } from '../../core/db.js';
import { createLogger } from '../../core/log.js';
import { pathsFor } from '../../core/paths.js';
import { startIdp, type TestIdp } from '../support/oidc-idp.js';
import { TestPlatform } from '../support/platform.js';

// Single sign-on configured through the real doors (the local CLI and ssh) of a running daemon,
// against a real OpenID provider on loopback; the provider the sign-in server uses sees each
// change at once, from the same database, without a restart.
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
});
