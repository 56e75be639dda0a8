import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

const run = promisify(execFile);
/** A small header bound so the slow-client checks run in seconds. */
const HEADERS_MS = 2000;
const SLACK = 1500;

describe('HTTPS listener', () => {
  let dir: string;
  let cert: Buffer;
  let up: Upstream;
  let fx: NginxFixture;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-tls-'));
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=app.localhost',
      '-addext', 'subjectAltName=DNS:app.localhost', '-keyout', keyFile, '-out', certFile,
    ]);
    cert = await fs.readFile(certFile);
    up = await startUpstream('app');
    fx = await startNginxFixture(
      { version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null },
      { https: { port: 0, cert: certFile, key: keyFile }, timeouts: { headersMs: HEADERS_MS } },
    );
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves apps over TLS and tells them the request was https', async () => {
    const port = fx.router.httpsPort!;
    expect(port).toBeGreaterThan(0);
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path: '/x', servername: 'app.localhost', headers: { host: 'app.localhost' }, ca: cert, agent: false },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const seen = JSON.parse(body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe('/x');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-port']).toBe(String(port));
  });

  it('closes a TCP connection that never starts the TLS handshake within the header bound', async () => {
    const started = Date.now();
    await rawExchange(fx.router.httpsPort!, '', 10_000);
    expect(Date.now() - started).toBeLessThan(HEADERS_MS + SLACK);
  }, 15_000);

  it('closes a TLS connection that never sends its request at the header bound, app untouched', async () => {
    const hits = up.hits.length;
    const started = Date.now();
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: fx.router.httpsPort!, servername: 'app.localhost', ca: cert });
      let text = '';
      const timer = setTimeout(() => socket.destroy(), 10_000);
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(text);
      });
      socket.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    });
    expect(Date.now() - started).toBeLessThan(HEADERS_MS + SLACK);
    // nginx closes without answering a client this slow (it logs the 408 it does not send).
    expect(reply).toBe('');
    expect(up.hits).toHaveLength(hits);
  }, 15_000);
});
