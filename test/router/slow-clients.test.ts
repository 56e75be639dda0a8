import crypto from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, rawExchange, request, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

/**
 * Slow clients (slowloris) against the router's public behaviour only: a TCP socket to its port.
 * The bounds are shrunk through options so the file runs in seconds (nginx counts whole seconds);
 * each check allows slack for a busy machine, far below the unbounded time the attack would
 * otherwise hold the connection. What protects the apps: nginx reads a request's headers and an
 * app's request body whole before it connects to the app, so a slow client only ever holds an
 * nginx connection (a few KB in an event loop), never one of the app's (docs/security.md).
 */
const T = { headersMs: 2000, bodyMs: 1000, keepAliveMs: 1000 };
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
  let fx: NginxFixture;
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
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null }, { timeouts: T });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  /** The access log's statuses for requests with this method (nginx logs a 408 it never sends). */
  const loggedStatuses = async (method: string): Promise<number[]> => {
    const text = await fs.readFile(path.join(fx.prefix, 'logs', 'access.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { status: number; method: string })
      .filter((l) => l.method === method)
      .map((l) => l.status);
  };

  it('closes a connection whose headers trickle in one line a second, at the header bound, app untouched', async () => {
    const hits = up.hits.length;
    const r = await trickle(fx.router.port, `PATCH / HTTP/1.1\r\n${H}`, (i) => `X-Slow-${i}: x\r\n`, 1000, 10_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeLessThan(T.headersMs + SLACK);
    // nginx closes without answering (a client this slow is not waiting for one) and logs a 408.
    expect(r.reply).toBe('');
    expect(up.hits.length).toBe(hits);
    expect(await eventually(() => loggedStatuses('PATCH'), (s) => s.includes(408))).toContain(408);
  }, 15_000);

  it('closes a connection that never sends a byte at the header bound', async () => {
    const started = Date.now();
    const reply = await rawExchange(fx.router.port, '', 10_000);
    expect(Date.now() - started).toBeLessThan(T.headersMs + SLACK);
    expect(reply).toBe('');
  }, 15_000);

  it('serves headers that arrive slowly but within the bound', async () => {
    const lines = [`GET / HTTP/1.1\r\n${H}`, 'X-A: 1\r\n', 'X-B: 2\r\n', 'Connection: close\r\n', '\r\n'];
    const r = await trickle(fx.router.port, lines[0]!, (i) => lines[i + 1] ?? '', 300, 5000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('never hands the app a body that trickles in, and cuts the client once it stalls for the body bound', async () => {
    const hits = up.hits.length;
    const trickleMs = 3000;
    // One byte every 200 ms for 3 s (the body bound is 1 s between reads, so this is not cut),
    // then nothing: the stall is what nginx bounds.
    const r = await trickle(fx.router.port, `PUT / HTTP/1.1\r\n${H}Content-Length: 1000\r\n\r\n`, (i) => (i < trickleMs / 200 ? 'x' : ''), 200, 15_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeGreaterThanOrEqual(trickleMs);
    expect(r.closedAfterMs!).toBeLessThan(trickleMs + T.bodyMs + SLACK);
    expect(r.reply).toBe('');
    // The app never saw the request at all: not its headers, not a byte of its body.
    expect(up.hits.length).toBe(hits);
    expect(await eventually(() => loggedStatuses('PUT'), (s) => s.includes(408))).toContain(408);
  }, 20_000);

  it('serves a body that takes several times the body bound while its bytes keep coming', async () => {
    const chunks = 16;
    const r = await trickle(
      fx.router.port,
      `POST / HTTP/1.1\r\n${H}Content-Length: ${chunks * 100}\r\nConnection: close\r\n\r\n`,
      // 100 bytes every 200 ms for 3.2 s: the bound is between reads, not on the whole body.
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
    const r = await trickle(fx.router.port, `GET / HTTP/1.1\r\n${H}\r\n`, () => '', 500, 10_000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.closedAfterMs).not.toBeNull();
    expect(r.closedAfterMs!).toBeGreaterThanOrEqual(T.keepAliveMs - 100);
    expect(r.closedAfterMs!).toBeLessThan(T.keepAliveMs + SLACK);
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
