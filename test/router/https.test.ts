import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouterFixture, startUpstream, type RouterFixture, type Upstream } from './helpers.js';

const run = promisify(execFile);

describe('HTTPS listener', () => {
  let dir: string;
  let cert: Buffer;
  let up: Upstream;
  let fx: RouterFixture;

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
    fx = await startRouterFixture(
      { version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null },
      { https: { port: 0, cert: certFile, key: keyFile } },
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
});
