import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, repoRoot, run, uniqueApp } from '../support/platform.js';

// The App Manager and Portal in headless Chromium (Debian's `chromium`, driven by
// playwright-core), against a real `slipway server`: real git push, real containers, and every
// page through the router (nginx) and its sign-in check, signed in at the real /_auth/login.
const SHOTS = path.join(repoRoot, '.cache', 'web-screenshots');
const PASSWORD = 'a long enough password';

describe('App Manager and Portal in a browser', () => {
  let platform: TestPlatform;
  let browser: Browser;
  const app = uniqueApp('webapp');
  const cache = uniqueApp('cache');
  const devKey = () => path.join(platform.home, 'key-dev');
  const contexts: BrowserContext[] = [];
  /** Script errors on any page: the pages must run without one. */
  const pageErrors: string[] = [];

  /** The platform's own host, through the router. */
  const base = () => `http://127.0.0.1:${platform.httpPort}`;

  /** A fresh browser that opens /Manager, is sent to sign in, signs in, and is back on /Manager. */
  async function signIn(user: string, width = 1280): Promise<Page> {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
    await page.goto(`${base()}/Manager`);
    expect(new URL(page.url()).pathname).toBe('/_auth/login');
    await page.getByLabel('Username').fill(user);
    await page.getByLabel('Password').fill(PASSWORD);
    await Promise.all([page.waitForURL(`${base()}/Manager`), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    return page;
  }
  /** Presses a button whose command reloads the page on success, and waits for that reload. */
  const pressAndReload = async (page: Page, name: string, exact = false) => {
    await Promise.all([page.waitForEvent('load', { timeout: 90_000 }), page.getByRole('button', { name, exact }).click()]);
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    platform = await TestPlatform.start();
    platform.adopt(app);
    for (const [name, role] of [['dev', 'developer'], ['vic', 'viewer'], ['boss', 'admin']] as const) {
      const r = await platform.cli(['users:add', name, '--role', role, '--password-stdin'], `${PASSWORD}\n`);
      expect(r.code, r.stderr).toBe(0);
    }
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', devKey()]);
    expect((await platform.cli(['ssh-keys:add', 'dev-laptop', `${devKey()}.pub`, '--user', 'dev'])).code).toBe(0);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  }, 300_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    // The service made through the page: unlinked (if a step failed before that), then destroyed.
    await platform?.cli(['redis:unlink', cache, app]);
    await platform?.cli(['redis:destroy', cache, '--force']);
    await platform?.stop();
  }, 120_000);

  it('routes /Manager on the platform host through the router, and never takes an identity from the client', async () => {
    const get = (p: string, headers: Record<string, string>) =>
      new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: platform.httpPort, path: p, headers: { Host: `127.0.0.1:${platform.httpPort}`, Accept: 'text/html', ...headers } }, (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0, location: res.headers.location });
          })
          .on('error', reject);
      });
    const cases: Record<string, string>[] = [{}, { 'X-Slipway-User': 'admin' }];
    for (const headers of cases) {
      const r = await get('/Manager?x=1', headers);
      expect(r.status).toBe(302);
      expect(r.location).toBe('/_auth/login?next=%2FManager%3Fx%3D1');
    }
  });

  it('signs in at /_auth/login and is sent back to /Manager, and signs out with one click', async () => {
    const page = await signIn('vic');
    expect(await page.title()).toBe('App Manager · Slipway');
    expect(await page.locator('header .who').textContent()).toContain('vic (viewer)');
    // The header's Sign out posts to the sign-in server's /_auth/logout with a token bound to this session.
    await page.goto(`${base()}/Portal`);
    await Promise.all([page.waitForURL(`${base()}/_auth/login`), page.locator('header').getByRole('button', { name: 'Sign out' }).click()]);
    expect((await page.context().cookies()).map((c) => c.name)).not.toContain('slipway_session');
    await page.goto(`${base()}/Manager`);
    expect(page.url()).toBe(`${base()}/_auth/login?next=%2FManager`);
    expect(await page.getByRole('button', { name: 'Sign in', exact: true }).count()).toBe(1);
    const audit = JSON.parse((await platform.cli(['audit', '--user', 'vic', '--json'])).stdout) as { action: string }[];
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['sign-in', 'sign-out']));
  });

  it('creates an app, streams the build of a real push, sets config, scales, rolls back and shares it', async () => {
    const dev = await signIn('dev', 1920);
    await dev.goto(`${base()}/Manager`);
    await expect.poll(() => dev.title()).toBe('App Manager · Slipway');
    // The name is checked by the same command as on the CLI: a reserved name is refused.
    await dev.getByLabel('App name').fill('portal');
    await dev.getByRole('button', { name: 'Create app' }).click();
    await expect.poll(() => dev.locator('form[aria-label="Create app"] output').textContent()).toMatch(/reserved for the platform/);
    await dev.getByLabel('App name').fill(app);
    await dev.getByRole('button', { name: 'Create app' }).click();
    await dev.waitForURL(`**/Manager/apps/${app}?created=1`);
    expect(await dev.locator('#deploy').textContent()).toContain(`git remote add slipway ssh://git@127.0.0.1:${platform.sshPort}/${app}`);
    await shot(dev, 'app-created');

    // A real push over SSH as dev; its build log streams into the open page while it runs.
    const wc = await platform.workingCopy('node-hello');
    await fs.appendFile(path.join(wc, 'server.js'), "console.log('<img src=x onerror=\"document.title=1\"><b>log-xss</b>');\n");
    await platform.commitAll(wc, 'hello with a hostile log line');
    const pushing = run('git', ['push', platform.sshRemote(app), 'main'], { cwd: wc, env: platform.gitEnv(devKey()) });
    const pane = dev.locator('[data-build-pane]');
    await expect.poll(() => pane.textContent(), { timeout: 30_000 }).toContain(`Building ${app}`);
    const push = await pushing;
    expect(push.code, push.stderr).toBe(0);
    await expect.poll(() => pane.textContent(), { timeout: 30_000 }).toContain('Releasing v1');
    await shot(dev, 'build-log');

    await dev.reload();
    await expect.poll(() => dev.locator('#overview table').textContent()).toMatch(new RegExp(`${app}\\.web\\.1\\s*running\\s*v1`));

    // Config: a new release, the value hidden until revealed, and shown as text.
    await dev.getByLabel('Name', { exact: true }).fill('GREETING');
    await dev.getByLabel('Value', { exact: true }).fill('<b>hi</b>');
    await pressAndReload(dev, 'Set', true);
    expect(await dev.locator('#releases').textContent()).toContain('v2 (current)');
    expect(await dev.locator('[data-config-key="GREETING"]').textContent()).toBe('hidden');
    await dev.getByRole('button', { name: 'Reveal values' }).click();
    await expect.poll(() => dev.locator('[data-config-key="GREETING"]').textContent()).toBe('<b>hi</b>');
    expect(await dev.locator('#config b').count()).toBe(0);

    // Scale web to 2.
    await dev.getByLabel('web containers').fill('2');
    await dev.getByRole('button', { name: 'Scale web' }).click();
    await expect.poll(async () => (await dev.locator('#overview table').textContent()) ?? '', { timeout: 60_000 }).toContain(`${app}.web.2`);

    // Roll back to v1, confirming.
    dev.once('dialog', (d) => void d.accept());
    await dev.getByRole('button', { name: 'Roll back to v1' }).click();
    await expect.poll(() => dev.locator('#releases').textContent(), { timeout: 60_000 }).toContain('v3 (current)');

    // Logs: the hostile line renders as text.
    await dev.getByRole('button', { name: 'Tail logs' }).click();
    const logs = dev.locator('[data-log-pane]');
    await expect.poll(() => logs.textContent(), { timeout: 30_000 }).toContain('<b>log-xss</b>');
    expect(await logs.locator('img, b').count()).toBe(0);
    expect(await dev.title()).not.toBe('1');
    await shot(dev, 'app-page');

    // Services: create a Redis service and link it in one form, see it listed (never its password), unlink it.
    const services = dev.locator('#services');
    expect(await services.textContent()).toContain('No services linked.');
    await dev.locator('#svc-new-kind').selectOption('redis');
    await dev.locator('#svc-new-name').fill(cache);
    await dev.locator('#svc-new-var').fill('CACHE_URL');
    await Promise.all([dev.waitForEvent('load', { timeout: 240_000 }), dev.getByRole('button', { name: 'Create and link' }).click()]);
    const row = services.locator('tbody tr');
    await expect.poll(() => row.count()).toBe(1);
    const cells = (await row.locator('td, th').allTextContents()).map((c) => c.trim());
    expect(cells).toEqual(['redis', cache, expect.stringMatching(/^(healthy|starting|running)$/), 'CACHE_URL', 'Unlink']);
    const info = JSON.parse((await platform.cli(['redis:info', cache, '--json', '--reveal'])).stdout) as { url: string; links: { app: string; var: string }[] };
    expect(info.links).toEqual([{ app, var: 'CACHE_URL' }]);
    const password = decodeURIComponent(new URL(info.url).password);
    expect(password.length).toBeGreaterThan(8);
    expect(await dev.content()).not.toContain(password);
    expect(await dev.locator('#releases').textContent()).toContain('v4 (current)');
    await shot(dev, 'app-services');
    dev.once('dialog', (d) => void d.accept());
    await pressAndReload(dev, `Unlink redis ${cache}`);
    expect(await services.textContent()).toContain('No services linked.');
    expect(JSON.parse((await platform.cli(['redis:info', cache, '--json'])).stdout).links).toEqual([]);

    // Share: the viewer sees nothing before, the app after, and is refused on the manager page.
    const vic = await signIn('vic', 375);
    await vic.goto(`${base()}/Portal`);
    expect(await vic.locator('.gallery').count()).toBe(0);
    await dev.getByLabel('Title').fill('<script>document.title=2</script>Hello');
    await dev.getByLabel('Tags (comma-separated)').fill('demo, node');
    await pressAndReload(dev, 'Save card');
    await dev.getByLabel('User or @group').fill('vic');
    await pressAndReload(dev, 'Add viewer');
    expect(await dev.locator('#access').textContent()).toMatch(/vic\s*Remove/);
    await vic.reload();
    const card = vic.locator('.card', { hasText: app });
    await expect.poll(() => card.count()).toBe(1);
    expect(await card.locator('h2').textContent()).toBe('<script>document.title=2</script>Hello');
    expect(await vic.title()).toBe('Portal · Slipway');
    await vic.getByLabel('Tag').selectOption('demo');
    await vic.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => vic.locator('.card').count()).toBe(1);
    await shot(vic, 'portal-375');
    const refused = await vic.goto(`${base()}/Manager/apps/${app}`);
    expect(refused?.status()).toBe(403);
    expect(await vic.locator('main').textContent()).toContain(`You may view ${app} but not manage it`);

    await dev.goto(`${base()}/Manager`);
    expect(await dev.locator('table.apps').textContent()).toMatch(new RegExp(`${app}\\s*running`));
    await shot(dev, 'manager-1920');
    const narrow = await signIn('dev', 375);
    // Each sign-in its own CSRF token: the router hands the pages the session cookie.
    const token = (p: Page) => p.locator('meta[name="slipway-csrf"]').getAttribute('content');
    expect(await token(narrow)).not.toBe(await token(dev));
    // Nothing wider than the phone's screen.
    expect(await narrow.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await shot(narrow, 'manager-375');
    expect(pageErrors).toEqual([]);
  }, 600_000);
  it('lets an admin remove a member, destroy a group and remove a user, each after a confirmation, then sign out', async () => {
    const boss = await signIn('boss', 1280);
    await boss.goto(`${base()}/Manager/admin`);
    expect(await boss.title()).toBe('Admin · Slipway');
    const json = async (argv: string[]) => JSON.parse((await platform.cli([...argv, '--json'])).stdout) as { name: string; members?: string[] }[];
    await boss.getByLabel('New group').fill('team');
    await pressAndReload(boss, 'Create group');
    await boss.locator('#gm-g').fill('team');
    await boss.locator('#gm-u').fill('vic');
    await pressAndReload(boss, 'Add to group');
    await boss.getByLabel('User name').fill('temp');
    await boss.getByLabel('Password (at least 10 characters)').fill(PASSWORD);
    await pressAndReload(boss, 'Add user');
    expect((await json(['groups:list'])).find((g) => g.name === 'team')?.members).toEqual(['vic']);
    await shot(boss, 'admin');

    // A dismissed confirmation changes nothing.
    const dialogs: string[] = [];
    boss.once('dialog', (d) => (dialogs.push(d.message()), void d.dismiss()));
    await boss.getByRole('button', { name: 'Remove vic from team' }).click();
    await expect.poll(() => dialogs).toEqual(['Remove vic from the group team?']);
    expect((await json(['groups:list'])).find((g) => g.name === 'team')?.members).toEqual(['vic']);
    boss.once('dialog', (d) => void d.accept());
    await pressAndReload(boss, 'Remove vic from team');
    expect((await json(['groups:list'])).find((g) => g.name === 'team')?.members).toEqual([]);
    boss.once('dialog', (d) => void d.accept());
    await pressAndReload(boss, 'Destroy group team');
    expect((await json(['groups:list'])).map((g) => g.name)).not.toContain('team');
    boss.once('dialog', (d) => void d.accept());
    await pressAndReload(boss, 'Remove temp', true);
    expect((await json(['users:list'])).map((u) => u.name)).not.toContain('temp');
    expect(await boss.locator('th[scope="row"]', { hasText: /^temp$/ }).count()).toBe(0);
    // The built-in admin and the signed-in admin have no Remove button; dev (only owner of an app) has one, and the command refuses.
    expect(await boss.getByRole('button', { name: 'Remove admin', exact: true }).count()).toBe(0);
    expect(await boss.getByRole('button', { name: 'Remove boss', exact: true }).count()).toBe(0);
    boss.once('dialog', (d) => void d.accept());
    await boss.getByRole('button', { name: 'Remove dev', exact: true }).click();
    await expect.poll(() => boss.locator('form[data-argv="users:remove dev"] output').textContent()).toMatch(/dev is the only owner of/);

    // One click on the header's Sign out ends the session and lands on the sign-in page.
    await Promise.all([boss.waitForURL(`${base()}/_auth/login`), boss.locator('header').getByRole('button', { name: 'Sign out' }).click()]);
    await boss.goto(`${base()}/Manager/admin`);
    expect(new URL(boss.url()).pathname).toBe('/_auth/login');
    expect(pageErrors).toEqual([]);
  }, 300_000);
});
