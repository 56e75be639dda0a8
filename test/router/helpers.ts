import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../core/log.js';
import { superviseNginx, type NginxRouter } from '../../router/nginx-process.js';
import { writeRouteTable, type RouteTable } from '../../router/table.js';

export interface Upstream {
  name: string;
  port: number;
  target: string;
  /** Requests that reached this upstream. */
  hits: http.IncomingMessage[];
  /** TCP connections this upstream accepted. */
  connections: number;
  server: http.Server;
  close(): Promise<void>;
}

/** A real upstream on 127.0.0.1:0 that answers JSON describing what it received. */
export async function startUpstream(name: string, handler?: http.RequestListener): Promise<Upstream> {
  const hits: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req);
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, url: req.url, headers: req.headers }));
    });
  });
  const up: Upstream = {
    name,
    port: 0,
    target: '',
    hits,
    connections: 0,
    server,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  server.on('connection', () => up.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as AddressInfo).port;
  up.target = `127.0.0.1:${up.port}`;
  return up;
}

/** A loopback port with nothing listening on it (connecting is refused). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface LogCapture {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
}

export function captureLogs(level = 'debug'): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

/** A loopback port free right now (nginx cannot listen on port 0 and report it back). */
export async function freePort(): Promise<number> {
  return closedPort();
}

export interface NginxFixtureOptions {
  port?: number;
  /** port 0: a free one is picked. */
  https?: { port: number; cert: string; key: string };
  /** Slow-client bounds (nginx counts whole seconds). */
  timeouts?: { headersMs?: number; bodyMs?: number; keepAliveMs?: number };
  pollMs?: number;
  /** How long close() lets connections finish before it ends them. */
  closeGraceMs?: number;
  maxPushBytes?: number;
  gitOverPlainHttp?: boolean;
  /** The auth server's socket, for private apps. */
  auth?: string;
  /** Log rotation bounds (README "Routing"). */
  logs?: { maxBytes: number; checkMs: number };
}

export interface NginxFixture {
  dir: string;
  routesFile: string;
  /** nginx's prefix: logs/access.log and logs/error.log live under it. */
  prefix: string;
  router: { port: number; httpsPort?: number };
  nginx: NginxRouter;
  logs: LogCapture;
  write(t: RouteTable): Promise<void>;
  close(): Promise<void>;
}

/**
 * A private nginx on loopback ports, driven by a route table file like the platform's: the same
 * renderer and supervisor, its own prefix in a temp directory.
 */
export async function startNginxFixture(
  table: RouteTable | null,
  extra: NginxFixtureOptions = {},
): Promise<NginxFixture> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-nginx-'));
  const routesFile = path.join(dir, 'routes.json');
  const prefix = path.join(dir, 'router');
  if (table) await writeRouteTable(routesFile, table);
  const logs = captureLogs();
  const port = extra.port || (await freePort());
  const https = extra.https ? { ...extra.https, port: extra.https.port || (await freePort()) } : null;
  const t = extra.timeouts ?? {};
  const nginx = await superviseNginx({
    nginx: 'nginx',
    logger: logs.logger,
    routesFile,
    domain: 'localhost',
    coalesceMs: 50,
    checkMs: 200,
    pollMs: extra.pollMs ?? 200,
    ...(extra.logs ? { logMaxBytes: extra.logs.maxBytes, logCheckMs: extra.logs.checkMs } : {}),
    settings: {
      prefix,
      listen: '127.0.0.1',
      httpPort: port,
      https,
      maxPushBytes: extra.maxPushBytes ?? 1024 * 1024 * 1024,
      workerProcesses: 1,
      ...(extra.gitOverPlainHttp ? { gitOverPlainHttp: true } : {}),
      ...(extra.auth ? { auth: extra.auth } : {}),
      ...(t.headersMs === undefined ? {} : { clientHeaderTimeoutMs: t.headersMs }),
      ...(t.bodyMs === undefined ? {} : { clientBodyTimeoutMs: t.bodyMs }),
      ...(t.keepAliveMs === undefined ? {} : { keepaliveTimeoutMs: t.keepAliveMs }),
      ...(process.getuid?.() === 0 ? { user: 'root' } : {}),
    },
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await nginx.stop({ graceMs: extra.closeGraceMs ?? 2000 });
    await fs.rm(dir, { recursive: true, force: true });
  };
  return {
    dir,
    routesFile,
    prefix,
    nginx,
    logs,
    router: { port, ...(https ? { httpsPort: https.port } : {}) },
    write: async (next) => {
      await writeRouteTable(routesFile, next);
      await nginx.settled();
    },
    close,
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with an explicit Host (fetch cannot set it). */
export function request(
  port: number,
  opts: { host?: string; path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent | false } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        agent: opts.agent ?? false,
        headers: { ...(opts.host === undefined ? {} : { host: opts.host }), ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes raw bytes to a port and returns everything it answers until it closes (or 3 s pass). */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return;
      reject(err);
    });
  });
}

export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
