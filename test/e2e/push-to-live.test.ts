import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, uniqueApp, run } from '../support/platform.js';

// The whole path a user takes: real `git` over the real OpenSSH client into Slipway's SSH
// receiver, an offline build in Docker, a release container, and HTTP through the router.
describe('push to live over SSH', () => {
  let platform: TestPlatform;
  const app = uniqueApp('e2e');
  let wc: string;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    wc = await platform.workingCopy('node-hello');
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('deploys a node app with an npm dependency and serves it by host and by path', async () => {
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.stderr).toContain('remote: -----> ');
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toMatch(/Deployed .* v1/);

    const byHost = await platform.fetchApp(app, { by: 'host' });
    expect(byHost.status).toBe(200);
    expect(byHost.body).toContain('hello from node-hello 1m');
    const byPath = await platform.fetchApp(app, { by: 'path', path: '/some/where?q=1' });
    expect(byPath.status).toBe(200);
    expect(byPath.body).toContain('hello from node-hello');
    expect(byPath.body).toContain(`/${app}/some/where?q=1`);

    const ps = await platform.cli(['ps', app]);
    expect(ps.stdout).toMatch(new RegExp(`^${app}\\.web\\.1 running v1$`, 'm'));
  }, 600_000);

  it('deploys a code change', async () => {
    const server = path.join(wc, 'server.js');
    await fs.writeFile(server, (await fs.readFile(server, 'utf8')).replace('hello from', 'changed hello from'));
    await platform.commitAll(wc, 'change greeting');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    const res = await platform.fetchApp(app, { by: 'host' });
    expect(res.body).toContain('changed hello from node-hello');

    // The push returned once v2 was routed; v1 drained and stopped after it, which the build's
    // log records (`--follow` goes on until then), and nothing of v1 is left.
    const log = await platform.cli(['builds:log', app, '--follow']);
    expect(log.code, log.stderr).toBe(0);
    const deployed = log.stdout.indexOf('Deployed');
    const drained = log.stdout.indexOf(`Drained and stopped the replaced processes`);
    expect(deployed).toBeGreaterThan(0);
    expect(drained).toBeGreaterThan(deployed);
    expect(log.stdout.slice(drained)).toContain(`${app}.web.1 (v1)`);
    expect(log.stdout).toMatch(/phase old drained: \d+\.\d+ s/);
    const ps = await platform.cli(['ps', app]);
    expect(ps.stdout).toMatch(new RegExp(`^${app}\\.web\\.1 running v2$`, 'm'));
    expect(ps.stdout).not.toContain('.old-');
    expect(ps.stdout).not.toContain(' v1');
  }, 300_000);

  it('refuses a broken build and keeps the running release and the branch', async () => {
    const before = (await platform.git(wc, ['rev-parse', 'HEAD'])).stdout.trim();
    const pkgFile = path.join(wc, 'package.json');
    const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { scripts: Record<string, string> };
    pkg.scripts.build = 'echo this build fails on purpose && exit 1';
    await fs.writeFile(pkgFile, JSON.stringify(pkg, null, 2));
    await platform.commitAll(wc, 'break the build');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('this build fails on purpose');
    expect(push.stderr).toContain('running release is unchanged');

    const res = await platform.fetchApp(app, { by: 'host' });
    expect(res.body).toContain('changed hello from node-hello');
    const remote = await run('git', ['ls-remote', platform.sshRemote(app), 'refs/heads/main'], { env: platform.gitEnv() });
    expect(remote.stdout.split(/\s/)[0]).toBe(before);
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);
  }, 300_000);

  it('refuses a Procfile with a syntax error, naming the line', async () => {
    await fs.writeFile(path.join(wc, 'Procfile'), 'web: node server.js\nthis line is wrong\n');
    await platform.commitAll(wc, 'bad procfile');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/Procfile line 2/);
    expect((await platform.fetchApp(app, { by: 'host' })).body).toContain('changed hello from');
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);
  }, 300_000);

  it('refuses an app no buildpack detects, naming what was tried and how to pin one', async () => {
    const other = uniqueApp('e2e-none');
    await platform.createApp(other);
    const dir = await fs.mkdtemp(path.join(platform.home, 'plain-'));
    await fs.writeFile(path.join(dir, 'NOTES.txt'), 'nothing to build here\n');
    await platform.git(dir, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(dir, 'plain');
    const push = await platform.push(dir, platform.sshRemote(other));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/no buildpack detected this app \(tried: node/);
    expect(push.stderr).toContain('.buildpacks');
    expect((await platform.cli(['ps', other])).stdout).toContain('no containers');
  }, 120_000);

  it('refuses a Node.js version that does not exist, and keeps the running release', async () => {
    const pkgFile = path.join(wc, 'package.json');
    const original = await fs.readFile(pkgFile, 'utf8');
    await fs.writeFile(pkgFile, original.replace('"node": "24.x"', '"node": "99.x"'));
    await platform.commitAll(wc, 'impossible node');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('no Node.js version matches engines.node "99.x"');
    expect((await platform.fetchApp(app, { by: 'host' })).body).toContain('changed hello from');
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);
  }, 120_000);

  it('keeps other branches without deploying them', async () => {
    const push = await platform.push(wc, platform.sshRemote(app), 'main:feature-x');
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('not deployed');
  }, 120_000);

  it('refuses a push to an app that does not exist', async () => {
    const push = await platform.push(wc, platform.sshRemote('no-such-app'));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('app "no-such-app" does not exist');
  }, 60_000);

  it('refuses an unknown SSH key', async () => {
    const stranger = path.join(platform.home, 'stranger');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const r = await platform.ssh(['apps:list'], { key: stranger });
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('Permission denied');
  }, 60_000);

  it('answers commands over SSH and refuses unknown ones and bad names', async () => {
    const list = await platform.ssh(['apps:list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(app);
    const unknown = await platform.ssh(['no:such-command']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^slipway: unknown command "no:such-command"/);
    const bad = await platform.cli(['apps:create', 'Bad;Name']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^slipway: invalid app name/);
    expect((await platform.cli(['apps:list'])).stdout).not.toContain('Bad');
    const meta = await platform.ssh(['apps:create', 'x; touch /tmp/slipway-pwned']);
    expect(meta.code).toBe(2);
    await expect(fs.access('/tmp/slipway-pwned')).rejects.toThrow();
  }, 60_000);

  it('keeps serving through the router while the daemon is stopped', async () => {
    await platform.stopDaemon();
    const res = await platform.fetchApp(app, { by: 'host' });
    expect(res.status).toBe(200);
    const unknown = await platform.fetchApp('nope', { by: 'host' });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain('app not found');
    await platform.restartDaemon();
    expect((await platform.cli(['status'])).code).toBe(0);
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
  }, 300_000);
});
