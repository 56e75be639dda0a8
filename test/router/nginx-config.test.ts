import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNginxConfig, type NginxSettings } from '../../router/nginx-config.js';
import type { RouteTable } from '../../router/table.js';

const run = promisify(execFile);

const base = (prefix: string): NginxSettings => ({ prefix, listen: '127.0.0.1', httpPort: 18080, https: null, maxPushBytes: 50 * 1024 * 1024 });

function manyApps(n: number): RouteTable {
  const apps: RouteTable['apps'] = {};
  for (let i = 0; i < n; i++) apps[`app-${i}`] = { upstreams: i % 7 === 0 ? [] : [`127.0.0.1:${20000 + i}`, `127.0.0.1:${30000 + i}`] };
  return { version: 1, domain: 'apps.example.com', apps, git: 'unix:/run/slipway/git.sock' };
}

function longNames(n: number): RouteTable {
  const apps: RouteTable['apps'] = {};
  for (let i = 0; i < n; i++) apps[`a${String(i).padStart(29, 'x')}`] = { upstreams: [`127.0.0.1:${20000 + i}`] };
  return { version: 1, domain: 'apps.a-rather-long-company-domain.example.com', apps, git: null };
}

describe('renderNginxConfig (pure)', () => {
  const t: RouteTable = {
    version: 1,
    domain: 'localhost',
    apps: { web: { upstreams: ['127.0.0.1:5001', '127.0.0.1:5002'] }, idle: { upstreams: [] } },
    git: 'unix:/run/slipway/git.sock',
  };

  it('is deterministic: same table, same text, whatever the key order', () => {
    const reordered: RouteTable = { ...t, apps: { idle: { upstreams: [] }, web: t.apps.web! } };
    expect(renderNginxConfig(reordered, base('/srv/r'))).toBe(renderNginxConfig(t, base('/srv/r')));
  });

  it('gives each app with upstreams a keep-alive upstream block, idle below the apps own', () => {
    const c = renderNginxConfig(t, base('/srv/r'));
    expect(c).toMatch(/upstream app_web \{\n\s+server 127\.0\.0\.1:5001;\n\s+server 127\.0\.0\.1:5002;\n\s+keepalive 32;\n\s+keepalive_timeout 250ms;\n\s+keepalive_time 250ms;/);
    // Kept connections move to a new release within the given time (half the drain).
    expect(renderNginxConfig(t, { ...base('/srv/r'), upstreamKeepaliveTimeMs: 150 })).toContain('keepalive_timeout 150ms;\n    keepalive_time 150ms;');
    expect(c).not.toContain('upstream app_idle');
    expect(c).toContain('"idle.localhost" idle_idle;');
    expect(c).toContain('"web.localhost" app_web;');
    expect(c).toMatch(/upstream slipway_git \{\n\s+server unix:\/run\/slipway\/git\.sock;/);
  });

  it('with an idle listener (stable fronts): nginx serves it, logging nothing, keeping no connection, answering the idle 503', () => {
    const c = renderNginxConfig({ ...t, idle: '127.85.3.4:9' }, base('/srv/r'));
    const server = c.slice(c.indexOf('    listen 127.85.3.4:9;'));
    expect(server).toMatch(/^    listen 127\.85\.3\.4:9;\n    server_name _;\n    access_log off;\n    keepalive_timeout 0;\n/);
    expect(server).toContain('return 503 "app $slipway_app has no running web process: deploy it or run ps:start/ps:scale\\n";');
    // Everything else is as without it.
    expect(c.replace(/\n  server \{\n    listen 127\.85\.3\.4:9;[\s\S]*?\n  \}\n/, '\n')).toBe(renderNginxConfig(t, base('/srv/r')));
  });

  it('keeps its files under the prefix, never /etc/nginx, and hides its version', () => {
    const c = renderNginxConfig(t, base('/srv/r'));
    expect(c).toContain('pid /srv/r/nginx.pid;');
    expect(c).toContain('access_log /srv/r/logs/access.log slipway buffer=64k flush=1s;');
    expect(c).toContain('client_body_temp_path /srv/r/tmp/body;');
    expect(c).not.toMatch(/\/etc\/nginx|include /);
    expect(c).toContain('server_tokens off;');
    expect(c).toContain('client_max_body_size 52428800;');
    expect(c).toContain('worker_shutdown_timeout 3600000ms;');
    expect(c).toMatch(/client_header_timeout 20s;[\s\S]*client_body_timeout 60s;[\s\S]*keepalive_timeout 5s;/);
  });

  it('without TLS: one plain server, no redirect', () => {
    const c = renderNginxConfig(t, base('/srv/r'));
    expect(c).toContain('listen 127.0.0.1:18080;');
    expect(c).not.toContain('ssl');
    expect(c).not.toContain('return 308');
  });

  it('with TLS: TLS 1.2+ with HTTP/2, and plain HTTP redirected with 308 to the same host, path and query', () => {
    const c = renderNginxConfig(t, { ...base('/srv/r'), https: { port: 8443, cert: '/srv/tls/cert.pem', key: '/srv/tls/key.pem' } });
    expect(c).toContain('listen 127.0.0.1:8443 ssl http2;');
    expect(c).toContain('ssl_protocols TLSv1.2 TLSv1.3;');
    // Resumed sessions from a server-side cache; no tickets (their key would outlive sessions).
    expect(c).toContain('ssl_session_cache shared:slipway_tls:10m;');
    expect(c).toContain('ssl_session_tickets off;');
    expect(c).toContain('return 308 https://$host:8443$request_uri;');
    expect(c).not.toMatch(/TLSv1 |TLSv1\.1/);
    const on443 = renderNginxConfig(t, { ...base('/srv/r'), https: { port: 443, cert: '/c.pem', key: '/k.pem' } });
    expect(on443).toContain('return 308 https://$host$request_uri;');
  });

  it('keeps /_git/ on plain HTTP only when asked', () => {
    const tls = { port: 8443, cert: '/c.pem', key: '/k.pem' };
    const strict = renderNginxConfig(t, { ...base('/srv/r'), https: tls });
    const open = renderNginxConfig(t, { ...base('/srv/r'), https: tls, gitOverPlainHttp: true });
    expect(strict.match(/location \^~ \/_git\//g)).toHaveLength(1);
    expect(open.match(/location \^~ \/_git\//g)).toHaveLength(2);
  });

  it('answers 503 for git without an upstream instead of proxying nowhere', () => {
    const c = renderNginxConfig({ ...t, git: null }, base('/srv/r'));
    expect(c).not.toContain('slipway_git');
    expect(c).toContain('Retry-After 10 always');
  });

  it('serves /Manager, /Portal and /_web/ from the web socket on the platform host only, never on plain HTTP beside TLS', () => {
    const c = renderNginxConfig({ ...t, web: 'unix:/run/slipway/web.sock' }, base('/srv/r'));
    expect(c).toMatch(/upstream slipway_web \{\n\s+server unix:\/run\/slipway\/web\.sock;/);
    for (const loc of ['= /Manager', '^~ /Manager/', '= /Portal', '^~ /Portal/', '^~ /_web/']) {
      const start = c.indexOf(`location ${loc} {`);
      const block = c.slice(start, c.indexOf('\n    }', start));
      expect(block, loc).toMatch(/if \(\$slipway_host_target != ""\) \{ return 418; \}/);
      expect(block, loc).toContain('proxy_buffering off;');
    }
    expect(c.match(/proxy_pass http:\/\/slipway_web;/g)).toHaveLength(5);
    // The pages get the session cookie (their CSRF token binds to it), with the rest of the headers; apps never do.
    expect(c.match(/proxy_set_header Cookie \$http_cookie;/g)).toHaveLength(5);
    // Without an auth server nothing sets identity: cleared for the server and each page location.
    expect(c.match(/proxy_set_header X-Slipway-User "";/g)).toHaveLength(6);
    expect(c).not.toContain('$slipway_user');
    expect(c).toContain('  proxy_set_header Cookie $slipway_app_cookie;');
    const down = renderNginxConfig({ ...t, web: null }, base('/srv/r'));
    expect(down).not.toContain('upstream slipway_web');
    expect(down).toContain('the App Manager is not available');
    const tls = renderNginxConfig({ ...t, web: 'unix:/run/slipway/web.sock' }, { ...base('/srv/r'), https: { port: 8443, cert: '/c.pem', key: '/k.pem' }, gitOverPlainHttp: true });
    expect(tls.match(/location = \/Manager \{/g)).toHaveLength(1);
  });

  it('renders hundreds of apps, idle ones without an upstream block', () => {
    const c = renderNginxConfig(manyApps(300), base('/srv/r'));
    expect(c.match(/^  upstream app_/gm)).toHaveLength(300 - Math.ceil(300 / 7));
    expect(c).toContain('"app-299.apps.example.com" app_app-299;');
    expect(c).toContain('"app-0.apps.example.com" idle_app-0;');
  });

  it('refuses settings that could inject directives', () => {
    expect(() => renderNginxConfig(t, { ...base('/srv/r; include /etc/passwd') })).toThrow(/cannot go into the nginx config/);
    expect(() => renderNginxConfig({ ...t, git: 'unix:/tmp/x;}' }, base('/srv/r'))).toThrow(/cannot go into the nginx config/);
    expect(() => renderNginxConfig(t, { ...base('/srv/r'), https: { port: 8443, cert: '/a b.pem', key: '/k' } })).toThrow(/E_CONFIG|cannot go/);
  });
});

describe('rendered configs pass nginx -t (the real binary)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-nginx-t-'));
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=x', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')]);
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, RouteTable, Partial<NginxSettings>]> = [
    ['an empty table', { version: 1, domain: 'localhost', apps: {}, git: null }, {}],
    ['many apps with path and host routes', manyApps(200), {}],
    ['only idle apps', { version: 1, domain: 'localhost', apps: { a: { upstreams: [] } }, git: null }, {}],
    ['fronted apps and the idle listener', { version: 1, domain: 'localhost', apps: { a: { upstreams: ['127.85.0.1:9'] }, b: { upstreams: ['127.85.0.2:9'], private: true } }, git: null, idle: '127.85.3.4:9' }, { auth: 'unix:/run/slipway/auth.sock' }],
    ['the web pages served', { ...manyApps(5), web: 'unix:/run/slipway/web.sock' }, {}],
    ['TLS on', manyApps(20), { https: { port: 18443, cert: 'CERT', key: 'KEY' } }],
    ['TLS on, git kept on plain HTTP', manyApps(5), { https: { port: 18443, cert: 'CERT', key: 'KEY' }, gitOverPlainHttp: true }],
    ['private apps with the auth server', { version: 1, domain: 'localhost', apps: { a: { upstreams: ['127.0.0.1:5000'], private: true }, b: { upstreams: [], private: true }, c: { upstreams: ['127.0.0.1:5001'] } }, git: null }, { auth: 'unix:/run/slipway/auth.sock' }],
    ['private apps on TLS, git kept on plain HTTP', { version: 1, domain: 'localhost', apps: { a: { upstreams: ['127.0.0.1:5000'], private: true } }, git: '127.0.0.1:9999' }, { https: { port: 18443, cert: 'CERT', key: 'KEY' }, gitOverPlainHttp: true, auth: 'unix:/run/slipway/auth.sock' }],
    ['private apps without an auth server', { version: 1, domain: 'localhost', apps: { a: { upstreams: ['127.0.0.1:5000'], private: true } }, git: null }, {}],
    // The Host map holds each app's host with and without the router's ports: its keys must fit.
    ['30-letter app names on a long domain, TLS on', longNames(40), { https: { port: 18443, cert: 'CERT', key: 'KEY' } }],
    ['a thousand apps, TLS on', manyApps(1000), { https: { port: 18443, cert: 'CERT', key: 'KEY' } }],
    ['IPv6 listen and git over TCP', { version: 1, domain: 'localhost', apps: { a: { upstreams: ['[::1]:5000'] } }, git: '127.0.0.1:9999' }, { listen: '::1' }],
  ];
  for (const [name, table, extra] of cases) {
    it(`accepts ${name}`, async () => {
      const prefix = path.join(dir, name.replace(/[^a-z0-9]+/gi, '-'));
      for (const d of ['logs', 'tmp']) await fs.mkdir(path.join(prefix, d), { recursive: true });
      const https = extra.https ? { ...extra.https, cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') } : null;
      const conf = path.join(prefix, 'nginx.conf');
      await fs.writeFile(conf, renderNginxConfig(table, { ...base(prefix), ...extra, https }));
      const r = await run('nginx', ['-t', '-q', '-p', prefix, '-e', path.join(prefix, 'logs', 'error.log'), '-c', conf]).then(
        () => '',
        (e: { stderr: string }) => e.stderr,
      );
      expect(r).toBe('');
    });
  }
});
