import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningNginxPid, stopNginx, superviseNginx } from '../../router/nginx-process.js';
import type { RouteTable } from '../../router/table.js';
import { captureLogs, eventually, rawExchange, request, sleep, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

const run = promisify(execFile);
const table = (apps: RouteTable['apps'], git: string | null = null): RouteTable => ({ version: 1, domain: 'localhost', apps, git });
/** The master's worker processes right now. */
const workerPids = (master: number): number[] =>
  readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
/** A second supervisor on the fixture's prefix, as a restarted daemon starts one. */
const adopt = (fx: NginxFixture, logger: ReturnType<typeof captureLogs>['logger'], https: { port: number; cert: string; key: string } | null = null) =>
  superviseNginx({
    nginx: 'nginx',
    logger,
    routesFile: fx.routesFile,
    domain: 'localhost',
    settings: { prefix: fx.prefix, listen: '127.0.0.1', httpPort: fx.router.port, https, maxPushBytes: 1024 * 1024, workerProcesses: 1, ...(process.getuid?.() === 0 ? { user: 'root' } : {}) },
  });
/** Adopts the fixture's nginx once, then lets go: the master's pid and what the adoption logged. */
const adoptOnce = async (fx: NginxFixture, https: { port: number; cert: string; key: string } | null = null): Promise<{ pid: number | null; said: string[] }> => {
  const logs = captureLogs();
  const again = await adopt(fx, logs.logger, https);
  again.detach();
  return { pid: again.pid(), said: logs.lines.map((l) => String(l.msg)).filter((m) => m.startsWith('router (nginx) already running')) };
};
const nameOf = async (port: number, host: string): Promise<string> => {
  const r = await request(port, { host });
  return r.status === 200 ? (JSON.parse(r.body).name as string) : String(r.status);
};

describe('the router on nginx: TLS, redirect, HTTP/2, websockets over TLS', () => {
  let dir: string;
  let ca: Buffer;
  let up: Upstream;
  let fx: NginxFixture;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-nginx-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=app.localhost', '-addext', 'subjectAltName=DNS:app.localhost', '-keyout', key, '-out', cert]);
    ca = await fs.readFile(cert);
    up = await startUpstream('app');
    up.server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    fx = await startNginxFixture(table({ app: { upstreams: [up.target] } }), { https: { port: 0, cert, key } });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('answers plain HTTP with a 308 to the same host, path and query on HTTPS, never reaching the app', async () => {
    const hits = up.hits.length;
    const r = await request(fx.router.port, { host: `app.localhost:${fx.router.port}`, path: '/a/b?c=1&d=2', method: 'POST', body: 'x' });
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe(`https://app.localhost:${fx.router.httpsPort}/a/b?c=1&d=2`);
    expect(up.hits.length).toBe(hits);
  });

  it('serves over TLS 1.2+ only, and tells the app the request was https', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: fx.router.httpsPort, path: '/x', servername: 'app.localhost', headers: { host: 'app.localhost' }, ca, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    const seen = JSON.parse(body) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-port']).toBe(String(fx.router.httpsPort));
    const old = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: fx.router.httpsPort!, servername: 'app.localhost', ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
      s.on('secureConnect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? 'error'));
    });
    expect(old).not.toBe('connected');
  });

  it('speaks HTTP/2 on TLS', async () => {
    const session = http2.connect(`https://127.0.0.1:${fx.router.httpsPort}`, { ca, servername: 'app.localhost' });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/h2', ':authority': 'app.localhost' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ name: 'app', url: '/h2' });
    } finally {
      session.close();
    }
  });

  it('passes websockets through over TLS', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: fx.router.httpsPort!, servername: 'app.localhost', ca, ALPNProtocols: ['http/1.1'] });
    try {
      let got = Buffer.alloc(0);
      socket.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
      socket.write('GET /ws HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      await eventually(async () => got.toString('latin1'), (t) => t.includes('\r\n\r\n'));
      expect(got.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
      got = Buffer.alloc(0);
      const payload = crypto.randomBytes(64 * 1024);
      socket.write(payload);
      await eventually(async () => got.length, (n) => n >= payload.length);
      expect(got.equals(payload)).toBe(true);
    } finally {
      socket.destroy();
    }
  });
});

describe('the router on nginx: reloads and supervision', () => {
  let one: Upstream;
  let two: Upstream;

  beforeAll(async () => {
    one = await startUpstream('one');
    two = await startUpstream('two');
  });
  afterAll(async () => {
    await Promise.all([one.close(), two.close()]);
  });

  it('never loads a config nginx refuses: the old one keeps serving and the error is logged', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      const conf = await fs.readFile(path.join(fx.prefix, 'nginx.conf'), 'utf8');
      // A valid route table nginx cannot load: the upstream's host name does not resolve.
      await fx.write(table({ web: { upstreams: [two.target] }, bad: { upstreams: ['no-such-host.invalid:80'] } }));
      const errors = fx.logs.lines.filter((l) => l.msg === 'router config not applied; the previous one keeps serving');
      expect(errors).toHaveLength(1);
      expect(String(errors[0]!.err)).toMatch(/^nginx refused the new router config, the old one keeps serving: .*no-such-host\.invalid/);
      expect(await fs.readFile(path.join(fx.prefix, 'nginx.conf'), 'utf8')).toBe(conf);
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('one');
      expect((await fs.readdir(fx.prefix)).filter((n) => n.endsWith('.next'))).toEqual([]);
      // The next good table goes live as usual.
      await fx.write(table({ web: { upstreams: [two.target] } }));
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('two');
    } finally {
      await fx.close();
    }
  });

  it('coalesces a burst of route changes into one reload', async () => {
    const fx = await startNginxFixture(table({}), { pollMs: 5000 });
    try {
      const before = fx.logs.lines.filter((l) => l.msg === 'router config reloaded').length;
      for (let i = 0; i < 10; i++) await fs.writeFile(fx.routesFile, JSON.stringify(table({ [`a${i}`]: { upstreams: [one.target] } })));
      await sleep(400);
      await fx.nginx.settled();
      const reloads = fx.logs.lines.filter((l) => l.msg === 'router config reloaded').length - before;
      expect(reloads).toBeGreaterThanOrEqual(1);
      expect(reloads).toBeLessThanOrEqual(2);
      expect(await nameOf(fx.router.port, 'a9.localhost')).toBe('one');
    } finally {
      await fx.close();
    }
  });

  it('starts nginx again after kill -9 of its master, and apps answer again', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      const pid = fx.nginx.pid()!;
      process.kill(pid, 'SIGKILL');
      const next = await eventually(async () => fx.nginx.pid(), (p) => p !== null && p !== pid, 10_000);
      expect(next).not.toBe(pid);
      expect(await eventually(() => nameOf(fx.router.port, 'web.localhost').catch(() => 'down'), (n) => n === 'one', 10_000)).toBe('one');
      // Logged once the start returned, which may be just after the new master answers.
      expect(await eventually(async () => fx.logs.lines.some((l) => l.msg === 'router (nginx) restarted'), (seen) => seen, 5000)).toBe(true);
    } finally {
      await fx.close();
    }
  }, 20_000);

  it('leaves nginx stopped after router:stop, although the supervisor still runs', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      expect(await stopNginx(fx.prefix, { graceMs: 2000, stayStopped: true })).toBe(true);
      await sleep(800); // several supervisor checks (every 200 ms here)
      expect(fx.nginx.pid()).toBeNull();
      await expect(request(fx.router.port, { host: 'web.localhost' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await fx.close();
    }
  });

  it('leaves nginx serving when the supervisor goes away (daemon restart), and the next one adopts it without a reload', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      const pid = fx.nginx.pid()!;
      fx.nginx.detach();
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('one');
      // A reload would replace the workers (and close every idle keep-alive client connection).
      const workersBefore = workerPids(pid);
      expect(workersBefore.length).toBeGreaterThan(0);
      const logs = captureLogs();
      const again = await adopt(fx, logs.logger);
      try {
        expect(again.pid()).toBe(pid);
        expect(runningNginxPid(fx.prefix)).toBe(pid);
        expect(logs.lines.some((l) => l.msg === 'router (nginx) already running with this config; adopted without a reload')).toBe(true);
        expect(workerPids(pid)).toEqual(workersBefore);
        await fx.write(table({ web: { upstreams: [two.target] } }));
        await again.settled();
        expect(await nameOf(fx.router.port, 'web.localhost')).toBe('two');
      } finally {
        again.detach();
      }
    } finally {
      await fx.close();
    }
  });

  it('reloads an adopted nginx whose config changed while no supervisor ran', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      const pid = fx.nginx.pid()!;
      fx.nginx.detach();
      await fx.write(table({ web: { upstreams: [two.target] } }));
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('one');
      expect(await adoptOnce(fx)).toEqual({ pid, said: ['router (nginx) already running; adopted'] });
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('two');
    } finally {
      await fx.close();
    }
  });

  it('reloads an adopted nginx whose TLS certificate was renewed on disk, and not otherwise', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-nginx-renew-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const newCert = async (): Promise<void> => {
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=app.localhost', '-keyout', `${key}.new`, '-out', `${cert}.new`]);
      await fs.rename(`${key}.new`, key);
      await fs.rename(`${cert}.new`, cert);
    };
    await newCert();
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }), { https: { port: 0, cert, key } });
    const tlsSettings = { port: fx.router.httpsPort!, cert, key };
    const adoptedBy = async (): Promise<string[]> => (await adoptOnce(fx, tlsSettings)).said;
    try {
      fx.nginx.detach();
      expect(await adoptedBy()).toEqual(['router (nginx) already running with this config; adopted without a reload']);
      await newCert();
      expect(await adoptedBy()).toEqual(['router (nginx) already running; adopted']);
      expect(await adoptedBy()).toEqual(['router (nginx) already running with this config; adopted without a reload']);
    } finally {
      await fx.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('serves a table handed over directly before the file records it (the daemon path)', async () => {
    const fx = await startNginxFixture(table({ web: { upstreams: [one.target] } }));
    try {
      await fx.nginx.serve(table({ web: { upstreams: [two.target] } }));
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('two');
      // A late event for an older file must not roll it back.
      await fs.writeFile(fx.routesFile, JSON.stringify(table({ web: { upstreams: [one.target] } })));
      await sleep(500);
      await fx.nginx.settled();
      expect(await nameOf(fx.router.port, 'web.localhost')).toBe('two');
    } finally {
      await fx.close();
    }
  });
});

describe('the router on nginx: headers, limits and the access log', () => {
  let up: Upstream;
  let fx: NginxFixture;

  beforeAll(async () => {
    up = await startUpstream('app');
    fx = await startNginxFixture(table({ app: { upstreams: [up.target] } }));
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('clears identity headers from clients, keeps a sane X-Request-Id and makes one otherwise', async () => {
    const r = await request(fx.router.port, { host: 'app.localhost', headers: { 'x-slipway-user': 'admin', 'x-slipway-groups': 'admins', 'x-request-id': 'abc-123' } });
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    expect(seen['x-slipway-user']).toBeUndefined();
    expect(seen['x-slipway-groups']).toBeUndefined();
    expect(seen['x-request-id']).toBe('abc-123');
    const junk = JSON.parse((await request(fx.router.port, { host: 'app.localhost', headers: { 'x-request-id': 'a b"c' } })).body).headers as Record<string, string>;
    expect(junk['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
  });

  it('hides its version', async () => {
    const r = await request(fx.router.port, { host: 'nope.localhost' });
    expect(r.headers.server).toBe('nginx');
  });

  it('writes one JSON access log line per request with app, status, bytes, upstream time and request id', async () => {
    await request(fx.router.port, { host: 'app.localhost', headers: { 'x-request-id': 'log-me-1' } });
    const file = path.join(fx.prefix, 'logs', 'access.log');
    const line = await eventually(
      async () => (await fs.readFile(file, 'utf8')).split('\n').find((l) => l.includes('log-me-1')),
      (l) => l !== undefined,
    );
    expect(JSON.parse(line!)).toMatchObject({ app: 'app', status: 200, request_id: 'log-me-1', host: 'app.localhost' });
    expect(JSON.parse(line!).bytes).toBeGreaterThan(0);
    expect(JSON.parse(line!).upstream_time).toMatch(/^[0-9.]+$/);
  });

  it('refuses an absolute-form request target with 400, upstream untouched', async () => {
    const hits = up.hits.length;
    const reply = await rawExchange(fx.router.port, 'GET http://app.localhost/ HTTP/1.1\r\nHost: app.localhost\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(up.hits.length).toBe(hits);
  });

  it('limits git pushes to maxPushBytes with 413', async () => {
    const sock = path.join(fx.dir, 'git.sock');
    const gitFx = await startNginxFixture(table({}, `unix:${sock}`), { maxPushBytes: 1024 });
    try {
      const r = await request(gitFx.router.port, { path: '/_git/app.git/git-receive-pack', method: 'POST', body: Buffer.alloc(4096) });
      expect(r.status).toBe(413);
    } finally {
      await gitFx.close();
    }
  });
});
