import crypto from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, request, startRouterFixture, startUpstream, type RouterFixture, type Upstream } from './helpers.js';

/**
 * Slow clients (slowloris) against the router's public behaviour only: a TCP socket to its port.
 * The bounds are shrunk through options so the file runs in seconds; each check allows the
 * checking interval plus slack for a busy machine, far below the unbounded time the attack
 * would otherwise hold the connection.
 */
const T = { headersMs: 2000, bodyMs: 1000, bodyMinBytesPerSecond: 200, keepAliveMs: 500, checkMs: 100 };
const SLACK = 1500;
const H = 'Host: app.localhost\r\n';

interface Trickled {
  reply: string;
  /** When the router closed the connection, from the first byte; null if it never did. */
  closedAfterMs: number | null;
}

/** Sends `first`, then `next(i)` every `everyMs` until the router closes or `forMs` pass. */
function trickle(port: number, first: string, next: (i: number) => string, everyMs: number, forMs: number): Promise<Trickled> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let started = 0;
    let closedAfterMs: number | null = null;
    let timer: NodeJS.Timeout | undefined;
    const socket = net.connect(port, '127.0.0.1', () => {
      started = Date.now();
      socket.write(first);
      let i = 0;
      timer = setInterval(() => {
        if (Date.now() - started >= forMs) socket.destroy();
        else socket.write(next(i++));
      }, everyMs);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      closedAfterMs ??= Date.now() - started;
      socket.destroy();
    });
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedAfterMs });
    });
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
      closedAfterMs ??= Date.now() - started;
    });
  });
}

describe('slow clients at the router', () => {
  let up: Upstream;
  let fx: RouterFixture;
  /** When set, the upstream holds each request unread this long (to push back on the router). */
  let holdMs = 0;

  beforeAll(async () => {
    up = await startUpstream('app', (req, res) => {
      let bytes = 0;
      const hold = holdMs;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(JSON.stringify({ bytes, hold })));
      req.pause();
      setTimeout(() => req.resume(), hold);
    });
    // A websocket-style echo, to show tunnels outlive every bound.
    up.server.on('upgrade', (_req, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    fx = await startRouterFixture({ version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null }, { timeouts: T });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('answers 408 and closes when headers trickle in one line a second', async () => {
    const hits = up.hits.length;
    const r = await trickle(fx.router.port, `GET / HTTP/1.1\r\n${H}`, (i) => `X-Slow-${i}: x\r\n`, 1000, 10_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeLessThan(T.headersMs + SLACK);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(up.hits.length).toBe(hits);
  }, 15_000);

  it('answers 408 to a connection that never sends a byte', async () => {
    const started = Date.now();
    const reply = await rawExchange(fx.router.port, '', 10_000);
    expect(Date.now() - started).toBeLessThan(T.headersMs + SLACK);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
  }, 15_000);

  it('serves headers that arrive slowly but within the bound', async () => {
    const lines = [`GET / HTTP/1.1\r\n${H}`, 'X-A: 1\r\n', 'X-B: 2\r\n', 'Connection: close\r\n', '\r\n'];
    const r = await trickle(fx.router.port, lines[0]!, (i) => lines[i + 1] ?? '', 300, 5000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('cuts a body trickled one byte at a time, and the upstream never sees it complete', async () => {
    const hits = up.hits.length;
    const r = await trickle(fx.router.port, `POST / HTTP/1.1\r\n${H}Content-Length: 1000\r\n\r\n`, () => 'x', 200, 10_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeLessThan(T.bodyMs + SLACK);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.reply).toContain('request body too slow');
    // The request reached the upstream (its headers travel with the first byte) but was cut off.
    expect(up.hits.slice(hits).every((h) => !h.complete)).toBe(true);
    expect(fx.logs.lines.some((l) => l.msg === 'request body too slow; connection closed')).toBe(true);
  }, 15_000);

  it('serves a body that takes several times the bound but keeps above the minimum rate', async () => {
    const chunks = 16;
    const r = await trickle(
      fx.router.port,
      `POST / HTTP/1.1\r\n${H}Content-Length: ${chunks * 100}\r\nConnection: close\r\n\r\n`,
      // 100 bytes every 200 ms: 500 B/s against a floor of 200 B/s, for 3.2 s against a 1 s bound.
      () => 'y'.repeat(100),
      200,
      8000,
    );
    expect(r.reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.reply).toContain(`"bytes":${chunks * 100}`);
  }, 15_000);

  it('never cuts a client while the upstream is the one not reading (a large push to a busy daemon)', async () => {
    holdMs = 3 * T.bodyMs;
    try {
      const body = crypto.randomBytes(32 * 1024 * 1024);
      const reply = await request(fx.router.port, { host: 'app.localhost', method: 'POST', body });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ bytes: body.length, hold: holdMs });
    } finally {
      holdMs = 0;
    }
  }, 30_000);

  it('closes an idle keep-alive connection after the idle bound', async () => {
    // Node keeps the socket up to 1 s past keepAliveTimeout, having told the client the bound.
    const r = await trickle(fx.router.port, `GET / HTTP/1.1\r\n${H}\r\n`, () => '', 500, 10_000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeGreaterThanOrEqual(T.keepAliveMs - 100);
    expect(r.closedAfterMs!).toBeLessThan(T.keepAliveMs + 1000 + SLACK);
  }, 15_000);

  it('keeps an idle websocket tunnel open past every bound', async () => {
    const socket = net.connect(fx.router.port, '127.0.0.1');
    try {
      socket.write(`GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      let got = '';
      socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
      const waitFor = (text: string): Promise<void> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            if (got.includes(text)) resolve();
            else if (socket.destroyed) reject(new Error(`tunnel closed before "${text}"; got ${JSON.stringify(got)}`));
            else setTimeout(check, 20);
          };
          check();
        });
      await waitFor('HTTP/1.1 101 ');
      await new Promise((r) => setTimeout(r, T.headersMs + T.bodyMs + T.keepAliveMs + 1000));
      socket.write('still-here');
      await waitFor('still-here');
    } finally {
      socket.destroy();
    }
  }, 15_000);
});
