import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteTable } from '../../router/table.js';
import { closedPort, request, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

describe('router proxying (real upstream servers on loopback)', () => {
  let a: Upstream;
  let b: Upstream;
  let broken: Upstream;
  let halfway: Upstream;
  let fx: NginxFixture;
  let port: number;
  let refused: number;

  beforeAll(async () => {
    a = await startUpstream('a');
    b = await startUpstream('b');
    // Accepts the connection, then hangs up without answering: a crashed app.
    broken = await startUpstream('broken', (req) => req.socket.destroy());
    // Starts a response, then dies in the middle of the body.
    halfway = await startUpstream('halfway', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '100' });
      res.write('0123456789', () => setTimeout(() => res.socket?.destroy(), 50));
    });
    refused = await closedPort();
    const table: RouteTable = {
      version: 1,
      domain: 'localhost',
      apps: {
        app: { upstreams: [a.target] },
        pair: { upstreams: [a.target, b.target] },
        failover: { upstreams: [`127.0.0.1:${refused}`, b.target] },
        dead: { upstreams: [`127.0.0.1:${refused}`] },
        crashy: { upstreams: [broken.target] },
        idle: { upstreams: [] },
        halfway: { upstreams: [halfway.target] },
      },
      git: null,
    };
    fx = await startNginxFixture(table);
    port = fx.router.port;
  });

  afterAll(async () => {
    await fx.close();
    await Promise.all([a.close(), b.close(), broken.close(), halfway.close()]);
  });

  it('routes by host and forwards the path unchanged', async () => {
    const r = await request(port, { host: `app.localhost:${port}`, path: '/some/path?q=1' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ name: 'a', url: '/some/path?q=1' });
  });

  it('routes by path and forwards the full original path', async () => {
    for (const p of ['/app', '/app/x/y?z=1']) {
      const r = await request(port, { host: `127.0.0.1:${port}`, path: p });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ name: 'a', url: p });
    }
  });

  it('sets X-Forwarded-* and strips hop-by-hop headers', async () => {
    const r = await request(port, {
      host: `APP.localhost:${port}`,
      headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', connection: 'x-private', 'x-private': 'secret' },
    });
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(`APP.localhost:${port}`);
    expect(seen['x-forwarded-port']).toBe(String(port));
    expect(seen.host).toBe(`APP.localhost:${port}`);
    expect(seen['x-private']).toBeUndefined();
  });

  it('matches hosts exactly: look-alike hosts get 404 app not found', async () => {
    for (const host of ['evillocalhost', 'app.localhost.evil.com', 'xapp.localhost', 'a.app.localhost']) {
      const r = await request(port, { host });
      expect(r.status, host).toBe(404);
      expect(r.body).toContain('app not found');
      expect(r.headers['content-type']).toMatch(/^text\/plain/);
    }
    expect(a.hits.every((h) => !/evil|xapp|a\.app/.test(h.headers.host ?? ''))).toBe(true);
  });

  it('answers 404 for an unknown app, naming it only when it is a valid name', async () => {
    const named = await request(port, { host: 'nope.localhost' });
    expect(named.status).toBe(404);
    expect(named.body).toBe('app not found: nope\n');
    const odd = await request(port, { path: '/%3Cscript%3E' });
    expect(odd.status).toBe(404);
    expect(odd.body).toBe('app not found\n');
  });

  it('round-robins over upstreams', async () => {
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push(JSON.parse((await request(port, { host: 'pair.localhost' })).body).name as string);
    expect(names.filter((n) => n === 'a')).toHaveLength(3);
    expect(names.filter((n) => n === 'b')).toHaveLength(3);
    for (let i = 1; i < names.length; i++) expect(names[i]).not.toBe(names[i - 1]);
  });

  it('passes a request to the next upstream when one refuses the connection, body included', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await request(port, { host: 'failover.localhost', method: 'POST', body: 'hello', path: '/post' });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ name: 'b', url: '/post', headers: { 'content-length': '5' } });
    }
    expect(fx.logs.lines.filter((l) => l.msg === 'upstream refused; trying the next one').length).toBeGreaterThanOrEqual(2);
  });

  it('answers 502 when the upstream refuses or hangs up, and logs one error line', async () => {
    const before = fx.logs.lines.filter((l) => l.level === 50).length;
    const dead = await request(port, { host: 'dead.localhost' });
    expect(dead.status).toBe(502);
    const crashy = await request(port, { host: 'crashy.localhost' });
    expect(crashy.status).toBe(502);
    expect(crashy.body).toContain('bad gateway');
    const errors = fx.logs.lines.filter((l) => l.level === 50);
    expect(errors.length - before).toBe(2);
    expect(errors.at(-1)).toMatchObject({ route: 'crashy', upstream: broken.target });
  });

  it('answers 503 for an app with no healthy upstream and for git when the daemon is away', async () => {
    const idle = await request(port, { host: 'idle.localhost' });
    expect(idle.status).toBe(503);
    expect(idle.body).toContain('app idle has no running web process');
    const git = await request(port, { path: '/_git/app.git/info/refs?service=git-upload-pack' });
    expect(git.status).toBe(503);
    expect(git.body).toContain('git over HTTP is not available');
  });

  it('cuts the client off when the upstream dies mid-response, so it never sees a short body as complete', async () => {
    await expect(request(port, { host: 'halfway.localhost' })).rejects.toMatchObject({ code: 'ECONNRESET' });
    // The router itself keeps serving.
    expect((await request(port, { host: 'app.localhost' })).status).toBe(200);
  });
});
