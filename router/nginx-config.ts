import path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import type { RouteTable } from './table.js';

/**
 * Rendering the route table into an nginx configuration (README "How it works", docs/http.md).
 * The route table stays the single source of truth; this pure function is the only place that
 * knows nginx's syntax. Routing: exact host match first, then the first segment of the raw
 * request path, full path forwarded unchanged (test/router/proxy.test.ts holds the cases).
 */
export interface NginxSettings {
  /** nginx's own directory (-p): pid, logs and temp files live under it, never /etc/nginx. */
  prefix: string;
  /** Listen address ("127.0.0.1", "0.0.0.0", "::1"). */
  listen: string;
  httpPort: number;
  https: { port: number; cert: string; key: string } | null;
  /** With https: keep /_git/ on plain HTTP instead of redirecting it (the operator's choice). */
  gitOverPlainHttp?: boolean;
  /** client_max_body_size for /_git/ (the push-size limit). */
  maxPushBytes: number;
  /**
   * How long old workers may finish in-flight requests and websockets after a reload; default 1 h.
   * Long on purpose: a git push over HTTP triggers its own deploy's reload and must outlive it.
   * Websockets to a replaced release end anyway when its container stops (after drainMs).
   */
  reloadGraceMs?: number;
  /** Idle keep-alive to app upstreams; must stay below the apps' own (Node's default is 5 s). */
  upstreamKeepaliveMs?: number;
  /**
   * The longest a kept app upstream connection is used (nginx `keepalive_time`): after a deploy
   * switch it bounds how long requests still reach the old containers through connections opened
   * before it (docs/router.md, "Stable fronts"). Below the drain time, so the old containers are
   * idle when they stop.
   */
  upstreamKeepaliveTimeMs?: number;
  /** Slow-client bounds (same defaults as the Node router had: 20 s headers, 60 s body, 5 s idle). */
  clientHeaderTimeoutMs?: number;
  clientBodyTimeoutMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * The auth server (`unix:/abs/path.sock`) nginx asks before each request to a private app and
   * sends `/_auth/` of every host to (README "Users and access"). Absent: private apps answer 503.
   */
  auth?: string;
  /** Worker user when the master runs as root (so workers can reach the daemon's git socket). */
  user?: string | null;
  workerProcesses?: number | 'auto';
}

export const NGINX_DEFAULTS = {
  upstreamKeepaliveMs: 4000,
  upstreamKeepaliveTimeMs: 250,
  clientHeaderTimeoutMs: 20_000,
  clientBodyTimeoutMs: 60_000,
  keepaliveTimeoutMs: 5000,
  reloadGraceMs: 3_600_000,
} as const;

/** Files under the prefix the renderer points nginx at; the supervisor uses the same ones. */
export function nginxFiles(prefix: string) {
  return {
    conf: path.join(prefix, 'nginx.conf'),
    pid: path.join(prefix, 'nginx.pid'),
    errorLog: path.join(prefix, 'logs', 'error.log'),
    accessLog: path.join(prefix, 'logs', 'access.log'),
    temp: path.join(prefix, 'tmp'),
  };
}

/** Texts shared with the contract (README "Addresses", docs/http.md). */
export const TEXTS = {
  notFound: 'app not found',
  idle: (app: string) => `app ${app} has no running web process: deploy it or run ps:start/ps:scale`,
  badGateway: (app: string) => `bad gateway: ${app} did not answer`,
  gitDown: 'git over HTTP is not available: the platform daemon is not running; start it with `slipway server`',
  authDown: 'sign-in is not available: the auth server is not running; start it with `slipway server`',
  webDown: 'the App Manager is not available: the platform daemon is not running; start it with `slipway server`',
};

/**
 * How long nginx reuses the auth server's answer for one session cookie and app: access changes
 * apply within this (the contract allows 5 s), and a burst of requests asks only once.
 */
export const AUTH_CACHE_SECONDS = 2;

/**
 * Paths and addresses end up inside the config. Only a plain character set passes, so nothing in a
 * setting or the route table can close a directive and inject another (docs/security.md).
 */
const SAFE = /^[A-Za-z0-9._/@+:\[\]-]+$/;
function safe(what: string, value: string): string {
  if (!SAFE.test(value) || value.includes('..')) {
    throw new SlipwayError('E_CONFIG', `${what} ${JSON.stringify(value)} cannot go into the nginx config: use a path of letters, digits and . _ / @ + - only`);
  }
  return value;
}

function port(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new SlipwayError('E_CONFIG', `${what} must be a port 1-65535 for nginx, not ${n}`);
  return n;
}

function listenAddress(listen: string, p: number): string {
  const host = safe('listen address', listen);
  return host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`;
}

const seconds = (ms: number): string => `${Math.max(1, Math.ceil(ms / 1000))}s`;
const regexEscape = (s: string): string => s.replace(/[.\-]/g, (c) => `\\${c}`);
/** A double-quoted nginx string; callers only pass text without quotes, backslashes or `$`-less secrets. */
const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

// Mozilla "intermediate": TLS 1.2 AEAD suites with forward secrecy; TLS 1.3 suites are fixed by OpenSSL.
const CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384';

/**
 * The TLS server's protocol settings, besides its certificate (bench/router-nginx.mjs gives its
 * hand-written baseline the same ones, so the two compare like for like).
 */
export const TLS_SETTINGS: readonly string[] = [
  'ssl_protocols TLSv1.2 TLSv1.3;',
  `ssl_ciphers ${CIPHERS};`,
  'ssl_prefer_server_ciphers off;',
  // Resumed sessions skip the certificate signature: a returning client's handshake costs far less.
  'ssl_session_cache shared:slipway_tls:10m;',
  'ssl_session_timeout 1d;',
  // Tickets off: their key would live for the master's lifetime, weakening forward secrecy.
  'ssl_session_tickets off;',
];

function upstreamBlocks(t: RouteTable, keepaliveMs: number, keepaliveTimeMs: number, auth: string | undefined): string[] {
  const out: string[] = [];
  for (const [app, route] of Object.entries(t.apps).sort(([a], [b]) => a.localeCompare(b))) {
    if (route.upstreams.length === 0) continue;
    out.push(`  upstream app_${app} {`);
    for (const u of route.upstreams) out.push(`    server ${safe(`upstream of ${app}`, u)};`);
    // An app's upstream is usually its stable front (docs/router.md, "Stable fronts"): a kept
    // connection stays with the container the kernel picked when it was opened, so new
    // containers (a scale up, a deploy) get a share only of new connections, and old ones keep
    // getting requests on the connections they have. Opening a new one after `keepalive_time`
    // spreads a busy app over new replicas soon and moves every request to the new release
    // within that time of a switch, at the cost of a loopback connect per connection and period.
    // Idle no longer than that either: nginx checks `keepalive_time` only when it puts a
    // connection back, so an idle one would reach the old release after the switch.
    const time = Math.max(1, Math.round(keepaliveTimeMs));
    out.push('    keepalive 32;', `    keepalive_timeout ${Math.min(keepaliveMs, time)}ms;`, `    keepalive_time ${time}ms;`, '  }');
  }
  if (auth !== undefined) out.push('  upstream slipway_auth {', `    server ${safe('auth upstream', auth)};`, '    keepalive 16;', '  }');
  // Idle private apps are answered after the sign-in check, from @bad_gateway: an upstream
  // with no live server fails at once, without a connection attempt.
  out.push('  upstream slipway_idle {', '    server 127.0.0.1:9 down;', '  }');
  if (t.git !== null) {
    out.push('  upstream slipway_git {', `    server ${safe('git upstream', t.git)};`, '    keepalive 4;', '  }');
  }
  if (t.web) out.push('  upstream slipway_web {', `    server ${safe('web upstream', t.web)};`, '    keepalive 8;', '  }');
  return out;
}

/**
 * Room for the Host map's keys (each app's host, also with each router port): nginx refuses a
 * map whose longest key does not fit a hash bucket (64 bytes by default: a 30-letter app on a
 * 16-letter domain with a port would not) or whose keys need more than 2048 buckets.
 */
function mapHashSizes(t: RouteTable, ports: number[]): string[] {
  const apps = Object.keys(t.apps);
  const longest = Math.max(0, ...apps.map((app) => `${app}.${t.domain}:65535`.length));
  // An entry is a pointer, the key's length (2 bytes) and the key, aligned to 8; a bucket ends with a pointer.
  const bucket = Math.max(64, Math.ceil((8 + Math.ceil((longest + 2) / 8) * 8 + 8) / 64) * 64);
  return [`  map_hash_bucket_size ${bucket};`, `  map_hash_max_size ${Math.max(2048, 4 * apps.length * (1 + ports.length))};`];
}

/**
 * The maps that turn Host and path into a target, evaluated lazily per request. Every request
 * evaluates the Host ones and those keyed on the target: they are hash lookups, not regexes
 * (docs/router.md, "Instructions per request"). `ports`: the router's own, which clients put
 * in Host.
 */
function routingMaps(t: RouteTable, ports: number[]): string[] {
  const domain = t.domain.toLowerCase();
  const apps = Object.entries(t.apps).sort(([a], [b]) => a.localeCompare(b));
  const target = (app: string, ups: string[]) => (ups.length === 0 ? `idle_${app}` : `app_${app}`);
  const idle = apps.filter(([, r]) => r.upstreams.length === 0);
  return [
    // Exact, case-insensitive host match: never a suffix, substring or trailing-dot variant.
    // Host as clients send it to this router (no port, or one it listens on) is looked up as it
    // is; any other form has its port taken off by a regex first.
    '  map $http_host $slipway_host_target {',
    ...apps.flatMap(([app, r]) => ['', ...ports.map((p) => `:${p}`)].map((p) => `    ${q(`${app}.${domain}${p}`)} ${target(app, r.upstreams)};`)),
    '    default $slipway_host_target_any_port;',
    '  }',
    '  map $slipway_hostname $slipway_host_target_any_port {',
    ...apps.map(([app, r]) => `    ${q(`${app}.${domain}`)} ${target(app, r.upstreams)};`),
    '    default "";',
    '  }',
    // The Host header without its port; anything else (IPv6 literal, junk) routes by path only.
    '  map $http_host $slipway_hostname {',
    '    "~^(?<h>[^:\\[\\]]+)(?::[0-9]{1,5})?$" $h;',
    '    default "";',
    '  }',
    // First segment of the raw request target, as the app will receive it.
    '  map $request_uri $slipway_path_seg {',
    '    "~^/_git/" "_git";',
    '    "~^/(?<s>[a-z][a-z0-9-]{0,29})(?:[/?]|$)" $s;',
    '    default "";',
    '  }',
    '  map $slipway_path_seg $slipway_path_target {',
    ...apps.map(([app, r]) => `    ${app} ${target(app, r.upstreams)};`),
    '    default "";',
    '  }',
    '  map $slipway_host_target $slipway_target {',
    '    "" $slipway_path_target;',
    '    default $slipway_host_target;',
    '  }',
    '  map $slipway_target $slipway_app {',
    ...apps.map(([app, r]) => `    ${target(app, r.upstreams)} ${app};`),
    '    default "";',
    '  }',
    '  map $slipway_target $slipway_idle {',
    ...idle.map(([app]) => `    idle_${app} 1;`),
    '    default "";',
    '  }',
    // Apps that need sign-in (the others never cause a check, README "Users and access"), and
    // public apps with nothing running: a running public app, the usual request, is one lookup
    // and one `if` away from its upstream (docs/router.md, "Instructions per request").
    '  map $slipway_app $slipway_gate {',
    ...apps.filter(([, r]) => r.private === true).map(([app]) => `    ${app} private;`),
    ...apps.filter(([, r]) => r.private !== true && r.upstreams.length === 0).map(([app]) => `    ${app} idle;`),
    '    default "";',
    '  }',
    '  map $slipway_target $slipway_private_target {',
    ...idle.map(([app]) => `    idle_${app} slipway_idle;`),
    '    default $slipway_target;',
    '  }',
    // Which name an unknown app's 404 may repeat: only a valid app name, never client junk.
    '  map $slipway_hostname $slipway_host_label {',
    `    "~*^(?<l>[a-z][a-z0-9-]{0,29})\\.${regexEscape(domain)}$" $l;`,
    '    default "";',
    '  }',
    '  map $slipway_host_label $slipway_unknown {',
    '    "" $slipway_path_seg;',
    '    default $slipway_host_label;',
    '  }',
    '  map $slipway_unknown $slipway_named {',
    '    "~^[a-z][a-z0-9-]{0,29}$" ": $slipway_unknown";',
    '    default "";',
    '  }',
  ];
}

/** The scheme and port of the server block a request came in on (each listens on one port). */
interface Listener {
  scheme: 'http' | 'https';
  port: number;
}

/**
 * The headers every upstream gets. The platform's own pages are given the client's cookies
 * whole: their CSRF token binds to the session cookie (docs/web.md, "CSRF"). They and private
 * apps repeat the whole set in their locations (nginx drops inherited proxy_set_header at the
 * first one of a location); a variable chosen per location would not do, as the sign-in check's subrequest
 * runs the server's `set`s again over the request's shared variables. Proto and port are the
 * server's own, written out: the same values as `$scheme` and `$server_port`, without their
 * cost per request (docs/router.md, "Instructions per request").
 */
function proxyHeaders(indent: string, on: Listener, { cookie = '$slipway_app_cookie', checked = false } = {}): string[] {
  return [
    'proxy_http_version 1.1;',
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    `proxy_set_header X-Forwarded-Proto ${on.scheme};`,
    'proxy_set_header X-Forwarded-Host $http_host;',
    `proxy_set_header X-Forwarded-Port ${on.port};`,
    'proxy_set_header X-Request-Id $slipway_request_id;',
    // Identity headers only ever come from the platform's auth check, never from the client:
    // cleared (empty, so not sent), except after the check (`checked`: private apps and the
    // platform's pages), which sets them. Written out rather than a variable set empty in the
    // server: one `set` and one lookup less per request (docs/router.md).
    `proxy_set_header X-Slipway-User ${checked ? '$slipway_user' : '""'};`,
    `proxy_set_header X-Slipway-Groups ${checked ? '$slipway_groups' : '""'};`,
    // Apps never see the platform's session cookie (it signs in to every app).
    `proxy_set_header Cookie ${cookie};`,
    'proxy_set_header Upgrade $http_upgrade;',
    'proxy_set_header Connection $slipway_connection;',
    'proxy_set_header Proxy-Connection "";',
    'proxy_set_header Proxy-Authorization "";',
  ].map((l) => indent + l);
}

/**
 * What serves an app request once Host or path picked the target. Upgrades jump to their own
 * location first, then private and idle apps to theirs, so each of the four keeps its few
 * directives.
 */
function appBody(indent: string, upgrades: 'jump' | 'here'): string[] {
  return [
    // Before the returns, so an app's 503s are in its router log too.
    'set $slipway_route $slipway_app;',
    `if ($slipway_target = "") { return 404 ${q(`${TEXTS.notFound}$slipway_named\n`)}; }`,
    // Upgrades go through @upgrade, which never keeps the client connection: an app that
    // declines the upgrade gets its answer relayed, then the connection closes.
    ...(upgrades === 'jump' ? ['error_page 419 = @upgrade;', 'if ($http_upgrade != "") { return 419; }'] : []),
    `error_page 420 = ${upgrades === 'jump' ? '@gated' : '@gated_upgrade'};`,
    'if ($slipway_gate) { return 420; }',
    ...(upgrades === 'here' ? ['keepalive_timeout 0;'] : []),
    'error_page 502 504 = @bad_gateway;',
    'proxy_pass http://$slipway_target;',
  ].map((l) => indent + l);
}

/**
 * A private app, or a public one with nothing running (`$slipway_gate`). The idle public app is
 * answered at once. For a private one nginx asks the auth server first (auth_request, cached per
 * session cookie and app); nothing here runs before that check, so an anonymous request learns
 * nothing of the app, not even whether it is idle.
 */
function gatedBody(indent: string, upgrades: 'jump' | 'here', auth: boolean, on: Listener): string[] {
  const idle = [...(upgrades === 'here' ? ['keepalive_timeout 0;'] : []), `if ($slipway_gate = idle) { return 503 ${q(`${TEXTS.idle('$slipway_app')}\n`)}; }`];
  if (!auth) return [...idle, `return 503 ${q(`${TEXTS.authDown}\n`)};`].map((l) => indent + l);
  return [
    ...idle,
    'auth_request /_auth/check;',
    'auth_request_set $slipway_user $upstream_http_x_slipway_user;',
    'auth_request_set $slipway_groups $upstream_http_x_slipway_groups;',
    // The check's subrequest shares this request's variables and runs the server's
    // `set $slipway_route ""` again: name the app for the access log once it is back.
    'auth_request_set $slipway_route $slipway_app;',
    'error_page 401 = @signin;',
    'error_page 403 = @hidden;',
    // auth_request turns an unreachable auth server into 500.
    'error_page 500 = @auth_down;',
    'set $slipway_route $slipway_app;',
    'error_page 502 504 = @bad_gateway;',
    'proxy_pass http://$slipway_private_target;',
  ].map((l) => indent + l).concat(proxyHeaders(indent, on, { checked: true }));
}

/**
 * `/_auth/` of every host (`entry`), and the check nginx makes for private apps with its answers
 * (`internal`). With HTTPS, the plain-HTTP server keeps only what follows /_git/: sign-in pages
 * are never served without TLS.
 */
function authLocations(auth: boolean): { entry: string[]; internal: string[] } {
  const toAuth = (indent: string): string[] =>
    [
      'proxy_http_version 1.1;',
      'proxy_set_header Connection "";',
      'proxy_set_header Host $http_host;',
      'proxy_set_header X-Real-IP $remote_addr;',
      'proxy_set_header X-Forwarded-Proto $scheme;',
      'proxy_set_header X-Slipway-User "";',
      'proxy_set_header X-Slipway-Groups "";',
    ].map((l) => indent + l);
  if (!auth) {
    return {
      entry: ['    location ^~ /_auth/ {', '      set $slipway_route _auth;', '      error_page 503 = @auth_down;', '      return 503;', '    }'],
      internal: ['    location @signin {', '      error_page 503 = @auth_down;', '      return 503;', '    }'],
    };
  }
  return {
    entry: [
      '    location ^~ /_auth/ {',
      '      set $slipway_route _auth;',
      '      client_max_body_size 16k;',
      ...toAuth('      '),
      '      proxy_set_header X-Slipway-App "";',
      '      proxy_set_header X-Slipway-Uri "";',
      '      error_page 502 504 = @auth_down;',
      '      proxy_pass http://slipway_auth;',
      '    }',
    ],
    internal: [
      '    location = /_auth/check {',
      '      internal;',
      ...toAuth('      '),
      '      proxy_method GET;',
      '      proxy_pass_request_body off;',
      '      proxy_set_header Content-Length "";',
      '      proxy_set_header X-Slipway-App $slipway_app;',
      '      proxy_cache slipway_auth;',
      '      proxy_cache_key "$slipway_app $cookie_slipway_session";',
      // The auth server marks every answer no-store (for browsers); this cache is nginx's own.
      '      proxy_ignore_headers Cache-Control Expires X-Accel-Expires;',
      // When an answer expires under load, one request asks again and the others keep the old one.
      '      proxy_cache_lock on;',
      '      proxy_cache_use_stale updating;',
      `      proxy_cache_valid 200 401 403 ${AUTH_CACHE_SECONDS}s;`,
      '      proxy_pass http://slipway_auth;',
      '    }',
      // No session: the auth server says 302 to the sign-in page for browsers, 401 otherwise.
      '    location @signin {',
      '      rewrite ^ /_auth/required break;',
      ...toAuth('      '),
      '      proxy_method GET;',
      '      proxy_pass_request_body off;',
      '      proxy_set_header Content-Length "";',
      '      proxy_set_header X-Slipway-Uri $request_uri;',
      '      error_page 502 504 = @auth_down;',
      '      proxy_pass http://slipway_auth;',
      '    }',
    ],
  };
}

/**
 * The App Manager and Portal on the platform's own host (docs/web.md): /Manager, /Portal and
 * /_web/ (assets, API, event streams). On an app's host the app keeps these paths.
 */
export const WEB_PATHS = ['= /Manager', '^~ /Manager/', '= /Portal', '^~ /Portal/', '^~ /_web/'] as const;

function webLocations(t: RouteTable, auth: boolean, on: Listener): string[] {
  // The sign-in check with no app: any signed-in user passes, and the page gets who it is.
  const check = auth
    ? ['      auth_request /_auth/check;', '      auth_request_set $slipway_user $upstream_http_x_slipway_user;', '      auth_request_set $slipway_groups $upstream_http_x_slipway_groups;', '      auth_request_set $slipway_route _web;', '      error_page 401 = @signin;', '      error_page 500 = @auth_down;']
    : [];
  const serve = t.web
    ? [
        ...check,
        ...proxyHeaders('      ', on, { cookie: '$http_cookie', checked: auth }),
        // Event streams (build logs, logs) must reach the browser line by line.
        '      proxy_buffering off;',
        '      error_page 502 504 = @web_down;',
        '      proxy_pass http://slipway_web;',
      ]
    : ['      error_page 503 = @web_down;', '      return 503;'];
  return WEB_PATHS.flatMap((p) => [
    `    location ${p} {`,
    '      error_page 418 = @app;',
    '      if ($slipway_host_target != "") { return 418; }',
    '      set $slipway_route _web;',
    ...serve,
    '    }',
  ]);
}

function locations(t: RouteTable, s: NginxSettings, on: Listener): string[] {
  const git =
    t.git === null
      ? ['      error_page 503 = @git_down;', '      return 503;']
      : [
          `      client_max_body_size ${s.maxPushBytes};`,
          // Pushes stream both ways: receive-pack reports while it still reads the pack.
          '      proxy_request_buffering off;',
          '      proxy_buffering off;',
          '      error_page 502 504 = @git_down;',
          '      proxy_pass http://slipway_git;',
        ];
  const auth = authLocations(s.auth !== undefined);
  return [
    '    location / {',
    ...appBody('      ', 'jump'),
    '    }',
    // Before /_git/: a plain-HTTP server kept for git only (gitOverPlainHttp) never serves the pages.
    ...webLocations(t, s.auth !== undefined, on),
    ...auth.entry,
    '    location ^~ /_git/ {',
    // Host routing wins over the path: app.domain/_git/ belongs to the app.
    '      error_page 418 = @app;',
    '      if ($slipway_host_target != "") { return 418; }',
    '      set $slipway_route _git;',
    ...git,
    '    }',
    '    location @app {',
    ...appBody('      ', 'jump'),
    '    }',
    '    location @upgrade {',
    ...appBody('      ', 'here'),
    '    }',
    '    location @gated {',
    ...gatedBody('      ', 'jump', s.auth !== undefined, on),
    '    }',
    '    location @gated_upgrade {',
    ...gatedBody('      ', 'here', s.auth !== undefined, on),
    '    }',
    ...auth.internal,
    // Signed in without the right to view: the very answer of an app that does not exist.
    '    location @hidden {',
    `      return 404 ${q(`${TEXTS.notFound}$slipway_named\n`)};`,
    '    }',
    '    location @auth_down {',
    '      add_header Retry-After 10 always;',
    `      return 503 ${q(`${TEXTS.authDown}\n`)};`,
    '    }',
    '    location @bad_request {',
    `      return 400 ${q('bad request: unsupported Transfer-Encoding\n')};`,
    '    }',
    '    location @bad_gateway {',
    `      if ($slipway_idle) { return 503 ${q(`${TEXTS.idle('$slipway_app')}\n`)}; }`,
    `      return 502 ${q(`${TEXTS.badGateway('$slipway_app')}\n`)};`,
    '    }',
    '    location @web_down {',
    '      add_header Retry-After 10 always;',
    `      return 503 ${q(`${TEXTS.webDown}\n`)};`,
    '    }',
    '    location @git_down {',
    '      add_header Retry-After 10 always;',
    `      return 503 ${q(`${TEXTS.gitDown}\n`)};`,
    '    }',
  ];
}

/**
 * nginx's own answer for a fronted app with nothing healthy (docs/router.md, "Stable fronts"):
 * the app's front leads here instead of to containers, so the first and the last healthy
 * process change only the kernel's rules, never this config. The request arrives as the app
 * would get it (same Host and path), so the same maps name the app, and the client gets the very
 * 503 an unfronted idle app gets. Its connection closes after the answer: nginx never keeps one
 * that the app's next healthy process should take over. Not logged: the router's own server
 * logs the request.
 */
function idleServer(listen: string): string[] {
  const answer = [
    `      if ($slipway_target = "") { return 404 ${q(`${TEXTS.notFound}$slipway_named\n`)}; }`,
    `      return 503 ${q(`${TEXTS.idle('$slipway_app')}\n`)};`,
  ];
  return [
    '  server {',
    `    listen ${safe('idle listener', listen)};`,
    '    server_name _;',
    '    access_log off;',
    '    keepalive_timeout 0;',
    // A client's HTTP/1.0 request without Host reaches the app without one too, which nginx
    // refuses over HTTP/1.1 before any location: its path still names the app.
    '    error_page 400 = @idle;',
    '    location / {',
    ...answer,
    '    }',
    '    location @idle {',
    ...answer,
    '    }',
    '  }',
  ];
}

/** Requests nginx would accept but the router must not (docs/http.md, bad-inputs). */
const STRICT = [
  // Absolute-form and asterisk targets: the authority could disagree with Host.
  '    if ($request !~ "^[A-Z]+ /") { return 400; }',
  // nginx says 501 to an unknown Transfer-Encoding; to a client it is a bad request like the
  // rest. (Only 501: a 400 from a broken request line has no URI a named location could use.)
  '    error_page 501 =400 @bad_request;',
];

/**
 * The whole nginx.conf for one route table. Pure: same table and settings, same text, so a
 * change that renders identically needs no reload.
 */
export function renderNginxConfig(t: RouteTable, s: NginxSettings): string {
  const f = nginxFiles(safe('router directory', s.prefix));
  const keepaliveMs = s.upstreamKeepaliveMs ?? NGINX_DEFAULTS.upstreamKeepaliveMs;
  const httpListen = listenAddress(s.listen, port('HTTP port', s.httpPort));
  const tls = s.https
    ? { listen: listenAddress(s.listen, port('HTTPS port', s.https.port)), cert: safe('TLS certificate', s.https.cert), key: safe('TLS key', s.https.key), port: s.https.port }
    : null;
  if (!Number.isInteger(s.maxPushBytes) || s.maxPushBytes < 1) throw new SlipwayError('E_CONFIG', `maxPushBytes must be a positive integer, not ${s.maxPushBytes}`);

  const common = [
    '    server_name _;',
    '    recursive_error_pages on;',
    '    set $slipway_route "";',
    ...STRICT,
  ];
  const ports = tls ? [s.httpPort, tls.port] : [s.httpPort];
  const servers: string[] = [];
  if (tls) {
    servers.push(
      '  server {',
      `    listen ${tls.listen} ssl http2;`,
      `    ssl_certificate ${tls.cert};`,
      `    ssl_certificate_key ${tls.key};`,
      ...TLS_SETTINGS.map((l) => `    ${l}`),
      ...common,
      ...proxyHeaders('    ', { scheme: 'https', port: tls.port }),
      ...locations(t, s, { scheme: 'https', port: tls.port }),
      '  }',
    );
    const portSuffix = tls.port === 443 ? '' : `:${tls.port}`;
    servers.push(
      '  server {',
      `    listen ${httpListen};`,
      ...common,
      '    location / {',
      `      return 308 https://$host${portSuffix}$request_uri;`,
      '    }',
    );
    if (s.gitOverPlainHttp) {
      // Only /_git/ itself stays on plain HTTP; host-routed apps still redirect.
      servers.push(...proxyHeaders('    ', { scheme: 'http', port: s.httpPort }), ...locations(t, s, { scheme: 'http', port: s.httpPort }).filter((_, i, all) => i >= all.indexOf('    location ^~ /_git/ {')));
    }
    servers.push('  }');
  } else {
    servers.push('  server {', `    listen ${httpListen};`, ...common, ...proxyHeaders('    ', { scheme: 'http', port: s.httpPort }), ...locations(t, s, { scheme: 'http', port: s.httpPort }), '  }');
  }

  const lines = [
    '# Generated by Slipway from the route table: do not edit, every route change rewrites it.',
    ...(s.user ? [`user ${safe('worker user', s.user)};`] : []),
    `worker_processes ${s.workerProcesses ?? 'auto'};`,
    `pid ${f.pid};`,
    `error_log ${f.errorLog} warn;`,
    // Old workers get this long to finish requests and websockets after a reload, then close them.
    `worker_shutdown_timeout ${Math.max(1, Math.round(s.reloadGraceMs ?? NGINX_DEFAULTS.reloadGraceMs))}ms;`,
    // The regexes every request still runs (strict request line, Host with a port, cookies) are
    // compiled to machine code once instead of interpreted per request (docs/router.md).
    'pcre_jit on;',
    'events {',
    '  worker_connections 4096;',
    '}',
    'http {',
    '  server_tokens off;',
    '  default_type text/plain;',
    '  charset_types text/plain;',
    `  client_body_temp_path ${f.temp}/body;`,
    `  proxy_temp_path ${f.temp}/proxy;`,
    `  fastcgi_temp_path ${f.temp}/fastcgi;`,
    `  uwsgi_temp_path ${f.temp}/uwsgi;`,
    `  scgi_temp_path ${f.temp}/scgi;`,
    // Slow clients (slowloris): the same bounds the Node router enforced.
    `  client_header_timeout ${seconds(s.clientHeaderTimeoutMs ?? NGINX_DEFAULTS.clientHeaderTimeoutMs)};`,
    `  client_body_timeout ${seconds(s.clientBodyTimeoutMs ?? NGINX_DEFAULTS.clientBodyTimeoutMs)};`,
    `  keepalive_timeout ${seconds(s.keepaliveTimeoutMs ?? NGINX_DEFAULTS.keepaliveTimeoutMs)};`,
    '  send_timeout 60s;',
    // App bodies are not limited here (as before); /_git/ is, by maxPushBytes.
    '  client_max_body_size 0;',
    '  proxy_connect_timeout 5s;',
    // Websockets and long polls: an upgraded connection lives as long as its traffic.
    '  proxy_read_timeout 3600s;',
    '  proxy_send_timeout 3600s;',
    '  proxy_next_upstream error timeout;',
    // Before the first map: its sizes are set from the first map on.
    ...mapHashSizes(t, ports),
    '  map $http_upgrade $slipway_connection {',
    '    default upgrade;',
    '    "" "";',
    '  }',
    // A sane client-supplied id is kept (tracing across services); anything else gets a fresh one.
    '  map $http_x_request_id $slipway_request_id {',
    '    "~^[A-Za-z0-9._:-]{1,128}$" $http_x_request_id;',
    '    default $request_id;',
    '  }',
    "  log_format slipway escape=json '{\"time\":\"$time_iso8601\",\"app\":\"$slipway_route\",\"status\":$status,\"bytes\":$body_bytes_sent,\"upstream_time\":\"$upstream_response_time\",\"request_id\":\"$slipway_request_id\",\"method\":\"$request_method\",\"host\":\"$host\",\"remote\":\"$remote_addr\"}';",
    // Buffered: one write per 64 KB or per second instead of one per request (measured: the
    // per-request write was most of the gap to a plain proxy_pass); `logs --type router` lags <= 1 s.
    `  access_log ${f.accessLog} slipway buffer=64k flush=1s;`,
    // The client's cookies minus the session cookie (one for the host, one for the domain). The
    // second regex runs only on what the first one cut (docs/router.md, "Instructions per request");
    // a third session cookie (nobody's browser sends one, but an app could set more for the parent
    // domain) drops the whole header rather than pass it on.
    '  map $http_cookie $slipway_app_cookie {',
    '    "" "";',
    '    "~^(?<a>(?:.*;)?)\\s*slipway_session=[^;]*;?\\s*(?<b>.*)$" $slipway_cookie_rest;',
    '    default $http_cookie;',
    '  }',
    '  map "$a$b" $slipway_cookie_rest {',
    '    "~^(?<c>(?:.*;)?)\\s*slipway_session=[^;]*;?\\s*(?<d>.*)$" $slipway_cookie_rest2;',
    '    default "$a$b";',
    '  }',
    '  map "$c$d" $slipway_cookie_rest2 {',
    '    "~(?:^|;)\\s*slipway_session=" "";',
    '    default "$c$d";',
    '  }',
    ...(s.auth === undefined ? [] : [`  proxy_cache_path ${f.temp}/auth-cache levels=1 keys_zone=slipway_auth:1m max_size=16m inactive=10s use_temp_path=off;`]),
    ...routingMaps(t, ports),
    ...upstreamBlocks(t, keepaliveMs, s.upstreamKeepaliveTimeMs ?? NGINX_DEFAULTS.upstreamKeepaliveTimeMs, s.auth),
    ...servers,
    ...(t.idle === undefined ? [] : idleServer(t.idle)),
    '}',
    '',
  ];
  return lines.join('\n');
}
