import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, sleep, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

describe('graceful close', () => {
  let slow: Upstream;
  let fx: NginxFixture;

  beforeAll(async () => {
    slow = await startUpstream('slow', (req, res) => {
      req.resume();
      setTimeout(() => res.end('done'), 400);
    });
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { slow: { upstreams: [slow.target] } }, git: null });
  });
  afterAll(async () => {
    await slow.close();
  });

  it('finishes in-flight requests, then stops accepting connections', async () => {
    const port = fx.router.port;
    const inFlight = request(port, { host: 'slow.localhost' });
    await sleep(100);
    const closing = fx.close();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.body).toBe('done');
    await closing;
    await expect(request(port, { host: 'slow.localhost' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('ends open websocket tunnels once the grace period is over', async () => {
    const ws = await startUpstream('ws');
    ws.server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    const wfx = await startNginxFixture(
      { version: 1, domain: 'localhost', apps: { ws: { upstreams: [ws.target] } }, git: null },
      { closeGraceMs: 300 },
    );
    try {
      const socket = net.connect(wfx.router.port, '127.0.0.1');
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.on('error', () => {});
      socket.write('GET / HTTP/1.1\r\nHost: ws.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      const head = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
      expect(head).toMatch(/^HTTP\/1\.1 101 /);
      const started = Date.now();
      await wfx.close();
      await closed;
      // 300 ms of grace plus nginx's fast shutdown on a busy machine: seconds, never the hour an
      // open upgrade may otherwise last across reloads.
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await ws.close();
    }
  });
});
