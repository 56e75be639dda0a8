#!/usr/bin/env node
// The cost of the sign-in check at the router (issues 11 and 12): a public app against a private
// app with a valid session, same upstream, same nginx, same run, measured with wrk (three
// alternating rounds, medians). Prints req/s, latency and the ratio; asserts nothing (README "Development"). Goal: private >= 0.7x public
// req/s (at most ~1.5x the cost per request).
// Usage: node bench/private-app.mjs [seconds=5] [connections=32]   (needs the build, nginx, wrk)
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createAuthHandler, listenAuth } from '../dist/auth/server.js';
import { SignInLimiter } from '../dist/auth/rate-limit.js';
import { SessionStore } from '../dist/auth/sessions.js';
import { openDb } from '../dist/core/db.js';
import { createLogger } from '../dist/core/log.js';
import { UserStore } from '../dist/core/users.js';
import { freePort, startRouter } from './nginx-router.mjs';

const seconds = Number(process.argv[2] ?? 5);
const connections = Number(process.argv[3] ?? 32);
try {
  execFileSync('wrk', ['--version'], { stdio: 'ignore' });
} catch (err) {
  if (err.code === 'ENOENT') {
    console.error('bench/private-app.mjs needs wrk: apt-get install wrk');
    process.exit(1);
  }
}

const upstream = http.createServer((_req, res) => res.end('hello'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const target = `127.0.0.1:${upstream.address().port}`;

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-auth-'));
const db = openDb(path.join(dir, 'slipway.db'));
const users = new UserStore(db);
const admin = { actor: 'admin', source: 'bench' };
users.add(admin, { name: 'reader', role: 'viewer', email: null, passwordHash: null });
users.appCreated(admin, 'priv', 'admin');
users.setGrants(admin, 'priv', ['reader'], true);
const sessions = new SessionStore(db, { idleMs: 3_600_000, maxMs: 86_400_000 });
const session = sessions.create('reader', 'bench');
const socket = path.join(dir, 'auth.sock');
const auth = await listenAuth(
  socket,
  createAuthHandler({ users, sessions, limiter: new SignInLimiter(db), secret: Buffer.alloc(32, 1), domain: 'localhost', cookieMaxAgeSeconds: 3600, logger: createLogger('error') }),
);

const port = await freePort();
const table = { version: 1, domain: 'localhost', apps: { pub: { upstreams: [target] }, priv: { upstreams: [target], private: true } }, git: null };
const router = await startRouter(dir, table, port, { auth: `unix:${socket}` });

/** One wrk run: req/s and latency percentiles, from its --latency report. (Async: the upstream and
 * the auth server answer from this process.) */
async function wrk(host, cookie) {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Host: ${host}`, ...(cookie ? ['-H', `Cookie: ${cookie}`] : []), `http://127.0.0.1:${port}/`];
  const { stdout: out } = await promisify(execFile)('wrk', args, { encoding: 'utf8' });
  const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const ms = (re) => {
    const m = re.exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 }[m[2]] ?? 1);
  };
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/) || 0;
  return { perSecond: num(/Requests\/sec:\s+([0-9.]+)/), p50: ms(/50%\s+([0-9.]+)(us|ms|s)/), p99: ms(/99%\s+([0-9.]+)(us|ms|s)/), non2xx };
}

const show = (name, r) => console.log(`${name.padEnd(8)} ${r.perSecond.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  non-2xx ${r.non2xx}`);
try {
  await wrk('pub.localhost'); // warm-up
  // Alternating rounds, median of each: a busy machine skews one run, not all of them.
  const runs = { pub: [], priv: [] };
  for (let i = 0; i < 3; i++) {
    runs.pub.push(await wrk('pub.localhost'));
    runs.priv.push(await wrk('priv.localhost', `slipway_session=${session}`));
  }
  const median = (rs) => rs.sort((a, b) => a.perSecond - b.perSecond)[1];
  const pub = median(runs.pub);
  const priv = median(runs.priv);
  show('public', pub);
  show('private', priv);
  const ratio = priv.perSecond / pub.perSecond;
  console.log(`ratio private/public: ${ratio.toFixed(2)}x req/s (goal >= 0.70x), ${(1 / ratio).toFixed(2)}x cost per request (goal <= 1.5x), p99 ${(priv.p99 / pub.p99).toFixed(2)}x`);
} finally {
  await router.stop({ graceMs: 2000 });
  auth.closeAllConnections();
  auth.close();
  upstream.close();
  db.close();
  await fs.rm(dir, { recursive: true, force: true });
}
