import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkCsrf, csrfToken, loadSecret, newBinding } from '../../auth/csrf.js';
import { safeNext } from '../../auth/next.js';
import { SignInLimiter } from '../../auth/rate-limit.js';
import { SessionStore } from '../../auth/sessions.js';
import { openDb } from '../../core/db.js';
import { UserStore } from '../../core/users.js';
import { renderNginxConfig } from '../../router/nginx-config.js';
import { RouteBook } from '../../router/route-book.js';
import { parseRouteTable, serializeRouteTable, type RouteTable } from '../../router/table.js';

const admin = { actor: 'admin', source: 'test' };

function withUsers(): { db: ReturnType<typeof openDb>; users: UserStore } {
  const db = openDb(':memory:');
  const users = new UserStore(db);
  for (const name of ['ann', 'ben']) users.add(admin, { name, role: 'viewer', email: null, passwordHash: null });
  return { db, users };
}

describe('next after sign-in', () => {
  it('keeps paths and platform URLs, sends everything else to /', () => {
    const ok: [string, string][] = [
      ['/', '/'],
      ['/app/x?y=1&z=2', '/app/x?y=1&z=2'],
      ['http://example.com/a', 'http://example.com/a'],
      ['https://web.example.com:8443/a?b', 'https://web.example.com:8443/a?b'],
    ];
    for (const [next, want] of ok) expect(safeNext(next, 'example.com'), next).toBe(want);
    const bad = [
      '//evil.example', '/\\evil.example', '\\\\evil.example', 'https://evil.example', 'http://example.com.evil.example/',
      'http://evilexample.com/', 'http://a.b.example.com/', 'javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,x',
      '/\t/evil.example', '/\n/evil.example', ' /x', 'http://user:pw@example.com/', 'ftp://example.com/', 'relative/path', '', null, undefined, `/${'a'.repeat(3000)}`,
    ];
    for (const next of bad) expect(safeNext(next, 'example.com'), String(next)).toBe('/');
  });
});

describe('CSRF tokens', () => {
  it('accept only the token made for this binding with this secret', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-csrf-'));
    try {
      const file = path.join(dir, 'secret');
      const secret = await loadSecret(file);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect(await loadSecret(file)).toEqual(secret);
      const binding = newBinding();
      const token = csrfToken(secret, binding);
      expect(checkCsrf(secret, binding, token)).toBe(true);
      expect(checkCsrf(secret, newBinding(), token)).toBe(false);
      expect(checkCsrf(Buffer.alloc(32, 1), binding, token)).toBe(false);
      expect(checkCsrf(secret, binding, undefined)).toBe(false);
      expect(checkCsrf(secret, undefined, token)).toBe(false);
      expect(checkCsrf(secret, 'short', csrfToken(secret, 'short'))).toBe(false);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sessions', () => {
  it('end after the idle or the absolute limit, on revoke, and when a new sign-in replaces them', () => {
    const { db, users } = withUsers();
    let now = 1_000_000;
    const s = new SessionStore(db, { idleMs: 1000, maxMs: 5000 }, () => now);
    const id = s.create('ann', '127.0.0.1');
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.user(id)).toBe('ann');
    expect(s.user(`${id.slice(0, -1)}x`)).toBeNull();
    expect(s.user('not an id')).toBeNull();
    now += 1001;
    expect(s.user(id)).toBeNull();
    // Used every 70 s (last use is written at most once a minute), it lives until its absolute limit.
    const long = new SessionStore(db, { idleMs: 120_000, maxMs: 300_000 }, () => now);
    const a = long.create('ann', '127.0.0.1');
    for (let i = 0; i < 4; i++) {
      now += 70_000;
      expect(long.user(a), `after ${i}`).toBe('ann');
    }
    now += 21_000;
    expect(long.user(a)).toBeNull(); // 301 s after it began: the absolute limit
    const b = long.create('ben', '127.0.0.1');
    const c = long.create('ann', '127.0.0.1', b);
    expect(long.user(b)).toBeNull();
    expect(long.user(c)).toBe('ann');
    expect(long.revoke(c)).toBe(true);
    expect(long.user(c)).toBeNull();
    // A password change or a lock ends them all.
    const d = long.create('ben', '127.0.0.1');
    users.setLocked(admin, 'ben', true);
    expect(long.user(d)).toBeNull();
    const e = long.create('ann', '127.0.0.1');
    users.setPasswordHash(admin, 'ann', 'scrypt$x');
    expect(long.user(e)).toBeNull();
    expect(JSON.stringify(db.prepare('SELECT * FROM sessions').all())).not.toMatch(new RegExp([a, b, c, d, e].join('|')));
  });
});

describe('sign-in limits', () => {
  it('block a user name after its limit, and an address after its own, surviving a restart', () => {
    const { db } = withUsers();
    let now = 0;
    const limits = { user: { failures: 3, windowMs: 60_000 }, address: { failures: 5, windowMs: 60_000 } };
    const l = new SignInLimiter(db, limits, () => now);
    for (let i = 0; i < 3; i++) expect(l.attempt('ann', '10.0.0.1')).toBeNull();
    expect(l.attempt('ann', '10.0.0.2')).toBe(60);
    expect(l.attempt('ben', '10.0.0.1')).toBeNull();
    // A new limiter on the same database (a restarted server) still knows.
    const again = new SignInLimiter(db, limits, () => now);
    expect(again.attempt('ann', '10.0.0.3')).not.toBeNull();
    expect(again.attempt('cat', '10.0.0.1')).toBeNull(); // the fifth from this address
    expect(again.attempt('dan', '10.0.0.1')).not.toBeNull();
    expect(again.attempt('dan', '10.0.0.4')).toBeNull();
    // A right password takes its attempt back and starts the user over.
    again.succeeded('dan', '10.0.0.4');
    expect(db.prepare("SELECT failures FROM sign_in_failures WHERE key = 'addr:10.0.0.4'").get()).toEqual({ failures: 0 });
    now += 60_001;
    expect(again.attempt('ann', '10.0.0.1')).toBeNull();
    expect((db.prepare('SELECT count(*) AS n FROM sign_in_failures').get() as { n: number }).n).toBe(2);
  });
});

describe('private apps in the route table and the router config', () => {
  const table: RouteTable = { version: 1, domain: 'localhost', apps: { open: { upstreams: ['127.0.0.1:5000'] }, shut: { upstreams: ['127.0.0.1:5001'], private: true } }, git: null };

  it('keep the private mark through the table; a table without it (older daemon) serves the app openly', () => {
    expect(parseRouteTable(serializeRouteTable(table))).toEqual(table);
    const old = parseRouteTable(JSON.stringify({ version: 1, domain: 'localhost', apps: { x: { upstreams: [], later: 1 } }, git: null }));
    expect(old.apps.x).toEqual({ upstreams: [] });
    expect(() => parseRouteTable(JSON.stringify({ ...table, apps: { x: { upstreams: [], private: 'yes' } } }))).toThrow(/invalid route table/);
  });

  it('renders the check only for private apps, and clears identity headers for all', () => {
    const conf = renderNginxConfig(table, { prefix: '/tmp/x', listen: '127.0.0.1', httpPort: 8080, https: null, maxPushBytes: 1000, auth: 'unix:/tmp/x/auth.sock' });
    expect(conf).toMatch(/map \$slipway_app \$slipway_gate \{\n {4}shut private;\n {4}default "";/);
    const proxiedByCheck = conf.split('location ').filter((l) => l.includes('auth_request /_auth/check'));
    expect(proxiedByCheck.map((l) => l.split(' ')[0])).toEqual(['@gated', '@gated_upgrade']);
    // Cleared for every request; only the locations behind the check pass what it set.
    expect(conf).toMatch(/\n {4}proxy_set_header X-Slipway-User "";/);
    const identity = conf.split('location ').filter((l) => l.includes('proxy_set_header X-Slipway-User $slipway_user;'));
    expect(identity.map((l) => l.split(' ')[0])).toEqual(['@gated', '@gated_upgrade']);
    expect(conf).toContain('proxy_cache_valid 200 401 403 2s;');
    // The App Manager and Portal pass the check without an app: any signed-in user, with identity.
    const web = renderNginxConfig({ ...table, web: 'unix:/tmp/x/web.sock' }, { prefix: '/tmp/x', listen: '127.0.0.1', httpPort: 8080, https: null, maxPushBytes: 1000, auth: 'unix:/tmp/x/auth.sock' });
    expect(web).toMatch(/location = \/Manager \{[^}]*\}[^}]*auth_request \/_auth\/check;\n\s+auth_request_set \$slipway_user/);
    // Without an auth server, private apps fail closed.
    const none = renderNginxConfig(table, { prefix: '/tmp/x', listen: '127.0.0.1', httpPort: 8080, https: null, maxPushBytes: 1000 });
    expect(none).not.toContain('auth_request');
    expect(none).toMatch(/location @gated \{\n\s+if \(\$slipway_gate = idle\) \{[^\n]*\}\n\s+return 503 "sign-in is not available/);
  });

  it('are marked by the route book from the access level at every write', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-book-'));
    try {
      const open = new Set<string>(['a']);
      const served: RouteTable[] = [];
      const book = new RouteBook(path.join(dir, 'routes.json'), 'localhost', async (t) => void served.push(t), (app) => !open.has(app));
      await book.replace({ a: [], b: [] });
      expect(served.at(-1)!.apps).toEqual({ a: { upstreams: [] }, b: { upstreams: [], private: true } });
      open.add('b');
      await book.refreshAccess();
      expect(served.at(-1)!.apps.b).toEqual({ upstreams: [] });
      expect(JSON.parse(await fs.readFile(path.join(dir, 'routes.json'), 'utf8')).apps.b).toEqual({ upstreams: [] });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
