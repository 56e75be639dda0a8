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
  /** What the stand-in daemon saw of the last push. */
  const seen = { received: 0, sha: '', answerEndedAt: 0 };

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-git-'));
    const socketPath = path.join(dir, 'git.sock');
    // Stands in for the daemon's smart-HTTP endpoint the way receive-pack behaves: it reads the
    // whole pack, then reports (deploy output) line by line over a while.
    git = http.createServer((req, res) => {
      const hash = crypto.createHash('sha256');
      seen.received = 0;
      req.on('data', (c: Buffer) => {
        seen.received += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        seen.sha = hash.digest('hex');
        res.writeHead(200, { 'content-type': 'application/x-git-receive-pack-result', 'x-url': req.url ?? '' });
        let line = 0;
        const report = (): void => {
          if (line === 5) {
            seen.answerEndedAt = Date.now();
            res.end(`${seen.received} ${seen.sha}\n`);
            return;
          }
          res.write(`-----> step ${line++}\n`);
          setTimeout(report, 200);
        };
        report();
      });
    });
    await new Promise<void>((resolve) => git.listen(socketPath, resolve));
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: {}, git: `unix:${socketPath}` });
  });

  afterAll(async () => {
    await fx.close();
    await new Promise<void>((resolve) => git.close(() => resolve()));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('streams a 20 MB push to the daemon as it arrives and its report back as it is written', async () => {
    const chunk = crypto.randomBytes(MB);
    const total = 20;
    const sent = crypto.createHash('sha256');

    const result = await new Promise<{ status: number; url: string; body: string; firstByteAt: number }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: fx.router.port,
        method: 'POST',
        path: '/_git/app.git/git-receive-pack',
        agent: false,
        headers: { host: 'localhost', 'content-type': 'application/x-git-receive-pack-request', 'transfer-encoding': 'chunked' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let body = '';
        let firstByteAt = 0;
        res.on('data', (c: Buffer) => {
          firstByteAt ||= Date.now();
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, url: String(res.headers['x-url']), body, firstByteAt }));
        res.on('error', reject);
      });
      // 1 MB, then the rest only once the daemon has bytes: a router that held the push back
      // until it had all of it (on disk, as nginx does for apps) would never let this go on.
      sent.update(chunk);
      req.write(chunk);
      const deadline = Date.now() + 10_000;
      const waitForDaemon = (): void => {
        if (seen.received > 0) return void writeRest(1);
        if (Date.now() > deadline) return void reject(new Error('the daemon saw nothing of the push before it ended: the router buffers it'));
        setTimeout(waitForDaemon, 20);
      };
      const writeRest = (written: number): void => {
        for (let n = written; n < total; n++) {
          sent.update(chunk);
          if (n === total - 1) return void req.end(chunk);
          if (!req.write(chunk)) return void req.once('drain', () => writeRest(n + 1));
        }
      };
      waitForDaemon();
    });

    expect(result.status).toBe(200);
    expect(result.url).toBe('/_git/app.git/git-receive-pack');
    expect(seen.received).toBe(total * MB);
    expect(result.body).toBe(`${[0, 1, 2, 3, 4].map((n) => `-----> step ${n}\n`).join('')}${total * MB} ${sent.digest('hex')}\n`);
    // The first report line reached the client ~1 s before the daemon finished writing.
    expect(result.firstByteAt).toBeLessThan(seen.answerEndedAt);
  }, 60_000);
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
