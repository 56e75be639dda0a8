import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, sleep, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

describe('keep-alive towards upstreams', () => {
  let up: Upstream;
  let fx: NginxFixture;

  beforeAll(async () => {
    // Setting Connection ourselves stops Node from sending a "Keep-Alive: timeout=5" hint, like
    // most non-Node servers: the router must then rely on its own idle timeout.
    up = await startUpstream('ka', (req, res) => {
      req.resume();
      res.setHeader('connection', 'keep-alive');
      res.end('ok');
    });
    // Node's default: the upstream closes idle keep-alive sockets after 5 s.
    expect(up.server.keepAliveTimeout).toBe(5000);
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { ka: { upstreams: [up.target] } }, git: null });
  });

  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('reuses one upstream connection for back-to-back requests', async () => {
    const before = up.connections;
    for (let i = 0; i < 5; i++) expect((await request(fx.router.port, { host: 'ka.localhost' })).status).toBe(200);
    expect(up.connections - before).toBe(1);
  });

  it('drops idle upstream sockets before the upstream does, so requests around its timeout never 502', async () => {
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const statuses: number[] = [];
      const opened: number[] = [];
      const send = async (): Promise<void> => {
        const before = up.connections;
        statuses.push((await request(fx.router.port, { host: 'ka.localhost', agent: client })).status);
        opened.push(up.connections - before);
      };
      await send();
      // Idle 4.1 s and 4.95 s: still open on the upstream's side (5 s), long dropped on ours
      // (idle at most `keepalive_time`, docs/router.md "Stable fronts"), so the router opens a
      // fresh connection instead of racing the upstream's close.
      for (const wait of [4100, 4950]) {
        await sleep(wait);
        await send();
      }
      expect(statuses).toEqual([200, 200, 200]);
      expect(opened.slice(1)).toEqual([1, 1]);
      expect(fx.logs.lines.filter((l) => l.level === 50)).toEqual([]);
    } finally {
      client.destroy();
    }
  }, 20_000);
});
