import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { parseAppName } from '../core/app-name.js';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { listenPrivateSocket } from '../core/sockets.js';
import { relayGitService, spawnGitService, type GitService, type GitServiceOptions } from './git.js';
import { clientAddress, parseBasicAuth, type FailureLimiter } from './http-auth.js';
import { requestedCapabilities, serviceAnnouncement, sidebandError } from './pkt-line.js';

type Service = 'git-upload-pack' | 'git-receive-pack';

/** What a request to /_git/ asks for, or why it cannot be served. */
export type GitRoute =
  | { kind: 'advertise' | 'rpc'; repo: string; service: Service }
  | { kind: 'refuse'; status: number; message: string; allow?: string };

const DUMB = 'dumb HTTP is not supported: use a git client that speaks smart HTTP (git 1.6.6 or later)';

/**
 * Pure routing of the smart HTTP protocol (gitprotocol-http). The path is taken as sent, never
 * URL-decoded or normalised, so `..` or `%2f` stay part of the repo name and fail its check.
 */
export function routeGitRequest(method: string | undefined, url: string | undefined): GitRoute {
  const target = url ?? '';
  const q = target.indexOf('?');
  const pathname = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const match = /^\/_git\/([^/]+)\/(.+)$/.exec(pathname);
  if (!match) return { kind: 'refuse', status: 404, message: 'not a git repository URL: use http://<host>:<port>/_git/<app>.git' };
  const [, repo, rest] = match as unknown as [string, string, string];
  if (rest === 'info/refs') {
    if (method !== 'GET') return { kind: 'refuse', status: 405, message: `${method ?? ''} is not allowed on info/refs: use GET`, allow: 'GET' };
    const service = query.get('service');
    if (service === null) return { kind: 'refuse', status: 403, message: DUMB };
    if (service !== 'git-upload-pack' && service !== 'git-receive-pack') {
      return { kind: 'refuse', status: 403, message: `unsupported service ${JSON.stringify(service.slice(0, 40))}: only git-upload-pack and git-receive-pack` };
    }
    return { kind: 'advertise', repo, service };
  }
  if (rest === 'git-upload-pack' || rest === 'git-receive-pack') {
    if (method !== 'POST') return { kind: 'refuse', status: 405, message: `${method ?? ''} is not allowed on ${rest}: use POST`, allow: 'POST' };
    return { kind: 'rpc', repo, service: rest };
  }
  return { kind: 'refuse', status: 404, message: DUMB };
}

export interface GitHttpDeps {
  /** The app's record, or null when there is no such app. */
  findApp(name: string): Promise<unknown>;
  /** The name of the token whose secret this is, or null. */
  verifyToken(secret: string): Promise<string | null>;
  limiter: FailureLimiter;
  repoDir(app: string): string;
  hooksDir: string;
  maxPushBytes: number;
  hookEnv(app: string, pusher: string): Record<string, string>;
  logger: Logger;
  /**
   * Whether the token's user may use git on the app (README, "Users and access"): `not-found`
   * answers exactly as for an app that does not exist. Without it every token may.
   */
  decide?(token: string, app: string): Promise<'allow' | 'denied' | 'not-found'>;
  /** Told after a push over HTTP went through, for the audit log. */
  onPushed?(token: string, app: string, client: string): void;
}

const NO_CACHE = { 'cache-control': 'no-cache, max-age=0, must-revalidate', expires: 'Fri, 01 Jan 1980 00:00:00 GMT', pragma: 'no-cache' };

/**
 * Smart HTTP in front of the real `git upload-pack` / `git receive-pack`, the way
 * git-http-backend does it: Basic auth with a token, per-client throttling of wrong tokens,
 * bodies streamed (and gunzipped) into git with a byte cap, git's output streamed back.
 */
export function createGitHttpHandler(deps: GitHttpDeps): http.RequestListener {
  return (req, res) => {
    // A client that resets mid-request fails this exchange only (the router's socket is ours).
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const client = clientAddress(req.headers['x-forwarded-for']);
    const log = (status: number, extra: Record<string, unknown> = {}) =>
      deps.logger.info({ method: req.method, path: (req.url ?? '').split('?')[0], status, client, ...extra }, 'git http');
    serve().catch((err: unknown) => {
      deps.logger.error({ err: oneLine(err), client }, 'git http request failed');
      // The cause may name server paths: it goes to the log, not to the client.
      refuse(res, 500, 'internal error: see the Slipway server log');
    });

    async function serve(): Promise<void> {
      const wait = deps.limiter.blockedFor(client);
      if (wait > 0) {
        log(429);
        refuse(res, 429, `too many failed logins from ${client}: try again in ${Math.ceil(wait / 1000)} s`, { 'retry-after': String(Math.ceil(wait / 1000)) });
        return;
      }
      const route = routeGitRequest(req.method, req.url);
      if (route.kind === 'refuse') {
        log(route.status);
        refuse(res, route.status, route.message, route.allow ? { allow: route.allow } : {});
        return;
      }
      let app: string;
      try {
        app = parseAppName(route.repo, { forRepo: true });
      } catch (err) {
        log(404);
        refuse(res, 404, `app not found: ${oneLine(err)}`);
        return;
      }

      const credentials = parseBasicAuth(req.headers.authorization);
      const pusher = credentials ? await deps.verifyToken(credentials.password) : null;
      if (pusher === null) {
        // A request without credentials is how every git client starts: only wrong ones count.
        const blocked = credentials ? deps.limiter.fail(client) : false;
        log(401, { presented: credentials !== null, blocked });
        refuse(res, 401, credentials ? 'wrong token: create one with `slipway tokens:create <name>`' : 'authentication required: use a Slipway token as the password', {
          'www-authenticate': 'Basic realm="Slipway", charset="UTF-8"',
        });
        return;
      }
      const decision = deps.decide ? await deps.decide(pusher, app) : 'allow';
      if (decision === 'denied') {
        log(403, { token: pusher });
        refuse(res, 403, `permission denied: this token's user may not use git on ${app}; ask one of its owners or an admin`);
        return;
      }
      if (decision === 'not-found' || (await deps.findApp(app)) === null) {
        log(404, { token: pusher });
        refuse(res, 404, `app not found: "${app}" does not exist; create it with \`slipway apps:create ${app}\``);
        return;
      }
      const gitProtocol = protocolHeader(req.headers['git-protocol']);
      const options: GitServiceOptions = {
        repoDir: deps.repoDir(app),
        service: route.service.slice(4) as GitService,
        hooksDir: deps.hooksDir,
        maxPushBytes: deps.maxPushBytes,
        hookEnv: { ...deps.hookEnv(app, pusher), ...(gitProtocol ? { GIT_PROTOCOL: gitProtocol } : {}) },
        http: { advertise: route.kind === 'advertise' },
      };
      // A repository that vanished under a valid app record is a server fault, not a client one.
      await fs.access(options.repoDir);
      if (route.kind === 'advertise') {
        // Like git-http-backend: protocol v2 has its own capability advertisement, no service line.
        const preface = /(^|:)version=2(:|$)/.test(gitProtocol ?? '') ? null : serviceAnnouncement(route.service);
        respond(spawnGitService(options), req, res, `application/x-git-${route.service.slice(4)}-advertisement`, preface, null, (status) => log(status, { token: pusher }));
        req.resume();
        return;
      }
      rpc(route.service, options, pusher, app);
    }

    /**
     * Refuses an oversized push in words the pusher sees: on side-band when the request asked for
     * it (git shows HTTP error bodies of a POST to no one), else as a plain 413.
     */
    function refuseTooLarge(head: Buffer, bytes: number, pusher: string): void {
      log(413, { token: pusher, bytes });
      const caps = requestedCapabilities(head);
      if (res.headersSent || !(caps.includes('side-band-64k') || caps.includes('side-band'))) {
        refuse(res, 413, tooLarge(bytes, deps.maxPushBytes));
        return;
      }
      const body = sidebandError(tooLarge(bytes, deps.maxPushBytes));
      res.writeHead(200, { 'content-type': 'application/x-git-receive-pack-result', 'content-length': body.length, connection: 'close', ...NO_CACHE });
      res.end(body);
    }

    function rpc(service: Service, options: GitServiceOptions, pusher: string, app: string): void {
      const contentType = req.headers['content-type'];
      if (contentType !== `application/x-${service}-request`) {
        log(415, { token: pusher });
        refuse(res, 415, `expected Content-Type application/x-${service}-request`);
        return;
      }
      const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'x-gzip') {
        log(415, { token: pusher });
        refuse(res, 415, `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}: send the body plain or gzip`);
        return;
      }
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > deps.maxPushBytes) {
        // Read just the first command line, to learn whether the client takes side-band errors.
        void readHead(req, encoding === 'identity' && service === 'git-receive-pack').then((head) => afterBody(req, () => refuseTooLarge(head, declared, pusher)));
        return;
      }

      const rawLimit = new ByteLimit(deps.maxPushBytes);
      // The inflated size is capped too, so a small gzip body cannot expand into a huge pack.
      const bodyLimit = encoding === 'identity' ? rawLimit : new ByteLimit(deps.maxPushBytes);
      const stages = encoding === 'identity' ? [rawLimit] : [rawLimit, zlib.createGunzip(), bodyLimit];
      let failed = false;
      respond(spawnGitService(options), req, res, `application/x-${service}-result`, null, [req, ...stages], (status) => {
        if (failed) return;
        log(status, { token: pusher });
        if (status === 200 && service === 'git-receive-pack') deps.onPushed?.(pusher, app, client);
      }, (err) => {
        failed = true;
        if (err instanceof TooLarge) {
          refuseTooLarge(service === 'git-receive-pack' ? bodyLimit.head : Buffer.alloc(0), err.seen, pusher);
          return;
        }
        log(400, { token: pusher, err: oneLine(err) });
        refuse(res, 400, `unreadable request body (${oneLine(err)}): nothing was changed`);
      });
    }
  };
}

/** Starts the smart HTTP endpoint on a unix socket only the router's user may open. */
export async function listenGitHttp(socketPath: string, handler: http.RequestListener): Promise<http.Server> {
  // A push can stream for longer than Node's default 5-minute request timeout; the router bounds
  // slow clients. Keep-alive outlives the router's 4 s pool idle time, so it never reuses a socket
  // we are closing.
  const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 5000 }, handler);
  await listenPrivateSocket(server, socketPath);
  return server;
}

/**
 * The first chunk of a body (git writes its commands first, in one go), without reading on; a
 * client that sends nothing gets its answer after a short wait instead of holding us.
 */
function readHead(req: http.IncomingMessage, wanted: boolean): Promise<Buffer> {
  if (!wanted) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve) => {
    const done = (head: Buffer): void => {
      clearTimeout(timer);
      req.off('data', done);
      req.pause();
      resolve(head);
    };
    const timer = setTimeout(() => done(Buffer.alloc(0)), 2000);
    req.once('data', done);
    req.once('end', () => done(Buffer.alloc(0)));
    req.once('error', () => done(Buffer.alloc(0)));
  });
}

/** Only `key=value` items separated by colons, as git sends; anything else is dropped. */
function protocolHeader(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && /^[A-Za-z0-9._=:-]{1,256}$/.test(value) ? value : null;
}

function tooLarge(bytes: number, max: number): string {
  return `push too large: ${bytes} bytes is over the limit of ${max} (maxPushBytes in config.json)`;
}

function refuse(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  // Part of the body may be unread: the connection cannot carry another request.
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close', ...NO_CACHE, ...headers });
  res.end(body);
}

/**
 * Streams git's stdout as the response (through relayGitService, see receiver/git.ts). Headers
 * wait for git's first byte, so a git that fails before saying anything still turns into a clean
 * 500 instead of an empty 200. A client that goes away stops git.
 */
function respond(
  child: ChildProcess,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  contentType: string,
  preface: Buffer | null,
  input: NodeJS.ReadableStream[] | null,
  done: (status: number) => void,
  onInputError?: (err: Error) => void,
): void {
  const start = (): void => {
    res.writeHead(200, { 'content-type': contentType, ...NO_CACHE });
    if (preface) res.write(preface);
  };
  const gone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  void relayGitService(child, {
    input,
    output: res,
    onFirstOutput: () => {
      if (!res.headersSent) start();
    },
    signal: gone.signal,
    kill: 'SIGKILL',
    ...(onInputError ? { onInputError } : {}),
  }).then(({ code, signal, stderr }) => {
    if (res.headersSent) {
      if (!res.writableEnded && !res.destroyed) res.end();
      done(200);
      return;
    }
    if (code === 0) {
      start();
      res.end();
      done(200);
      return;
    }
    const why = oneLine(stderr) || (signal ? `stopped by ${signal}` : `exit code ${code}`);
    // git says "protocol error" about what the client sent; anything else is ours to fix.
    const clientFault = /protocol error/.test(stderr);
    done(clientFault ? 400 : 500);
    afterBody(req, () => refuse(res, clientFault ? 400 : 500, `${clientFault ? 'git refused the request' : 'git failed'}: ${why}`));
  });
}

/** How long a refusal waits for the rest of a body it will not use (see afterBody). */
const LINGER_MS = 2000;

/**
 * Runs `answer` once the client finished sending (the rest is read and dropped), or after
 * LINGER_MS. A refusal closes the connection; closing while the client still sends makes the
 * kernel reset it, and the client (the router) may lose the answer and report 502 instead: the
 * "lingering close" web servers do.
 */
function afterBody(req: http.IncomingMessage, answer: () => void): void {
  if (req.complete || req.destroyed) {
    answer();
    return;
  }
  let answered = false;
  const go = (): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    answer();
  };
  const timer = setTimeout(go, LINGER_MS);
  req.once('end', go);
  req.once('close', go);
  req.resume();
}

class TooLarge extends Error {
  constructor(readonly seen: number) {
    super('request body over the size limit');
  }
}

/** The start of a request body worth keeping: room for the first pkt-line of any real push. */
const HEAD_BYTES = 4096;

/** Passes bytes through until more than `max` went by, then fails the pipeline; keeps the head. */
class ByteLimit extends Transform {
  #seen = 0;
  head = Buffer.alloc(0);
  constructor(readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.head.length < HEAD_BYTES) this.head = Buffer.concat([this.head, chunk]).subarray(0, HEAD_BYTES);
    this.#seen += chunk.length;
    if (this.#seen > this.max) cb(new TooLarge(this.#seen));
    else cb(null, chunk);
  }
}
