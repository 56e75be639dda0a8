import http from 'node:http';
import type { Duplex } from 'node:stream';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { clientResponseHeaders, hasBody, upstreamRequestHeaders, type ClientInfo } from './headers.js';
import { isConnectFailure, isStaleSocketFailure, parseUpstream } from './upstream.js';

export interface ProxyContext {
  /** Keep-alive pool towards upstreams; its idle timeout must be shorter than theirs. */
  agent: http.Agent;
  logger: Logger;
  proto: 'http' | 'https';
  /** Upgraded (websocket) connections, so close() can end them. */
  tunnels: Set<Duplex>;
}

/**
 * The upstream pool. Node servers close idle keep-alive sockets after 5 s; dropping ours after
 * 4 s means we never write a request onto a socket the upstream is closing, which would
 * otherwise surface as a steady trickle of 502s.
 */
export function createUpstreamAgent(idleMs = 4000): http.Agent {
  return new http.Agent({ keepAlive: true, timeout: idleMs, maxFreeSockets: 256, scheduling: 'lifo' });
}

function clientInfo(ctx: ProxyContext, req: http.IncomingMessage): ClientInfo {
  return { remoteAddress: req.socket.remoteAddress, proto: ctx.proto, port: req.socket.localPort };
}

/** A short plain-text answer the router gives itself, rather than an upstream's. */
export interface Answer {
  status: number;
  body: string;
  headers?: http.OutgoingHttpHeaders;
}

export function sendText(res: http.ServerResponse, { status, body, headers }: Answer): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The bytes of a plain-text answer that closes the connection, for writing onto a bare socket. */
export function rawText(status: number, body: string): string {
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/** An HTTP response written straight onto a socket that asked for an upgrade. */
export function sendRawText(socket: Duplex, status: number, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(rawText(status, body));
}


/** The request to one upstream: same method, path and (filtered) headers, strict parsing. */
function upstreamRequest(target: string, req: http.IncomingMessage, headers: http.OutgoingHttpHeaders, agent: http.Agent | false): http.ClientRequest {
  return http.request({
    ...parseUpstream(target),
    agent,
    method: req.method,
    path: req.url,
    headers,
    setHost: false,
    insecureHTTPParser: false,
  });
}

/**
 * Forwards one request, streaming both bodies. Targets are tried in order: a target that refuses
 * the connection passes the request to the next one, which is safe because the request body is
 * only piped once the connection is up. When the last one refuses too, the client gets
 * `unreachable` if given. A kept-alive socket that turns out dead is retried once for requests
 * without a body. Anything else is a 502.
 */
export function proxyRequest(
  ctx: ProxyContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  targets: readonly string[],
  label: string,
  unreachable?: Answer,
): void {
  const headers = upstreamRequestHeaders(req.rawHeaders, clientInfo(ctx, req));
  const bodyless = !hasBody(req.headers);
  let staleRetried = false;
  let clientGone = false;
  let current: http.ClientRequest | null = null;
  res.on('close', () => {
    if (!res.writableFinished) {
      clientGone = true;
      current?.destroy();
    }
  });

  const attempt = (index: number): void => {
    const target = targets[index]!;
    let bodyStarted = false;
    let responded = false;
    const preq = upstreamRequest(target, req, headers, ctx.agent);
    current = preq;

    const startBody = (): void => {
      if (bodyStarted) return;
      bodyStarted = true;
      if (bodyless) preq.end();
      else req.pipe(preq);
    };
    preq.on('socket', (socket) => {
      socket.setNoDelay(true);
      if (socket.connecting) socket.once('connect', startBody);
      else startBody();
    });

    preq.on('response', (pres) => {
      responded = true;
      res.writeHead(pres.statusCode ?? 502, pres.statusMessage || undefined, clientResponseHeaders(pres.rawHeaders));
      // pipe, not stream.pipeline: pipeline's per-call AbortController costs a quarter of the
      // router's CPU per request. The two failure paths are wired by hand instead.
      pres.on('error', (err) => {
        if (!clientGone) ctx.logger.debug({ route: label, err: oneLine(err) }, 'response stream ended early');
        res.destroy();
      });
      pres.pipe(res);
    });

    preq.on('error', (err) => {
      if (clientGone) return;
      if (responded) {
        res.destroy();
        return;
      }
      if (!bodyStarted && isConnectFailure(err) && index + 1 < targets.length) {
        ctx.logger.warn({ route: label, upstream: target, err: oneLine(err) }, 'upstream refused; trying the next one');
        attempt(index + 1);
        return;
      }
      if (preq.reusedSocket && bodyless && !staleRetried && isStaleSocketFailure(err)) {
        staleRetried = true;
        attempt(index);
        return;
      }
      const down = !bodyStarted && isConnectFailure(err) ? unreachable : undefined;
      ctx.logger.error({ route: label, upstream: target, err: oneLine(err) }, down ? 'upstream unreachable' : 'upstream failed');
      // Part of the request body may still be unread: this connection cannot carry another request.
      if (!req.complete) res.setHeader('connection', 'close');
      sendText(res, down ?? { status: 502, body: `bad gateway: ${label} did not answer\n` });
    });
  };

  attempt(0);
}

/**
 * Forwards an Upgrade request (websockets) and then splices the two sockets together. Each
 * tunnel gets a fresh connection: an upgraded socket can never go back to the pool.
 */
export function proxyUpgrade(
  ctx: ProxyContext,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  targets: readonly string[],
  label: string,
): void {
  const headers = upstreamRequestHeaders(req.rawHeaders, clientInfo(ctx, req), true);
  let clientGone = false;
  let current: http.ClientRequest | null = null;
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    clientGone = true;
    current?.destroy();
  });

  const attempt = (index: number): void => {
    const target = targets[index]!;
    // Upgraded sockets leave the pool for good: never take one from the keep-alive agent.
    const preq = upstreamRequest(target, req, headers, false);
    current = preq;

    preq.on('upgrade', (pres, usocket, uhead) => {
      current = null;
      if (clientGone) {
        usocket.destroy();
        return;
      }
      let lines = `HTTP/1.1 101 ${pres.statusMessage || 'Switching Protocols'}\r\n`;
      for (let i = 0; i + 1 < pres.rawHeaders.length; i += 2) lines += `${pres.rawHeaders[i]}: ${pres.rawHeaders[i + 1]}\r\n`;
      socket.write(`${lines}\r\n`);
      if (uhead.length > 0) socket.write(uhead);
      if (head.length > 0) usocket.write(head);
      ctx.tunnels.add(socket);
      const done = (): void => {
        ctx.tunnels.delete(socket);
        socket.destroy();
        usocket.destroy();
      };
      usocket.on('error', done);
      usocket.on('close', done);
      socket.on('close', done);
      usocket.pipe(socket);
      socket.pipe(usocket);
    });

    // The upstream declined the upgrade: relay its answer and close, since the client's
    // connection is in an undefined state after a refused upgrade.
    preq.on('response', (pres) => {
      let lines = `HTTP/1.1 ${pres.statusCode} ${pres.statusMessage}\r\n`;
      const out = clientResponseHeaders(pres.rawHeaders);
      for (const [name, value] of Object.entries(out)) {
        for (const v of Array.isArray(value) ? value : [value]) lines += `${name}: ${v}\r\n`;
      }
      socket.write(`${lines}Connection: close\r\n\r\n`);
      pres.pipe(socket);
    });

    preq.on('error', (err) => {
      if (clientGone) return;
      if (isConnectFailure(err) && index + 1 < targets.length) {
        attempt(index + 1);
        return;
      }
      ctx.logger.error({ route: label, upstream: target, err: oneLine(err) }, 'upstream upgrade failed');
      sendRawText(socket, 502, `bad gateway: ${label} did not answer\n`);
    });
    preq.end();
  };

  attempt(0);
}
