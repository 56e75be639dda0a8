import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteTable } from '../../router/table.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { closedPort, eventually, request, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

describe('router proxying (nginx from the route table, real upstream servers on loopback)', () => {
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
        app2: { upstreams: [b.target] },
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

  /** nginx's own error log (upstream failures are written there, not to the daemon's log). */
  const errorLog = (): Promise<string> => fs.readFile(path.join(fx.prefix, 'logs', 'error.log'), 'utf8');

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

  it('sets X-Forwarded-* and drops hop-by-hop headers', async () => {
    const r = await request(port, {
      host: `APP.localhost:${port}`,
      headers: {
        'x-forwarded-for': '203.0.113.7',
        'x-forwarded-proto': 'https',
        connection: 'keep-alive',
        'keep-alive': 'timeout=100',
        te: 'trailers',
        'proxy-connection': 'keep-alive',
        'proxy-authorization': 'Basic c2VjcmV0',
      },
    });
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(`APP.localhost:${port}`);
    expect(seen['x-forwarded-port']).toBe(String(port));
    expect(seen.host).toBe(`APP.localhost:${port}`);
    for (const hop of ['keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'upgrade']) expect(seen[hop], hop).toBeUndefined();
    // The router's own keep-alive connection to the app, not the client's wishes.
    expect(seen.connection).toBeUndefined();
  });

  /**
   * Hop-by-hop abuse: a proxy that honours a client's Connection list deletes the headers it names,
   * so a client could strip what the router adds. nginx never deletes headers a client names there
   * (docs/security.md), and every header the app may trust is set by the router itself.
   */
  it('keeps the headers it sets when a client names them in Connection', async () => {
    const r = await request(port, {
      host: 'app.localhost',
      headers: {
        connection: 'keep-alive, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, X-Slipway-User',
        'x-slipway-user': 'admin',
      },
    });
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('app.localhost');
    expect(seen['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
    expect(seen['x-slipway-user']).toBeUndefined();
  });

  it('routes like the route table says: exact host first, then the first path segment', async () => {
    const routed: Array<[string, string, string]> = [
      ['APP.LocalHost:8080', '/x?y', 'a'],
      ['app2.localhost', '/app/x', 'b'], // host wins over path
      ['app.localhost', '/_git/app.git/info/refs', 'a'], // an app host's /_git/ is the app's
      ['localhost', '/app', 'a'],
      ['localhost', '/app/', 'a'],
      ['localhost', '/app/deep/path', 'a'],
      ['localhost', '/app?x=1', 'a'],
      ['127.0.0.1', '/app2/x', 'b'],
      ['[::1]:8080', '/app', 'a'],
      ['nope.localhost', '/app', 'a'], // an unknown app host falls back to the path
    ];
    for (const [host, p, name] of routed) {
      const r = await request(port, { host, path: p });
      expect(r.status, `${host} ${p}`).toBe(200);
      expect(JSON.parse(r.body), `${host} ${p}`).toMatchObject({ name, url: p });
    }
    const unknown: Array<[string, string, string]> = [
      ['nope.localhost', '/other', 'app not found: nope\n'],
      ['xapp.localhost', '/', 'app not found: xapp\n'],
      ['a.app.localhost', '/', 'app not found\n'],
      ['localhost', '/apple', 'app not found: apple\n'],
      ['localhost', '/ap', 'app not found: ap\n'],
      ['localhost', '/', 'app not found\n'],
      ['localhost', '/?app', 'app not found\n'],
      ['localhost', '/_git', 'app not found\n'],
      ['localhost', '/_gitx/y', 'app not found\n'],
      ['constructor.localhost', '/__proto__', 'app not found: constructor\n'],
      ['localhost', '/__proto__/x', 'app not found\n'],
    ];
    for (const [host, p, body] of unknown) {
      const r = await request(port, { host, path: p });
      expect(r.status, `${host} ${p}`).toBe(404);
      expect(r.body, `${host} ${p}`).toBe(body);
    }
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
    expect(await errorLog()).toMatch(/connect\(\) failed \(111: Connection refused\) while connecting to upstream.*host: "failover\.localhost"/);
  });

  it('answers 502 when the upstream refuses or hangs up, and logs why', async () => {
    const dead = await request(port, { host: 'dead.localhost' });
    expect(dead.status).toBe(502);
    const crashy = await request(port, { host: 'crashy.localhost' });
    expect(crashy.status).toBe(502);
    expect(crashy.body).toContain('bad gateway');
    expect(crashy.body).toBe('bad gateway: crashy did not answer\n');
    const log = await eventually(errorLog, (t) => t.includes('crashy.localhost') && t.includes('dead.localhost'));
    expect(log).toMatch(new RegExp(`upstream prematurely closed connection.*upstream: "http://${broken.target}/".*host: "crashy\\.localhost"`));
    expect(log).toMatch(/Connection refused\) while connecting to upstream.*host: "dead\.localhost"/);
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
