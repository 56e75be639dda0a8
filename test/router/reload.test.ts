import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { watchRouteTable } from '../../router/source.js';
import { writeRouteTable, type RouteTable } from '../../router/table.js';
import { captureLogs, eventually, request, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

const table = (apps: RouteTable['apps']): RouteTable => ({ version: 1, domain: 'localhost', apps, git: null });

describe('route table reloads', () => {
  let one: Upstream;
  let two: Upstream;
  let fx: NginxFixture | null = null;

  beforeAll(async () => {
    one = await startUpstream('one');
    two = await startUpstream('two');
  });
  afterEach(async () => {
    await fx?.close();
    fx = null;
  });
  afterAll(async () => {
    await Promise.all([one.close(), two.close()]);
  });

  const nameOf = async (port: number, host: string): Promise<string> => {
    const r = await request(port, { host });
    return r.status === 200 ? (JSON.parse(r.body).name as string) : String(r.status);
  };

  it('follows atomic rewrites of the table', async () => {
    fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    const port = fx.router.port;
    expect(await nameOf(port, 'web.localhost')).toBe('one');
    await fx.write(table({ web: { upstreams: [two.target] }, more: { upstreams: [one.target] } }));
    expect(await eventually(() => nameOf(port, 'web.localhost'), (n) => n === 'two')).toBe('two');
    expect(await nameOf(port, 'more.localhost')).toBe('one');
    await fx.write(table({}));
    expect(await eventually(() => nameOf(port, 'web.localhost'), (n) => n === '404')).toBe('404');
  });

  it('starts with no table (404s) and picks it up once the daemon writes it', async () => {
    fx = await startNginxFixture(null);
    const port = fx.router.port;
    expect(await nameOf(port, 'web.localhost')).toBe('404');
    await fx.write(table({ web: { upstreams: [one.target] } }));
    expect(await eventually(() => nameOf(port, 'web.localhost'), (n) => n === 'one')).toBe('one');
  });

  it('keeps the last good table when a new one is invalid or the file disappears', async () => {
    fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    const port = fx.router.port;
    const logs = fx.logs.lines;
    // Renamed into place like an atomic write, but not a valid table.
    const tmp = path.join(fx.dir, 'routes.json.tmp');
    await fs.writeFile(tmp, JSON.stringify({ version: 1, domain: 'localhost', apps: { 'Bad App': { upstreams: [] } }, git: null }));
    await fs.rename(tmp, fx.routesFile);
    const rejected = await eventually(
      async () => logs.filter((l) => l.msg === 'route table rejected; keeping the last good routes'),
      (l) => l.length > 0,
    );
    expect(rejected).toHaveLength(1);
    expect(String(rejected[0]!.err)).toMatch(/^invalid route table/);
    expect(await nameOf(port, 'web.localhost')).toBe('one');

    await fs.writeFile(fx.routesFile, '{"version": 1, "dom');
    await eventually(async () => logs.filter((l) => l.msg === 'route table rejected; keeping the last good routes'), (l) => l.length > 1);
    expect(await nameOf(port, 'web.localhost')).toBe('one');

    await fs.rm(fx.routesFile);
    await eventually(async () => logs.filter((l) => l.msg === 'route table removed; keeping the last good routes'), (l) => l.length > 0);
    expect(await nameOf(port, 'web.localhost')).toBe('one');

    await fx.write(table({ web: { upstreams: [two.target] } }));
    expect(await eventually(() => nameOf(port, 'web.localhost'), (n) => n === 'two')).toBe('two');
  });

  it('notices changes by polling alone', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-poll-'));
    const file = path.join(dir, 'routes.json');
    const { logger } = captureLogs();
    const source = await watchRouteTable(file, { logger, watch: false, pollMs: 100, defaultDomain: 'example.com' });
    try {
      expect(source.current()).toEqual({ version: 1, domain: 'example.com', apps: {}, git: null });
      await writeRouteTable(file, table({ web: { upstreams: [one.target] } }));
      const seen = await eventually(async () => source.current(), (t) => 'web' in t.apps, 3000);
      expect(seen.apps.web).toEqual({ upstreams: [one.target] });
    } finally {
      source.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  /**
   * Each route change is a graceful nginx reload, and the old workers close their idle keep-alive
   * connections at once: a client that sends on one at that moment gets a reset although nginx
   * never read its request. Browsers resend such a request on a new connection (RFC 9112 9.3.1),
   * and so does this client: with that, a reload loses no request (README, "Reloads and keep-alive
   * clients"; bench/router-nginx.mjs counts a client that does not resend).
   */
  it('loses no request of a browser-like keep-alive client across 20 route changes', async () => {
    fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    const port = fx.router.port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const served = new WeakMap<object, number>();
    const attempt = (): Promise<{ status?: number; err?: NodeJS.ErrnoException; reused: boolean }> =>
      new Promise((resolve) => {
        let reused = false;
        const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { host: 'web.localhost' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused }));
        });
        // Counted per socket: req.reusedSocket misses a socket the Agent hands to a queued request.
        req.on('socket', (socket) => {
          const n = (served.get(socket) ?? 0) + 1;
          served.set(socket, n);
          reused = n > 1;
        });
        req.on('error', (err: NodeJS.ErrnoException) => resolve({ err, reused }));
      });
    const outcomes: Record<string, number> = {};
    let resent = 0;
    let changing = true;
    const loops = Array.from({ length: 8 }, async () => {
      for (let n = 0; changing && n < 5000; n++) {
        let r = await attempt();
        // Again while it fails that way: the pool may hand out another connection being closed.
        for (let again = 0; again < 5 && r.err?.code === 'ECONNRESET' && r.reused; again++) {
          resent++;
          r = await attempt();
        }
        const key = r.err ? `${r.err.code ?? 'error'}${r.reused ? ' on a reused connection' : ''}: ${r.err.message}` : String(r.status);
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
    });
    const started = Date.now();
    try {
      for (let i = 0; i < 20; i++) {
        await fx.nginx.serve(table({ web: { upstreams: [i % 2 === 0 ? two.target : one.target] }, [`extra${i}`]: { upstreams: [one.target] } }));
      }
    } finally {
      changing = false;
      await Promise.all(loops);
      agent.destroy();
    }
    expect(Object.keys(outcomes), JSON.stringify({ outcomes, resent, ms: Date.now() - started })).toEqual(['200']);
    expect(outcomes['200']).toBeGreaterThan(20);
  }, 180_000);
});
