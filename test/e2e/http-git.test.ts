import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// Git over HTTP the way users reach it: the real git client, through the router, to the
// daemon's smart HTTP endpoint, with a token made by `slipway tokens:create`.
describe('git over HTTP with tokens', () => {
  let platform: TestPlatform;
  const app = uniqueApp('http');
  let wc: string;
  let token: string;

  const httpRemote = (secret: string, name = app) => `http://x:${secret}@127.0.0.1:${platform.httpPort}/_git/${name}.git`;
  const git = (args: string[], cwd?: string) => run('git', args, { env: platform.gitEnv(), ...(cwd ? { cwd } : {}) });

  function get(urlPath: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: platform.httpPort, path: urlPath, headers: { host: `127.0.0.1:${platform.httpPort}`, ...headers }, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    wc = await platform.workingCopy('node-hello');
    const created = await platform.cli(['tokens:create', 'ci']);
    expect(created.code, created.stderr).toBe(0);
    token = created.stdout.trim();
    expect(token).toMatch(/^slw_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toContain('shown only now');
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('pushes over HTTP with a token and deploys, showing the build output', async () => {
    const push = await git(['push', httpRemote(token), 'main'], wc);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('remote: -----> ');
    expect(push.stderr).toMatch(/Deployed .* v1/);
    const res = await platform.fetchApp(app, { by: 'host' });
    expect(res.status).toBe(200);
    expect(res.body).toContain('hello from node-hello');
    const releases = await platform.cli(['apps:info', app, '--json']);
    expect(JSON.parse(releases.stdout).release).toBe('v1');
  }, 600_000);

  it('refuses a wrong token with 401 and a Basic challenge, and git fails', async () => {
    const bad = `Basic ${Buffer.from('x:slw_wrong').toString('base64')}`;
    const r = await get(`/_git/${app}.git/info/refs?service=git-upload-pack`, { authorization: bad });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Basic realm="Slipway"/);
    const none = await get(`/_git/${app}.git/info/refs?service=git-receive-pack`);
    expect(none.status).toBe(401);
    const push = await git(['push', httpRemote('slw_wrong'), 'main:other'], wc);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('Authentication failed');
    const dumb = await get(`/_git/${app}.git/info/refs`, { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` });
    expect(dumb.status).toBe(403);
    expect(dumb.body).toContain('dumb HTTP is not supported');
  }, 60_000);

  it('clones over HTTP and over SSH', async () => {
    const viaHttp = path.join(platform.home, 'clone-http');
    const viaSsh = path.join(platform.home, 'clone-ssh');
    const h = await git(['clone', '-q', httpRemote(token), viaHttp]);
    expect(h.code, h.stderr).toBe(0);
    const s = await git(['clone', '-q', platform.sshRemote(app), viaSsh]);
    expect(s.code, s.stderr).toBe(0);
    const original = await fs.readFile(path.join(wc, 'server.js'), 'utf8');
    expect(await fs.readFile(path.join(viaHttp, 'server.js'), 'utf8')).toBe(original);
    expect(await fs.readFile(path.join(viaSsh, 'server.js'), 'utf8')).toBe(original);
  }, 120_000);

  it('lists the token without its secret, then revoking it locks git out', async () => {
    const list = await platform.cli(['tokens:list', '--json']);
    expect(list.code).toBe(0);
    const tokens = JSON.parse(list.stdout) as { name: string; lastUsedAt: string | null }[];
    expect(tokens.map((t) => t.name)).toEqual(['ci']);
    expect(tokens[0]!.lastUsedAt).not.toBeNull();
    expect(list.stdout).not.toContain(token);
    expect(list.stdout).not.toContain('sha256');
    expect((await platform.ssh(['tokens:list'])).stdout).toMatch(/^ci /m);

    const revoke = await platform.ssh(['tokens:revoke', 'ci']);
    expect(revoke.code, revoke.stderr).toBe(0);
    const clone = await git(['clone', '-q', httpRemote(token), path.join(platform.home, 'clone-revoked')]);
    expect(clone.code).not.toBe(0);
    expect(clone.stderr).toContain('Authentication failed');
    const again = await platform.cli(['tokens:revoke', 'ci']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^slipway: no token named "ci"/);
  }, 120_000);

  it('answers 503 while the daemon is down and serves again after it restarts', async () => {
    const fresh = (await platform.cli(['tokens:create', 'after-restart'])).stdout.trim();
    await platform.stopDaemon();
    const down = await get(`/_git/${app}.git/info/refs?service=git-upload-pack`);
    expect(down.status).toBe(503);
    await platform.restartDaemon();
    const remote = await git(['ls-remote', httpRemote(fresh), 'refs/heads/main']);
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toMatch(/^[0-9a-f]{40}\trefs\/heads\/main$/m);
  }, 300_000);
});
