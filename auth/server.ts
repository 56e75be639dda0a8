import http from 'node:http';
import { canView } from '../core/access.js';
import { isValidAppName } from '../core/app-name.js';
import { oneLine } from '../core/errors.js';
import { listenPrivateSocket } from '../core/sockets.js';
import type { Logger } from '../core/log.js';
import { verifyPassword } from '../core/passwords.js';
import type { UserStore } from '../core/users.js';
import { checkCsrf, checkSignOutToken, CSRF_COOKIE, csrfToken, newBinding } from './csrf.js';
import { isPlatformHost, safeNext } from './next.js';
import { loginPage, logoutPage, messagePage } from './page.js';
import type { SignInLimiter } from './rate-limit.js';
import { SESSION_COOKIE, type SessionStore } from './sessions.js';
import type { SsoProvider } from './sso.js';

/**
 * The sign-in server (README "Users and access", docs/security.md). nginx sends it `/_auth/` of
 * every host, and asks `/_auth/check` (auth_request) before each request to a non-public app:
 * 200 with the identity headers, 401 without a live session, 403 without the right to view.
 */
export interface AuthDeps {
  users: UserStore;
  sessions: SessionStore;
  limiter: SignInLimiter;
  /** The CSRF secret (csrf.ts#loadSecret). */
  secret: Buffer;
  /** The platform's domain: where `next` may point, and the session cookie's scope. */
  domain: string;
  /** The session cookie's Max-Age: the sessions' absolute lifetime. */
  cookieMaxAgeSeconds: number;
  /** The single sign-on provider for the current settings, or null when it is off (asked per request). */
  sso?: () => SsoProvider | null;
  logger: Logger;
}

export const SSO_COOKIE = 'slipway_sso';
const MAX_FORM_BYTES = 16 * 1024;
const WRONG = 'Wrong username or password.';
/** A valid hash nobody's password matches: unknown names cost as much as known ones. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    // The first one wins, as in browsers' most specific-path-first order.
    if (name && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  cookies: Map<string, string>;
  https: boolean;
  address: string;
  /** The Host header without port, lower-cased. */
  hostname: string;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function cookie(name: string, value: string, o: { https: boolean; path: string; maxAge?: number; domain?: string | null; sameSite?: 'Lax' | 'Strict' }): string {
  return [
    `${name}=${value}`,
    `Path=${o.path}`,
    ...(o.domain ? [`Domain=${o.domain}`] : []),
    ...(o.maxAge === undefined ? [] : [`Max-Age=${o.maxAge}`]),
    'HttpOnly',
    `SameSite=${o.sameSite ?? 'Lax'}`,
    ...(o.https ? ['Secure'] : []),
  ].join('; ');
}

function send(res: http.ServerResponse, status: number, body: string, o: { type?: string; headers?: Record<string, string | string[]> } = {}): void {
  res.writeHead(status, {
    'content-type': o.type ?? 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'referrer-policy': 'no-referrer',
    ...o.headers,
  });
  res.end(body);
}

function readForm(req: http.IncomingMessage): Promise<URLSearchParams | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM_BYTES) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

export function createAuthHandler(d: AuthDeps): http.RequestListener {
  /**
   * One sign-in for every app host: the session cookie is scoped to the platform's domain when
   * the request came on it. A single-label domain (`localhost`) stays host-only: browsers refuse
   * Domain= on it, and a refused cookie would mean no sign-in at all.
   */
  const cookieDomain = (c: Ctx): string | null => (d.domain.includes('.') && isPlatformHost(c.hostname, d.domain) ? d.domain : null);

  const binding = (c: Ctx): { value: string; setCookie: string[] } => {
    const have = c.cookies.get(CSRF_COOKIE);
    if (have && /^[A-Za-z0-9_-]{43}$/.test(have)) return { value: have, setCookie: [] };
    const value = newBinding();
    return { value, setCookie: [cookie(CSRF_COOKIE, value, { https: c.https, path: '/_auth/', sameSite: 'Strict' })] };
  };

  const showLogin = (c: Ctx, status: number, o: { next: string; error?: string; username?: string; extra?: string[] }): void => {
    const b = binding(c);
    const sso = d.sso?.() ?? null;
    const page = loginPage({
      csrf: csrfToken(d.secret, b.value),
      next: o.next,
      ...(o.error === undefined ? {} : { error: o.error }),
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(sso ? { sso: sso.label } : {}),
    });
    send(c.res, status, page, { headers: { 'set-cookie': [...b.setCookie, ...(o.extra ?? [])] } });
  };

  const showLogout = (c: Ctx): void => {
    const b = binding(c);
    const page = logoutPage({ csrf: csrfToken(d.secret, b.value), user: d.sessions.user(c.cookies.get(SESSION_COOKIE)) });
    send(c.res, 200, page, { headers: { 'set-cookie': b.setCookie } });
  };

  const audit = (actor: string, address: string, action: string, detail = ''): void => {
    try {
      d.users.audit({ actor, source: `web ${address}` }, action, null, detail);
    } catch (err) {
      d.logger.error({ err: oneLine(err), action }, 'audit entry not written');
    }
  };

  /**
   * Signs `user` in: a new session (ending the one the browser came with), then 303 to next.
   * Single sign-on audits its own sign-ins (with the provider's groups), passwords here.
   */
  const signIn = (c: Ctx, user: string, next: string, how: 'password' | 'oidc', clear: string[] = []): void => {
    const id = d.sessions.create(user, c.address, c.cookies.get(SESSION_COOKIE));
    if (how === 'password') audit(user, c.address, 'sign-in', 'via=password');
    d.logger.info({ user, address: c.address, how }, 'signed in');
    const session = cookie(SESSION_COOKIE, id, { https: c.https, path: '/', maxAge: d.cookieMaxAgeSeconds, domain: cookieDomain(c) });
    send(c.res, 303, '', { headers: { location: next, 'set-cookie': [session, ...clear] } });
  };

  const postLogin = async (c: Ctx): Promise<void> => {
    const form = await readForm(c.req);
    if (form === null) return send(c.res, 413, messagePage('Sign-in failed', 'The form is too large.'));
    const next = safeNext(form.get('next'), d.domain);
    if (!checkCsrf(d.secret, c.cookies.get(CSRF_COOKIE), form.get('csrf') ?? undefined)) {
      return showLogin(c, 403, { next, error: 'The sign-in form expired. Please try again.' });
    }
    const raw = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    // Only names that could exist are counted by name: junk cannot fill the limiter's table.
    const name = isValidAppName(raw) ? raw : '';
    const wait = d.limiter.attempt(name, c.address);
    if (wait !== null) {
      audit(name || '-', c.address, 'sign-in-failed', 'via=password rate-limited');
      return showLogin(c, 429, { next, error: `Too many sign-in attempts. Try again in ${Math.ceil(wait / 60)} minutes.`, username: name });
    }
    const actor = name ? d.users.actor(name) : null;
    const hash = actor ? d.users.passwordHash(name) : null;
    const ok = (await verifyPassword(password, hash ?? DUMMY_HASH)) && hash !== null && actor !== null && !actor.locked;
    if (!ok) {
      audit(name || '-', c.address, 'sign-in-failed', `via=password${actor?.locked ? ' locked' : ''}`);
      return showLogin(c, 401, { next, error: WRONG, username: name });
    }
    d.limiter.succeeded(name, c.address);
    signIn(c, name, next, 'password');
  };

  const postLogout = async (c: Ctx): Promise<void> => {
    const form = await readForm(c.req);
    const id = c.cookies.get(SESSION_COOKIE);
    const token = form?.get('csrf') ?? undefined;
    // This server's own form, or the App Manager's one-click form with a session-bound token (csrf.ts).
    if (form === null || !(checkCsrf(d.secret, c.cookies.get(CSRF_COOKIE), token) || checkSignOutToken(d.secret, id, token))) {
      return send(c.res, 403, messagePage('Sign-out failed', 'The form expired. Please reload the page and try again.'));
    }
    const user = d.sessions.user(id);
    d.sessions.revoke(id);
    if (user !== null) audit(user, c.address, 'sign-out');
    const gone = cookie(SESSION_COOKIE, '', { https: c.https, path: '/', maxAge: 0, domain: cookieDomain(c) });
    send(c.res, 303, '', { headers: { location: '/_auth/login', 'set-cookie': gone } });
  };

  /** nginx's auth_request: the answer is cached for a few seconds per session cookie and app. */
  const check = (c: Ctx): void => {
    const app = header(c.req, 'x-slipway-app') ?? '';
    const user = d.sessions.user(c.cookies.get(SESSION_COOKIE));
    const actor = user === null ? null : d.users.actor(user);
    if (actor === null || actor.locked) return send(c.res, 401, '', { type: 'text/plain' });
    // No app: the platform's own pages (App Manager, Portal), for any signed-in user.
    if (app !== '' && (!isValidAppName(app) || !canView(actor, d.users.access(app)))) return send(c.res, 403, '', { type: 'text/plain' });
    send(c.res, 200, '', { type: 'text/plain', headers: { 'x-slipway-user': actor.name, 'x-slipway-groups': actor.groups.join(',') } });
  };

  /** Where nginx sends a request without a session: browsers go to sign in, others get 401. */
  const required = (c: Ctx): void => {
    const uri = header(c.req, 'x-slipway-uri') ?? '/';
    if (/\btext\/html\b/i.test(header(c.req, 'accept') ?? '')) {
      return send(c.res, 302, '', { headers: { location: `/_auth/login?next=${encodeURIComponent(safeNext(uri, d.domain))}` } });
    }
    send(c.res, 401, 'sign-in required: sign in at /_auth/login or send the slipway_session cookie\n', { type: 'text/plain; charset=utf-8', headers: { 'www-authenticate': 'Cookie realm="slipway"' } });
  };

  const baseUrl = (c: Ctx): string | null => {
    const host = header(c.req, 'host') ?? '';
    return /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(host) ? `${c.https ? 'https' : 'http'}://${host}` : null;
  };

  const ssoStart = async (c: Ctx, sso: SsoProvider): Promise<void> => {
    const base = baseUrl(c);
    if (base === null) return send(c.res, 400, messagePage('Single sign-on failed', 'The request had no usable Host header.'));
    const next = safeNext(c.url.searchParams.get('next'), d.domain);
    const begun = await sso.begin({ next, callbackUrl: `${base}/_auth/oidc/callback` });
    const tx = cookie(SSO_COOKIE, encodeURIComponent(begun.transaction), { https: c.https, path: '/_auth/oidc/', maxAge: 600 });
    send(c.res, 302, '', { headers: { location: begun.redirect, 'set-cookie': tx } });
  };

  const ssoCallback = async (c: Ctx, sso: SsoProvider): Promise<void> => {
    const base = baseUrl(c);
    const clear = cookie(SSO_COOKIE, '', { https: c.https, path: '/_auth/oidc/', maxAge: 0 });
    // The provider audits what it refuses; these are the refusals after it said yes.
    const fail = (why: string, audited = false): void => {
      if (!audited) audit('-', c.address, 'sign-in-failed', `via=oidc ${why}`);
      send(c.res, 401, messagePage('Single sign-on failed', 'Single sign-on did not complete. Please try again.'), { headers: { 'set-cookie': clear } });
    };
    if (base === null) return fail('no usable Host header');
    let done;
    try {
      done = await sso.finish({ callbackUrl: new URL(c.req.url ?? '/', base), transaction: decodeURIComponent(c.cookies.get(SSO_COOKIE) ?? ''), from: `web ${c.address}` });
    } catch (err) {
      d.logger.info({ err: oneLine(err), address: c.address }, 'single sign-on refused');
      return fail('', true);
    }
    const actor = d.users.actor(done.user);
    if (actor === null || actor.locked) return fail(`user ${done.user} is ${actor ? 'locked' : 'unknown'}`);
    signIn(c, actor.name, safeNext(done.next, d.domain), 'oidc', [clear]);
  };

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://auth.invalid');
    const rawHost = (header(req, 'host') ?? '').toLowerCase();
    const c: Ctx = {
      req,
      res,
      url,
      cookies: parseCookies(header(req, 'cookie')),
      https: header(req, 'x-forwarded-proto') === 'https',
      // nginx sets X-Real-IP to the client's address on every request it passes here.
      address: header(req, 'x-real-ip') ?? req.socket.remoteAddress ?? 'local',
      hostname: rawHost.startsWith('[') ? rawHost.slice(0, rawHost.indexOf(']') + 1) : rawHost.split(':')[0]!,
    };
    const route = `${req.method} ${url.pathname}`;
    const run = async (): Promise<void> => {
      const sso = route.startsWith('GET /_auth/oidc/') ? (d.sso?.() ?? null) : null;
      switch (route) {
        case 'GET /_auth/check':
          return check(c);
        case 'GET /_auth/required':
          return required(c);
        case 'GET /_auth/login':
          return showLogin(c, 200, { next: safeNext(url.searchParams.get('next'), d.domain) });
        case 'POST /_auth/login':
          return postLogin(c);
        case 'GET /_auth/logout':
          return showLogout(c);
        case 'POST /_auth/logout':
          return postLogout(c);
        case 'GET /_auth/oidc/start':
          if (sso) return ssoStart(c, sso);
          break;
        case 'GET /_auth/oidc/callback':
          if (sso) return ssoCallback(c, sso);
          break;
      }
      send(res, 404, 'not found\n', { type: 'text/plain; charset=utf-8' });
    };
    run().catch((err: unknown) => {
      d.logger.error({ err: oneLine(err), route }, 'auth request failed');
      if (!res.headersSent) send(res, 500, 'internal error: see the auth server log\n', { type: 'text/plain; charset=utf-8' });
      else res.destroy();
    });
  };
}

/** Listens on a unix socket only the platform's user (and its nginx workers) may open. */
export async function listenAuth(socketPath: string, handler: http.RequestListener): Promise<http.Server> {
  // Keep-alive outlives nginx's idle upstream connections (4 s), so nginx never reuses one we close.
  const server = http.createServer({ keepAliveTimeout: 10_000, headersTimeout: 10_000, requestTimeout: 30_000 }, handler);
  await listenPrivateSocket(server, socketPath);
  return server;
}
