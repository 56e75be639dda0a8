import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, startNginxFixture, type Reply, type NginxFixture } from './helpers.js';

const MB = 1024 * 1024;

describe('git over HTTP to a unix-socket upstream', () => {
  let dir: string;
  let git: http.Server;
  let fx: NginxFixture;
  let received = 0;
  let firstChunkAt = 0;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-git-'));
    const socketPath = path.join(dir, 'git.sock');
    // Stands in for the daemon's smart-HTTP endpoint: answers as soon as the body starts and
    // echoes it back, the way receive-pack streams its report while reading the pack.
    git = http.createServer((req, res) => {
      received = 0;
      res.writeHead(200, { 'content-type': 'application/x-git-receive-pack-result', 'x-url': req.url ?? '' });
      req.on('data', (c: Buffer) => {
        if (received === 0) firstChunkAt = Date.now();
        received += c.length;
      });
      req.pipe(res);
    });
    await new Promise<void>((resolve) => git.listen(socketPath, resolve));
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: {}, git: `unix:${socketPath}` });
  });

  afterAll(async () => {
    await fx.close();
    await new Promise<void>((resolve) => git.close(() => resolve()));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('streams a 20 MB push both ways without buffering it', async () => {
    const chunk = crypto.randomBytes(MB);
    const total = 20;
    const sent = crypto.createHash('sha256');
    const back = crypto.createHash('sha256');
    let backBytes = 0;

    const result = await new Promise<{ status: number; url: string; responseBeforeBodyEnd: boolean }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: fx.router.port,
        method: 'POST',
        path: '/_git/app.git/git-receive-pack',
        agent: false,
        headers: { host: 'localhost', 'content-type': 'application/x-git-receive-pack-request', 'transfer-encoding': 'chunked' },
      });
      req.on('error', reject);
      const stuck = setTimeout(() => reject(new Error('no response while the body was held back: the router buffers')), 10_000);
      let written = 0;
      let bodyEnded = false;
      const writeMore = (): void => {
        while (written < total) {
          sent.update(chunk);
          written++;
          if (written === total) {
            bodyEnded = true;
            req.end(chunk);
            return;
          }
          if (!req.write(chunk)) {
            req.once('drain', writeMore);
            return;
          }
        }
      };
      // Send 1 MB, then hold the rest back until the response has started: a router that
      // buffered the request body would never let the response through, and this would hang.
      sent.update(chunk);
      written = 1;
      req.write(chunk);
      req.on('response', (res) => {
        clearTimeout(stuck);
        const responseBeforeBodyEnd = !bodyEnded;
        res.on('data', (c: Buffer) => {
          back.update(c);
          backBytes += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, url: String(res.headers['x-url']), responseBeforeBodyEnd }));
        res.on('error', reject);
        writeMore();
      });
    });

    expect(result.status).toBe(200);
    expect(result.url).toBe('/_git/app.git/git-receive-pack');
    expect(result.responseBeforeBodyEnd).toBe(true);
    expect(firstChunkAt).toBeGreaterThan(0);
    expect(received).toBe(total * MB);
    expect(backBytes).toBe(total * MB);
    expect(back.digest('hex')).toBe(sent.digest('hex'));
  });
});

describe('git over HTTP while the daemon is down', () => {
  let dir: string;
  const infoRefs = { host: 'localhost', path: '/_git/app.git/info/refs?service=git-upload-pack' };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-git-down-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** The replies of a router whose route table names `git` as the daemon's endpoint. */
  const repliesWith = async (git: string | null): Promise<Reply[]> => {
    const fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: {}, git });
    try {
      return [
        await request(fx.router.port, infoRefs),
        // A push body is refused the same way, before any of it is forwarded.
        await request(fx.router.port, { ...infoRefs, method: 'POST', path: '/_git/app.git/git-receive-pack', body: Buffer.alloc(64 * 1024) }),
      ];
    } finally {
      await fx.close();
    }
  };
  const expectDaemonDown = (replies: Reply[]): void => {
    for (const reply of replies) {
      expect(reply.status).toBe(503);
      expect(reply.headers['retry-after']).toBe('10');
      expect(reply.body).toBe('git over HTTP is not available: the platform daemon is not running; start it with `slipway server`\n');
    }
  };

  // A daemon that crashed (or was killed) never cleared its route: the table still names its socket.
  it('answers 503 with Retry-After when the socket in the route table is gone', async () => {
    expectDaemonDown(await repliesWith(`unix:${path.join(dir, 'git-http.sock')}`));
  });

  it('answers 503 when a stale socket file is left but nothing listens on it', async () => {
    const stale = path.join(dir, 'stale.sock');
    await fs.writeFile(stale, '');
    expectDaemonDown(await repliesWith(`unix:${stale}`));
  });

  it('answers the same 503 when the daemon cleared its route on a clean stop', async () => {
    expectDaemonDown(await repliesWith(null));
  });
});
