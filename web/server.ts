import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { isValidAppName } from '../core/app-name.js';
import type { ErrorCode } from '../core/errors.js';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Csrf, sessionOf } from './csrf.js';
import { runJson, type CommandDoor } from './door.js';
import { html, type Html } from './html.js';
import { adminPage, type PlatformStatus } from './pages/admin.js';
import { appPage, type AppInfo, type LinkedService } from './pages/app.js';
import { layout, type Viewer } from './pages/layout.js';
import { managerPage, selectApps, SORT_KEYS, type AppRow, type SortKey } from './pages/manager.js';
import { portalPage } from './pages/portal.js';

export interface WebDeps {
  door: CommandDoor;
  logger: Logger;
  /** The folder with app.js and app.css (web/assets in the repository). */
  assetsDir: string;
  csrf?: Csrf;
  /** The sign-in server's sign-out token for a session (auth/csrf.ts#signOutToken), for one-click sign-out. */
  signOutToken?: (session: string) => string;
}

/** The header nginx's auth check sets on requests it lets through, and strips from clients (contract). */
export const USER_HEADER = 'x-slipway-user';
export const CSRF_HEADER = 'x-slipway-csrf';
const MAX_BODY = 256 * 1024;

// Nothing inline and nothing from elsewhere: the pages work airgapped (docs/web.md).
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/** HTTP statuses for command failures, by error code; anything else is a 422 with the command's line. */
const STATUS: Partial<Record<ErrorCode, number>> = { E_USAGE: 400, E_AUTH: 403, E_APP_NOT_FOUND: 404, E_APP_EXISTS: 409, E_APP_NAME: 400 };
/** Only these run as a stream (Server-Sent Events), and only these may follow. */
const STREAMS = new Set(['logs', 'builds:log']);

interface Asset {
  type: string;
  body: Buffer;
}

export async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  for (const [name, type] of [['app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8']] as const) {
    assets.set(`/_web/assets/${name}`, { type, body: await fs.readFile(path.join(dir, name)) });
  }
  return assets;
}

/**
 * The App Manager, the Portal and their JSON API as one request handler. It trusts
 * `X-Slipway-User` because only nginx can reach it (docs/web.md, "Trust"); every read and change
 * is a command run as that user through `door`.
 */
export async function createWebHandler(d: WebDeps): Promise<(req: http.IncomingMessage, res: http.ServerResponse) => void> {
  const assets = await loadAssets(d.assetsDir);
  const csrf = d.csrf ?? new Csrf();
  return (req, res) => {
    res.on('error', () => undefined);
    handle(d, assets, csrf, req, res).catch((err: unknown) => {
      d.logger.error({ err: oneLine(err), url: req.url }, 'web request failed');
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'the web server failed on this request: see the daemon log\n');
      else res.destroy();
    });
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, ...extra });
  res.end(body);
}
const sendJson = (res: http.ServerResponse, status: number, value: unknown) => send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
const sendHtml = (res: http.ServerResponse, status: number, page: Html) => send(res, status, 'text/html; charset=utf-8', page.text);

async function handle(d: WebDeps, assets: Map<string, Asset>, csrf: Csrf, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://platform');
  const asset = assets.get(url.pathname);
  if (asset && req.method === 'GET') {
    send(res, 200, asset.type, asset.body, { 'Cache-Control': 'no-cache' });
    return;
  }
  const api = url.pathname.startsWith('/_web/api/');
  const user = req.headers[USER_HEADER];
  if (typeof user !== 'string' || user === '') {
    // nginx's auth check lets unsigned requests through only to pages that then send them to sign in.
    if (api) sendJson(res, 401, { error: 'sign in first: /_auth/login' });
    else send(res, 302, 'text/plain; charset=utf-8', 'sign in first\n', { Location: `/_auth/login?next=${encodeURIComponent(url.pathname + url.search)}` });
    return;
  }
  if (!isValidAppName(user)) {
    send(res, 400, 'text/plain; charset=utf-8', 'bad identity header\n');
    return;
  }
  const session = sessionOf(req.headers.cookie);
  const from = `web ${forwardedFor(req)}`;
  const door: CommandDoor = { run: (u, argv, o = {}) => d.door.run(u, argv, { from, ...o }) };

  if (api) {
    if (url.pathname === '/_web/api/commands' && req.method === 'POST') return apiCommand(door, csrf, user, session, req, res);
    if (url.pathname === '/_web/api/stream' && req.method === 'GET') return apiStream(door, user, url, req, res);
    sendJson(res, 404, { error: 'no such API: see docs/web.md' });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, 'text/plain; charset=utf-8', 'pages are read with GET; changes go through /_web/api/commands\n', { Allow: 'GET, HEAD' });
    return;
  }
  const me = await runJson<{ user: string; role: string }>(door, user, ['whoami']);
  if (!me.ok) {
    send(res, 403, 'text/plain; charset=utf-8', `${me.error}\n`);
    return;
  }
  const viewer: Viewer = { user, role: me.value.role, csrf: csrf.token(user, session), ...(d.signOutToken && session ? { signOut: d.signOutToken(session) } : {}) };
  const page = url.pathname.replace(/\/+$/, '') || '/';
  if (page === '/Manager') return sendHtml(res, 200, await manager(door, viewer, url));
  if (page === '/Portal') return portalRoute(door, viewer, url, res);
  if (page === '/Manager/admin') return adminRoute(door, viewer, res);
  const m = /^\/Manager\/apps\/([^/]+)$/.exec(page);
  if (m) return appRoute(door, viewer, decodeURIComponent(m[1]!), url, res);
  sendHtml(res, 404, errorPage(viewer, 'Not found', 'There is no page here: go to the App Manager or the Portal.'));
}

function forwardedFor(req: http.IncomingMessage): string {
  // nginx appends the client's address last ($proxy_add_x_forwarded_for); earlier entries are the client's say.
  const xff = req.headers['x-forwarded-for'];
  const last = typeof xff === 'string' ? xff.split(',').pop()!.trim() : '';
  return net.isIP(last) ? last : 'local';
}

function errorPage(v: Viewer, title: string, text: string): Html {
  return layout(title, v, 'manager', html`<h1>${title}</h1><p>${text}</p>`);
}

async function manager(door: CommandDoor, v: Viewer, url: URL): Promise<Html> {
  const list = await runJson<AppRow[]>(door, v.user, ['apps:list']);
  const rows = list.ok ? list.value.filter((r) => r.manage) : [];
  const sortParam = url.searchParams.get('sort') ?? 'name';
  const sort: SortKey = (SORT_KEYS as readonly string[]).includes(sortParam) ? (sortParam as SortKey) : 'name';
  const q = url.searchParams.get('q') ?? '';
  return managerPage(v, selectApps(rows, q, sort), q, sort, rows.length);
}

async function portalRoute(door: CommandDoor, v: Viewer, url: URL, res: http.ServerResponse): Promise<void> {
  const list = await runJson<AppRow[]>(door, v.user, ['apps:list']);
  sendHtml(res, 200, portalPage(v, list.ok ? list.value : [], url.searchParams.get('q') ?? '', url.searchParams.get('tag') ?? ''));
}

async function adminRoute(door: CommandDoor, v: Viewer, res: http.ServerResponse): Promise<void> {
  if (v.role !== 'admin') return sendHtml(res, 403, errorPage(v, 'Admins only', 'This page is for admins: ask one to change users, groups or keys.'));
  const [status, users, groups, keys, tokens] = await Promise.all([
    runJson<PlatformStatus>(door, v.user, ['status']),
    runJson<never>(door, v.user, ['users:list']),
    runJson<never>(door, v.user, ['groups:list']),
    runJson<never>(door, v.user, ['ssh-keys:list']),
    runJson<never>(door, v.user, ['tokens:list']),
  ]);
  sendHtml(res, 200, adminPage(v, { status, users, groups, keys, tokens }));
}

async function appRoute(door: CommandDoor, v: Viewer, app: string, url: URL, res: http.ServerResponse): Promise<void> {
  if (!isValidAppName(app)) return sendHtml(res, 404, errorPage(v, 'App not found', `app not found: ${app.slice(0, 40)}`));
  // `access` needs the right to manage: the same refusal as the CLI's, before anything else loads.
  const access = await runJson<never>(door, v.user, ['access', app]);
  if (!access.ok) {
    if (access.code === 'E_AUTH') return sendHtml(res, 403, errorPage(v, 'Permission denied', `You may view ${app} but not manage it: ask one of its owners or an admin.`));
    return sendHtml(res, 404, errorPage(v, 'App not found', `app not found: ${app}. It does not exist, or you may not see it.`));
  }
  const [info, ps, builds, releases, config, services] = await Promise.all([
    runJson<AppInfo & { title: string; description: string; tags: string[] }>(door, v.user, ['apps:info', app]),
    runJson<never>(door, v.user, ['ps', app]),
    runJson<never>(door, v.user, ['builds', app]),
    runJson<never>(door, v.user, ['releases', app]),
    runJson<Record<string, string>>(door, v.user, ['config', app]),
    runJson<LinkedService[]>(door, v.user, ['services', app]),
  ]);
  if (!info.ok) return sendHtml(res, 404, errorPage(v, 'App not found', info.error));
  // Values stay on the server until "Reveal values" asks for them.
  const configKeys = config.ok ? { ok: true as const, value: Object.keys(config.value) } : config;
  const { title, description, tags } = info.value;
  sendHtml(res, 200, appPage(v, { info: info.value, created: url.searchParams.has('created'), ps, builds, releases, configKeys, access, services, portal: { title, description, tags } }));
}

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.resume();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A change (or a read of secrets) is only ever taken from this site's own pages (docs/web.md, "CSRF"). */
function sameSite(req: http.IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

async function apiCommand(door: CommandDoor, csrf: Csrf, user: string, session: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const token = req.headers[CSRF_HEADER];
  if (!sameSite(req) || !csrf.check(user, session, typeof token === 'string' ? token : undefined)) {
    sendJson(res, 403, { error: 'missing or stale CSRF token: reload the page and try again' });
    return;
  }
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
    sendJson(res, 415, { error: 'send the command as application/json' });
    return;
  }
  const text = await readBody(req);
  let body: unknown;
  try {
    body = text === null ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  const { argv, stdin } = (body ?? {}) as { argv?: unknown; stdin?: unknown };
  if (!Array.isArray(argv) || argv.length === 0 || argv.length > 1100 || !argv.every((a) => typeof a === 'string' && a.length <= 8192) || (stdin !== undefined && typeof stdin !== 'string')) {
    sendJson(res, 400, { error: 'expected {"argv": ["command", "arg", ...], "stdin"?: "..."} of at most 256 KiB' });
    return;
  }
  if (STREAMS.has(argv[0]) && argv.some((a) => a === '--follow' || a === '-f')) {
    sendJson(res, 400, { error: 'follow logs with GET /_web/api/stream' });
    return;
  }
  const r = await door.run(user, argv as string[], stdin === undefined ? {} : { stdin });
  const status = r.code === 0 ? 200 : (r.error && STATUS[r.error]) || 422;
  sendJson(res, status, { code: r.code, out: r.out, err: r.err });
}

/** `logs <app> --follow ...` and `builds:log <app> [id] --follow` as Server-Sent Events, one event per line. */
async function apiStream(door: CommandDoor, user: string, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const argv = url.searchParams.getAll('argv');
  if (!STREAMS.has(argv[0] ?? '') || argv.length > 8) {
    sendJson(res, 400, { error: 'stream only `logs` or `builds:log`' });
    return;
  }
  if (!argv.includes('--follow')) argv.push('--follow');
  const controller = new AbortController();
  req.on('close', () => controller.abort());
  res.on('close', () => controller.abort());
  // nginx must pass each event on at once, not buffer the response.
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
  res.write(': stream open\n\n');
  let partial = '';
  const event = (name: string, data: string) => {
    if (!res.destroyed) res.write(`${name === 'message' ? '' : `event: ${name}\n`}data: ${data.replace(/[\r\n]/g, ' ')}\n\n`);
  };
  const heartbeat = setInterval(() => !res.destroyed && res.write(': keep-alive\n\n'), 15_000);
  try {
    const r = await door.run(user, argv, {
      signal: controller.signal,
      out: (text) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        for (const line of lines) event('message', line);
      },
    });
    if (partial !== '') event('message', partial);
    if (r.code !== 0) event('failure', r.err.trim().replace(/^slipway: /, ''));
    event('end', String(r.code));
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}

/**
 * Listens on a unix socket only nginx (root) may reach: `$SLIPWAY_HOME/run/` is 0700 and the socket
 * 0600, so no local user can forge the identity header (docs/web.md, "Trust").
 */
export async function listenWeb(file: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<http.Server> {
  await fs.rm(file, { force: true });
  const server = http.createServer(handler);
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // event streams stay open; nginx bounds slow clients
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  await fs.chmod(file, 0o600);
  return server;
}
