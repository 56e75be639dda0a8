import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { hasBody, requestProblem } from './headers.js';
import { createUpstreamAgent, proxyRequest, proxyUpgrade, rawText, sendRawText, sendText, type Answer, type ProxyContext } from './proxy.js';
import { createBodyWatch, DEFAULT_CLIENT_TIMEOUTS, serverTimeoutOptions, type ClientTimeouts } from './slow-clients.js';
import { watchRouteTable, type RouteTableSource } from './source.js';
import { resolveRoute, type Route } from './table.js';
import { rotate } from './upstream.js';

export interface RouterOptions {
  routesFile: string;
  listen: string;
  port: number;
  logger: Logger;
  /** cert and key are file paths. */
  https?: { port: number; cert: string; key: string };
  /** How long close() lets in-flight requests and websockets finish; default 10 s. */
  closeGraceMs?: number;
  /** Route table poll interval (the fs.watch fallback); default 1 s. */
  pollMs?: number;
  /** Slow-client bounds; the defaults (DEFAULT_CLIENT_TIMEOUTS) are meant for production. */
  timeouts?: Partial<ClientTimeouts>;
}

export interface RunningRouter {
  port: number;
  httpsPort?: number;
  close(): Promise<void>;
}

/** Only app names reach response bodies: the rest of a request line is the client's to make up. */
const named = (app: string | null): string => (app !== null && /^[a-z][a-z0-9-]{0,29}$/.test(app) ? `: ${app}` : '');

/**
 * What to do with one request: answer it here, or which targets to try in which order (and what
 * to answer when none of them accepts the connection, instead of a 502).
 */
type Decision = Answer | { targets: string[]; label: string; unreachable?: Answer };

/** docs/http.md: git over HTTP answers 503 while the daemon is stopped, whether it cleared its route or crashed. */
const DAEMON_DOWN: Answer = {
  status: 503,
  body: 'git over HTTP is not available: the platform daemon is not running; start it with `slipway server`\n',
  headers: { 'retry-after': '10' },
};

function decide(route: Route, git: string | null, turn: () => number): Decision {
  switch (route.kind) {
    case 'unknown':
      return { status: 404, body: `app not found${named(route.app)}\n` };
    case 'git':
      return git === null ? DAEMON_DOWN : { targets: [git], label: '_git', unreachable: DAEMON_DOWN };
    case 'app':
      return route.upstreams.length === 0
        ? { status: 503, body: `app ${route.app} has no running web process: deploy it or run ps:start/ps:scale\n` }
        : { targets: rotate(route.upstreams, turn()), label: route.app };
  }
}

/**
 * The router process: reads the route table the daemon writes and proxies to app containers and
 * the daemon's git endpoint. It depends on nothing but that file, so apps stay reachable while
 * the daemon restarts.
 */
export async function startRouter(o: RouterOptions): Promise<RunningRouter> {
  const log = o.logger;
  const tls = o.https
    ? await Promise.all([fs.readFile(o.https.cert), fs.readFile(o.https.key)]).catch((err: unknown) => {
        throw new SlipwayError('E_CONFIG', `cannot read TLS certificate or key: ${(err as Error).message}`, { cause: err });
      })
    : null;
  const source: RouteTableSource = await watchRouteTable(o.routesFile, {
    logger: log,
    ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs }),
  });
  const timeouts: ClientTimeouts = { ...DEFAULT_CLIENT_TIMEOUTS, ...o.timeouts };
  const agent = createUpstreamAgent();
  const tunnels = new Set<Duplex>();
  const turns = new Map<string, number>();
  const turn = (app: string) => (): number => {
    const n = turns.get(app) ?? 0;
    turns.set(app, (n + 1) % 1_000_000_000);
    return n;
  };

  const bodies = createBodyWatch(timeouts, (req, res) => {
    log.warn({ method: req.method, url: req.url, host: req.headers.host, client: req.socket.remoteAddress }, 'request body too slow; connection closed');
    // The 408 only if no answer has begun, then close at once: the rest of the body never comes.
    if (!res.headersSent && req.socket.writable) {
      req.socket.write(rawText(408, `request body too slow: send at least ${timeouts.bodyMinBytesPerSecond} bytes/s, or retry on a faster link\n`));
    }
    req.socket.destroy();
  });

  const decideFor = (req: http.IncomingMessage): Decision => {
    const problem = requestProblem(req.rawHeaders, req.url);
    if (problem) return { status: 400, body: `bad request: ${problem}\n` };
    const table = source.current();
    const route = resolveRoute(table, req.headers.host, req.url!);
    return decide(route, table.git, turn(route.kind === 'app' ? route.app : ''));
  };

  const serve = (proto: 'http' | 'https') => {
    const ctx: ProxyContext = { agent, logger: log, proto, tunnels };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const d = decideFor(req);
      log.debug({ method: req.method, url: req.url, host: req.headers.host }, 'request');
      if (hasBody(req.headers)) bodies.watch(req, res);
      if ('status' in d) {
        if (d.status === 400) res.setHeader('connection', 'close');
        sendText(res, d);
      } else proxyRequest(ctx, req, res, d.targets, d.label, d.unreachable);
    };
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      const d = decideFor(req);
      if ('status' in d) sendRawText(socket, d.status, d.body);
      else proxyUpgrade(ctx, req, socket, head, d.targets, d.label);
    };
    // Strict parsing stays on explicitly, whatever NODE_OPTIONS says.
    const options: http.ServerOptions = { insecureHTTPParser: false, ...serverTimeoutOptions(timeouts) };
    const server = tls
      ? https.createServer({ ...options, cert: tls[0], key: tls[1] }, onRequest)
      : http.createServer(options, onRequest);
    server.on('upgrade', onUpgrade);
    return server;
  };

  const listen = (server: http.Server, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, o.listen, () => {
        server.off('error', reject);
        server.on('error', (err) => log.error({ err: err.message }, 'router server error'));
        resolve((server.address() as AddressInfo).port);
      });
    });

  const servers: http.Server[] = [];
  try {
    const plain = serve('http');
    servers.push(plain);
    const port = await listen(plain, o.port);
    let httpsPort: number | undefined;
    if (o.https) {
      const secure = serve('https');
      servers.push(secure);
      httpsPort = await listen(secure, o.https.port);
    }
    log.info({ listen: o.listen, port, httpsPort, routes: o.routesFile }, 'router listening');

    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        source.close();
        bodies.stop();
        const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        for (const s of servers) s.closeIdleConnections();
        const grace = new Promise<void>((resolve) => setTimeout(resolve, o.closeGraceMs ?? 10_000).unref());
        const drained = Promise.all(closed).then(() => undefined);
        await Promise.race([drained, grace]);
        for (const s of servers) s.closeAllConnections();
        for (const t of tunnels) t.destroy();
        await drained;
        agent.destroy();
      })();
      return closing;
    };
    return httpsPort === undefined ? { port, close } : { port, httpsPort, close };
  } catch (err) {
    source.close();
    bodies.stop();
    agent.destroy();
    for (const s of servers) s.close();
    throw new SlipwayError('E_CONFIG', `router cannot listen on ${o.listen}: ${(err as Error).message}`, { cause: err });
  }
}
