import crypto from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const accept = (key: string): string => crypto.createHash('sha1').update(key + GUID).digest('base64');

/** Opens a websocket through the router and returns the socket, the handshake and its leftover bytes. */
function openTunnel(port: number, host: string, key: string): Promise<{ socket: net.Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `GET /chat?room=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
      );
    });
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      resolve({ socket, head: buf.slice(0, end) });
    };
    socket.on('data', onData);
    socket.on('error', reject);
  });
}

function readExactly(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
  });
}

describe('websocket upgrades through the router', () => {
  let up: Upstream;
  let fx: NginxFixture;
  let upgradeUrl = '';
  let upgradeHeaders: Record<string, unknown> = {};

  beforeAll(async () => {
    up = await startUpstream('ws');
    // A tiny websocket-style echo: completes the handshake, then echoes raw bytes back.
    up.server.on('upgrade', (req, socket) => {
      upgradeUrl = req.url ?? '';
      upgradeHeaders = req.headers;
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept(String(req.headers['sec-websocket-key']))}\r\n\r\n`,
      );
      socket.pipe(socket);
    });
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { ws: { upstreams: [up.target] } }, git: null });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('completes the handshake and carries bytes both ways', async () => {
    const key = crypto.randomBytes(16).toString('base64');
    const { socket, head } = await openTunnel(fx.router.port, 'ws.localhost', key);
    try {
      expect(head).toMatch(/^HTTP\/1\.1 101 /);
      expect(head).toContain(`Sec-WebSocket-Accept: ${accept(key)}`);
      expect(upgradeUrl).toBe('/chat?room=1');
      expect(upgradeHeaders).toMatchObject({ upgrade: 'websocket', 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http' });
      const payload = crypto.randomBytes(256 * 1024);
      const echoed = readExactly(socket, payload.length);
      socket.write(payload);
      expect((await echoed).equals(payload)).toBe(true);
    } finally {
      socket.destroy();
    }
  });

  it('answers an upgrade for an unknown app with 404 app not found', async () => {
    const reply = await rawExchange(
      fx.router.port,
      'GET / HTTP/1.1\r\nHost: nope.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a\r\n\r\n',
    );
    expect(reply).toMatch(/^HTTP\/1\.1 404 /);
    expect(reply).toContain('app not found');
  });

  it('relays an upstream that declines the upgrade, then closes', async () => {
    const plain = await startUpstream('plain');
    try {
      await fx.write({ version: 1, domain: 'localhost', apps: { ws: { upstreams: [up.target] }, plain: { upstreams: [plain.target] } }, git: null });
      let reply = '';
      for (let i = 0; i < 100 && !reply.includes('"plain"'); i++) {
        reply = await rawExchange(
          fx.router.port,
          'GET /x HTTP/1.1\r\nHost: plain.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a\r\n\r\n',
        );
        if (!reply.includes('"plain"')) await new Promise((r) => setTimeout(r, 50));
      }
      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(reply).toMatch(/Connection: close/i);
      expect(reply).toContain('"name":"plain"');
    } finally {
      await plain.close();
    }
  });
});
