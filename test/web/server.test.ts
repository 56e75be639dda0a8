import fs from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webCommandDoor } from '../../platform/web-door.js';
import { createWebHandler, listenWeb } from '../../web/server.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';
import { repoRoot } from '../support/platform.js';
import { csrfOf, webRequest } from '../support/web-client.js';

// The web server over real HTTP on its unix socket, with the real command table and stores
// (no Docker: commands that need the engine fail cleanly and the page says so).
describe('web server', () => {
  let mini: MiniPlatform;
  let server: http.Server;
  let socket: string;
  const origin = { actor: 'admin', source: 'test' };
  const get = (p: string, user?: string) => webRequest(socket, { path: p, ...(user === undefined ? {} : { user }) });
  const tokenFor = async (user: string) => csrfOf((await get('/Manager', user)).body);
  const command = async (user: string, argv: string[], o: { token?: string; headers?: Record<string, string>; stdin?: string } = {}) => {
    const token = o.token ?? (await tokenFor(user));
    const r = await webRequest(socket, {
      method: 'POST',
      path: '/_web/api/commands',
      user,
      headers: { 'Content-Type': 'application/json', 'X-Slipway-CSRF': token, 'Sec-Fetch-Site': 'same-origin', ...o.headers },
      body: JSON.stringify(o.stdin === undefined ? { argv } : { argv, stdin: o.stdin }),
    });
    return { status: r.status, ...(JSON.parse(r.body) as { out?: string; err?: string; error?: string }) };
  };

  beforeAll(async () => {
    mini = await miniPlatform();
    for (const [name, role] of [['dev', 'developer'], ['dev2', 'developer'], ['vic', 'viewer']] as const) {
      mini.platform.users.add(origin, { name, role, email: null, passwordHash: null });
    }
    socket = path.join(mini.dir, 'web.sock');
    server = await listenWeb(
      socket,
      await createWebHandler({ door: webCommandDoor(mini.platform), logger: mini.platform.logger, assetsDir: path.join(repoRoot, 'web', 'assets'), signOutToken: (session) => `out-${session}` }),
    );
  });
  afterAll(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    await mini?.close();
  });

  it('listens on a socket only its owner may use', async () => {
    expect((await fs.stat(socket)).mode & 0o777).toBe(0o600);
  });

  it('sends a request without a signed-in user to sign in, and refuses the API', async () => {
    const page = await get('/Manager/apps/x?y=1');
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe('/_auth/login?next=%2FManager%2Fapps%2Fx%3Fy%3D1');
    const api = await webRequest(socket, { method: 'POST', path: '/_web/api/commands', body: '{"argv":["apps:list"]}', headers: { 'Content-Type': 'application/json' } });
    expect(api.status).toBe(401);
    const unknown = await get('/Manager', 'ghost');
    expect(unknown.status).toBe(403);
    expect(unknown.body).toMatch(/permission denied/);
  });

  it('serves pages with a strict CSP and only its own assets', async () => {
    const page = await get('/Manager', 'dev');
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body).not.toMatch(/<script>|<script [^>]*>[^<]|\son[a-z]+=|style=|https?:\/\/(?!localhost)/);
    const js = await get('/_web/assets/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.body).not.toMatch(/innerHTML|insertAdjacentHTML|document\.write/);
  });

  it('creates an app through the same command and name check as the CLI', async () => {
    const bad = await command('dev', ['apps:create', 'Bad_Name']);
    expect(bad.status).toBe(400);
    expect(bad.err).toMatch(/^slipway: invalid app name "Bad_Name"/);
    const reserved = await command('dev', ['apps:create', 'portal']);
    expect(reserved.err).toMatch(/reserved for the platform/);
    const ok = await command('dev', ['apps:create', 'shop']);
    expect(ok.status, ok.err).toBe(200);
    expect(mini.platform.users.access('shop').owners).toEqual(['dev']);
    expect((await command('dev', ['apps:create', 'shop'])).status).toBe(409);
    expect((await command('vic', ['apps:create', 'nope'])).status).toBe(403);
    const manager = await get('/Manager', 'dev');
    expect(manager.body).toContain('href="/Manager/apps/shop"');
    expect((await get('/Manager', 'dev2')).body).not.toContain('shop');
  });

  it('refuses changes without the CSRF token, with another user\'s, or from another site', async () => {
    const devToken = await tokenFor('dev');
    expect((await command('dev', ['apps:create', 'csrf1'], { token: '' })).status).toBe(403);
    expect((await command('dev', ['apps:create', 'csrf1'], { token: 'x'.repeat(devToken.length) })).status).toBe(403);
    expect((await command('dev2', ['apps:create', 'csrf1'], { token: devToken })).status).toBe(403);
    expect((await command('dev', ['apps:create', 'csrf1'], { token: devToken, headers: { 'Sec-Fetch-Site': 'cross-site' } })).status).toBe(403);
    expect((await command('dev', ['apps:create', 'csrf1'], { token: devToken, headers: { Origin: 'http://evil.example' } })).status).toBe(403);
    // A token is bound to the session cookie too: a new sign-in needs the new page's token.
    expect((await command('dev', ['apps:create', 'csrf1'], { token: devToken, headers: { Cookie: 'slipway_session=other' } })).status).toBe(403);
    const form = await webRequest(socket, { method: 'POST', path: '/_web/api/commands', user: 'dev', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Slipway-CSRF': devToken }, body: 'argv=apps:create' });
    expect(form.status).toBe(415);
    expect(await mini.platform.apps.find('csrf1')).toBeNull();
  });

  it('shows an app page only to those who may manage it; viewers get the CLI\'s refusals', async () => {
    expect((await get('/Manager/apps/shop', 'vic')).status).toBe(404);
    expect((await get('/Manager/apps/shop', 'dev2')).status).toBe(404);
    expect((await get('/Portal', 'vic')).body).not.toContain('shop');
    expect((await command('dev', ['access:add', 'shop', 'vic'])).status).toBe(200);
    const refused = await get('/Manager/apps/shop', 'vic');
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('You may view shop but not manage it');
    expect((await get('/Portal', 'vic')).body).toContain('<code>shop</code>');
    // The listing reads every app's access at once; it must agree with the per-app check.
    expect(mini.platform.users.accessOfAll().get('shop')).toEqual(mini.platform.users.access('shop'));
    const change = await command('vic', ['config:set', 'shop', 'A=1']);
    expect(change.status).toBe(403);
    expect(change.err).toMatch(/^slipway: permission denied/);
    const page = await get('/Manager/apps/shop', 'dev');
    expect(page.status).toBe(200);
    expect(page.body).toContain('git remote add slipway ssh://git@127.0.0.1:2222/shop');
    expect(page.body).toContain('<h3>Containers</h3>\n<p>No containers.</p>');
    expect(page.body).toContain('<p>No releases yet.</p>');
  });

  it('renders what users typed as text: titles, descriptions, tags and names', async () => {
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'`';
    const set = await command('dev', ['apps:set', 'shop', `title=${evil}`, `description=${evil} & more`, 'tags=data,ml']);
    expect(set.status, set.err).toBe(200);
    for (const [p, user] of [['/Portal', 'vic'], ['/Manager/apps/shop', 'dev'], ['/Manager?q=%3Cscript%3E', 'dev']] as const) {
      const body = (await get(p, user)).body;
      expect(body, p).not.toContain('<script>alert');
      expect(body, p).not.toContain('<img src=x');
    }
    const portal = (await get('/Portal?tag=ml', 'vic')).body;
    expect(portal).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&#96;');
    expect((await get('/Portal?tag=nope', 'vic')).body).not.toContain('<code>shop</code>');
    expect((await get('/Portal?q=MORE', 'vic')).body).toContain('<code>shop</code>');
    // Names never carry markup: the command layer refuses them before they are stored.
    expect((await command('dev', ['apps:set', 'shop', 'tags=<b>'])).status).toBe(400);
    expect((await command('dev', ['config:set', 'shop', '<img>=1'])).status).toBe(400);
    const junk = await get(`/Manager/apps/${encodeURIComponent('<svg onload=alert(1)>')}`, 'dev');
    expect(junk.status).toBe(404);
    expect(junk.body).not.toContain('<svg');
  });

  it('searches and sorts the manager list', async () => {
    await command('dev', ['apps:create', 'alpha']);
    const byName = (await get('/Manager?sort=name', 'dev')).body;
    expect(byName.indexOf('/Manager/apps/alpha')).toBeLessThan(byName.indexOf('/Manager/apps/shop'));
    const search = (await get('/Manager?q=alp', 'dev')).body;
    expect(search).toContain('/Manager/apps/alpha');
    expect(search).not.toContain('/Manager/apps/shop');
    expect(search).toContain('1 of 2 apps');
  });

  it('keeps the admin page for admins and runs admin commands with stdin', async () => {
    expect((await get('/Manager/admin', 'dev')).status).toBe(403);
    const admin = await get('/Manager/admin', 'admin');
    expect(admin.status).toBe(200);
    expect(admin.body).toContain('<th scope="row">vic</th>');
    expect((await command('dev', ['users:add', 'eve', '--password-stdin'], { stdin: 'long enough password\n' })).status).toBe(403);
    const added = await command('admin', ['users:add', 'eve', '--role', 'viewer', '--password-stdin'], { stdin: 'long enough password\n' });
    expect(added.status, added.err).toBe(200);
    expect(mini.platform.users.info('eve')).toMatchObject({ role: 'viewer', hasPassword: true });
  });

  it('lists the services linked to an app without their passwords, with forms for the service commands', async () => {
    const store = mini.platform.services.store;
    store.create(origin, { kind: 'postgres', name: 'db', password: 'pw-never-shown-1234', image: 'i', owner: 'dev' });
    store.create(origin, { kind: 'redis', name: 'cache', password: 'pw-never-shown-5678', image: 'i', owner: 'admin' });
    expect((await get('/Manager/apps/shop', 'dev')).body).toContain('<p>No services linked.</p>');
    store.addLink(origin, { kind: 'postgres', name: 'db', app: 'shop', var: 'DATABASE_URL' });
    store.addLink(origin, { kind: 'redis', name: 'cache', app: 'shop', var: 'CACHE_URL' });
    const page = (await get('/Manager/apps/shop', 'dev')).body;
    const section = page.slice(page.indexOf('<section id="services"'), page.indexOf('<section id="portal"'));
    // dev owns the app but not `cache`: the app's links are still the app owner's to see.
    expect(section).toMatch(/<td>postgres<\/td><th scope="row"><code>db<\/code><\/th><td><span class="status s-[a-z]+">[a-z]+<\/span><\/td><td><code>DATABASE_URL<\/code>/);
    expect(section).toContain('<code>cache</code>');
    expect(section).toContain('<code>CACHE_URL</code>');
    expect(page).not.toContain('pw-never-shown');
    expect(section).toContain('data-argv="postgres:unlink db shop"');
    expect(section).toContain('data-argv="{kind}:create {name}" data-and="{kind}:link {name} shop [--as={var}]"');
    expect(section).toContain('data-argv="{kind}:link {name} shop [--as={var}]"');
    // The same command and checks on the CLI: a viewer and a stranger are refused as there.
    const listed = await command('dev', ['services', 'shop', '--json']);
    expect(JSON.parse(listed.out!)).toEqual([
      { kind: 'postgres', name: 'db', var: 'DATABASE_URL', condition: expect.any(String), linkedAt: expect.any(String) },
      { kind: 'redis', name: 'cache', var: 'CACHE_URL', condition: expect.any(String), linkedAt: expect.any(String) },
    ]);
    expect(listed.out).not.toContain('pw-never-shown');
    expect((await command('vic', ['services', 'shop'])).status).toBe(403);
    expect((await command('dev2', ['services', 'shop'])).status).toBe(404);
    // Unlinking needs the right to change the service too: dev does not own `cache`.
    const unlink = await command('dev', ['redis:unlink', 'cache', 'shop']);
    expect(unlink.status).toBe(422);
    expect(unlink.err).toMatch(/no redis service named "cache"/);
    expect(store.linksOfApp('shop')).toHaveLength(2);
  });

  it('removes group members, groups and users from the admin page, each after a confirmation', async () => {
    for (const argv of [['groups:create', 'team'], ['groups:add', 'team', 'vic', 'dev2'], ['users:add', 'gone', '--password-stdin']]) {
      const r = await command('admin', argv, argv[0] === 'users:add' ? { stdin: 'long enough password\n' } : {});
      expect(r.status, r.err).toBe(200);
    }
    const page = (await get('/Manager/admin', 'admin')).body;
    expect(page).toMatch(/data-argv="groups:remove team vic" data-confirm="Remove vic from the group team\?"/);
    expect(page).toMatch(/data-argv="groups:destroy team" data-confirm="Destroy the group team\?/);
    expect(page).toMatch(/data-argv="users:remove gone" data-confirm="Remove the user gone /);
    // The built-in admin cannot be removed, so it has no button.
    expect(page).not.toContain('data-argv="users:remove admin"');
    expect((await command('dev', ['groups:remove', 'team', 'vic'])).status).toBe(403);
    expect((await command('admin', ['groups:remove', 'team', 'vic'])).status).toBe(200);
    expect(mini.platform.users.info('vic').groups).toEqual([]);
    expect((await command('admin', ['groups:destroy', 'team'])).status).toBe(200);
    expect((await get('/Manager/admin', 'admin')).body).not.toContain('data-group="team"');
    expect((await command('admin', ['users:remove', 'gone'])).status).toBe(200);
    expect(() => mini.platform.users.info('gone')).toThrow(/gone/);
    // dev is the only owner of shop: the command refuses, and the page shows its line.
    const owner = await command('admin', ['users:remove', 'dev']);
    expect(owner.status).toBe(422);
    expect(owner.err).toMatch(/only owner/);
  });

  it('signs out in one click: a form posting the session-bound token to /_auth/logout on every page', async () => {
    for (const p of ['/Manager', '/Portal', '/Manager/apps/shop']) {
      const page = await webRequest(socket, { path: p, user: 'dev', headers: { Cookie: 'slipway_session=abc' } });
      expect(page.body, p).toContain('<form class="signout" method="post" action="/_auth/logout"><input type="hidden" name="csrf" value="out-abc"><button type="submit">Sign out</button></form>');
    }
    // Without a session there is nothing to sign out with: the link to the sign-in server's form.
    expect((await get('/Manager', 'dev')).body).toContain('<a href="/_auth/logout">Sign out</a>');
  });

  it('streams only logs and build logs, and refuses following through the command endpoint', async () => {
    expect((await command('dev', ['logs', 'shop', '--follow'])).status).toBe(400);
    const other = await get('/_web/api/stream?argv=config&argv=shop', 'dev');
    expect(other.status).toBe(400);
    const refused = await get('/_web/api/stream?argv=builds:log&argv=shop', 'vic');
    expect(refused.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(refused.body).toMatch(/event: failure\ndata: permission denied/);
    expect(refused.body).toMatch(/event: end\ndata: 1\n/);
  });
});
