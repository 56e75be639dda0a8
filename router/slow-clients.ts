import type http from 'node:http';

/**
 * How long the router waits on a client before it gives up (slowloris). The defaults follow
 * Apache's mod_reqtimeout (header=20, body MinRate=500) and nginx's client_body_timeout (60 s):
 * headers fit in one or two packets, so 20 s is generous even on a bad mobile link; a body only
 * has to keep up a trickle a legitimate upload never falls under.
 */
export interface ClientTimeouts {
  /** From a request's first byte (or the connection's opening) until its headers are complete. */
  headersMs: number;
  /** A request body may stall this long, and after a stall must catch up with bodyMinBytesPerSecond. */
  bodyMs: number;
  bodyMinBytesPerSecond: number;
  /** An idle keep-alive connection is closed after this (Node keeps it up to 1 s longer). */
  keepAliveMs: number;
  /** How often the bounds above are checked, which is also how late they may bite. */
  checkMs: number;
}

export const DEFAULT_CLIENT_TIMEOUTS: ClientTimeouts = {
  headersMs: 20_000,
  bodyMs: 60_000,
  bodyMinBytesPerSecond: 500,
  // Node's default, announced to clients as "Keep-Alive: timeout=5" so they drop the socket first.
  keepAliveMs: 5_000,
  checkMs: 1_000,
};

/**
 * Server options for the bounds Node enforces itself. requestTimeout stays 0: it bounds the whole
 * request body, so any value would cut a large git push on a slow link; BodyWatch bounds bodies
 * by rate instead. headersTimeout must then be set explicitly: on Node 20 it defaults to
 * min(60 s, requestTimeout), which is 0 (never). Upgraded sockets (websockets) leave Node's
 * connection tracking, so none of these reach a tunnel.
 */
export function serverTimeoutOptions(t: ClientTimeouts): http.ServerOptions & { handshakeTimeout: number } {
  return {
    requestTimeout: 0,
    headersTimeout: t.headersMs,
    keepAliveTimeout: t.keepAliveMs,
    connectionsCheckingInterval: t.checkMs,
    // HTTPS only: the parser (and headersTimeout) starts after the TLS handshake.
    handshakeTimeout: t.headersMs,
  };
}

interface Watched {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The client must have sent enough to push this forward before it passes. */
  deadline: number;
  bytesRead: number;
}

export interface BodyWatch {
  /** Bounds the time the client takes to send this request's body, if it has one. */
  watch(req: http.IncomingMessage, res: http.ServerResponse): void;
  stop(): void;
}

/**
 * The body bound Node lacks. Each request body starts with bodyMs of credit; every byte the
 * client sends buys 1/bodyMinBytesPerSecond s more, never beyond bodyMs ahead. A body trickled
 * slower than the rate runs out of credit however long it is. The clock stops while the router is
 * the one not reading (upstream not yet connected, or pushing back), so a slow upstream never
 * gets its client cut. One shared timer serves all requests.
 */
export function createBodyWatch(t: ClientTimeouts, onSlow: (req: http.IncomingMessage, res: http.ServerResponse) => void): BodyWatch {
  const watched = new Set<Watched>();
  const timer = setInterval(() => {
    const now = Date.now();
    for (const w of watched) {
      const { req, res } = w;
      if (req.complete || req.destroyed) {
        watched.delete(w);
        continue;
      }
      const bytesRead = req.socket.bytesRead;
      const gained = bytesRead - w.bytesRead;
      w.bytesRead = bytesRead;
      // Not flowing, or data waiting in its buffer: the router is not reading, not the client.
      const waitingOnUs = req.readableFlowing !== true || req.readableLength > 0;
      w.deadline = waitingOnUs ? now + t.bodyMs : Math.min(w.deadline + (gained * 1000) / t.bodyMinBytesPerSecond, now + t.bodyMs);
      if (now > w.deadline) {
        watched.delete(w);
        onSlow(req, res);
      }
    }
  }, t.checkMs).unref();
  return {
    watch(req, res) {
      if (req.complete) return;
      watched.add({ req, res, deadline: Date.now() + t.bodyMs, bytesRead: req.socket.bytesRead });
    },
    stop() {
      clearInterval(timer);
      watched.clear();
    },
  };
}
