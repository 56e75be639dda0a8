#!/usr/bin/env node
// The platform's router (nginx rendered from the route table) against a hand-written plain nginx
// `proxy_pass` with keep-alive to the same upstream, in one run: req/s and p50/p99 for a public
// app over HTTP and over TLS, failed requests during 20 route changes (reloads) under load with
// ordinary keep-alive clients, and the router's idle memory. Prints numbers and ratios; asserts
// nothing (issue 12, README "Development" and "Reloads and keep-alive clients", docs/router.md).
// Load comes from wrk when it is installed (apt-get install wrk), else from Node's http.Agent.
// Besides req/s and p99 (which swing with whatever else runs on the machine), each run reports the
// CPU time nginx's workers spent per request: the cost of the config itself, far steadier.
// Both speak HTTP/1.1 over TLS: wrk and Node's https.Agent offer no ALPN, so neither gets HTTP/2.
// Usage: node bench/router-nginx.mjs [seconds=5] [concurrency=32] [part=all|http|https|reloads] [rounds=5]
// (needs the build and nginx)
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { createLogger } from '../dist/core/log.js';
import { freePort, plainNginxConfig, startRouter } from './nginx-router.mjs';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 32);
const part = process.argv[4] ?? 'all';
const ROUNDS = Number(process.argv[5] ?? 5);
const RELOADS = 20;
const run = promisify(execFile);

const hasWrk = await run('wrk', ['--version']).then(
  () => true,
  (err) => err.code !== 'ENOENT',
);

const upstream = http.createServer((_req, res) => res.end('hello'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upPort = upstream.address().port;

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=app.localhost', '-addext', 'subjectAltName=DNS:app.localhost', '-keyout', key, '-out', cert]);

const table = (extra = {}) => ({ version: 1, domain: 'localhost', apps: { app: { upstreams: [`127.0.0.1:${upPort}`] }, ...extra }, git: null });
const platform = { http: await freePort(), https: await freePort() };
// Plain HTTP is served (not redirected) for the plain-HTTP numbers: a second, TLS-less router.
// Reloads counted from the supervisor's own log line.
let reloads = 0;
const counting = new Writable({
  write(chunk, _enc, done) {
    reloads += String(chunk).split('router config reloaded').length - 1;
    done();
  },
});
const router = await startRouter(dir, table(), platform.http, {}, createLogger('info', counting));
const tlsRouter = await startRouter(dir, table(), await freePort(), { prefix: path.join(dir, 'router-tls'), https: { port: platform.https, cert, key } }, createLogger('info', counting));

// The baseline: what an operator would write by hand (with nginx's default access log, as the
// platform logs every request too), with the platform's TLS protocol settings: like for like.
const plain = path.join(dir, 'plain');
const plainPort = { http: await freePort(), https: await freePort() };
await fs.mkdir(path.join(plain, 'logs'), { recursive: true });
await fs.writeFile(path.join(plain, 'nginx.conf'), plainNginxConfig(plain, `127.0.0.1:${upPort}`, plainPort.http, { port: plainPort.https, cert, key }));
const plainArgs = ['-p', plain, '-e', `${plain}/logs/error.log`, '-c', `${plain}/nginx.conf`];
execFileSync('nginx', plainArgs);

/** CPU time (user + system, clock ticks) of the workers of the nginx whose master wrote pidFile. */
function workerTicks(pidFile) {
  const master = Number(readFileSync(pidFile, 'utf8').trim());
  const kids = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return kids.reduce((sum, pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return sum + Number(f[11]) + Number(f[12]);
  }, 0);
}
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** wrk's numbers: req/s, p50/p99 in ms, non-2xx and socket errors; with pidFile, nginx's CPU µs per request. */
async function wrk(url, during, pidFile) {
  const t0 = pidFile ? workerTicks(pidFile) : 0;
  const work = run('wrk', ['-t2', `-c${concurrency}`, `-d${seconds}s`, '--latency', '-H', 'Host: app.localhost', url], { maxBuffer: 1 << 20 });
  if (during) await during();
  const { stdout } = await work;
  const ticks = pidFile ? workerTicks(pidFile) - t0 : NaN;
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  const ms = (label) => {
    const m = new RegExp(`${label}\\s+([0-9.]+)(us|ms|s)`).exec(stdout);
    if (!m) return NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const why = errors ? { connect: +errors[1], read: +errors[2], write: +errors[3], timeout: +errors[4] } : {};
  return {
    perSecond: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? 0),
    cpuUs: (ticks * TICK_US) / requests,
    p50: ms('50%'),
    p99: ms('99%'),
    failed: non2xx + Object.values(why).reduce((a, b) => a + b, 0),
    why: { ...(non2xx ? { non2xx } : {}), ...Object.fromEntries(Object.entries(why).filter(([, v]) => v)) },
  };
}

/**
 * Node's keep-alive Agent, `concurrency` loops for `seconds`. retry: what browsers do (RFC 9112
 * 9.3.1): a GET that failed on a reused connection before any answer is sent again. fresh: a new
 * connection per request (Connection: close), nothing to reuse.
 */
async function nodeLoad(url, { during, retry = false, fresh = false } = {}) {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  // fresh: no Agent at all (an Agent without keep-alive still hands a finished socket to a queued request).
  const agent = fresh ? false : new lib.Agent({ keepAlive: true, maxSockets: concurrency, ...(u.protocol === 'https:' ? { rejectUnauthorized: false } : {}) });
  const served = new WeakMap();
  const deadline = Date.now() + seconds * 1000;
  const times = [];
  let failed = 0;
  let retried = 0;
  const why = {};
  const attempt = () =>
    new Promise((resolve) => {
      let reused = false;
      const req = lib.get({ host: '127.0.0.1', port: u.port, path: '/', agent, headers: { host: 'app.localhost' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode }));
      });
      // Counted per socket: req.reusedSocket misses a socket the Agent hands to a queued request.
      req.on('socket', (socket) => {
        const n = (served.get(socket) ?? 0) + 1;
        served.set(socket, n);
        reused = n > 1;
      });
      req.on('error', (err) => resolve({ err, reused }));
    });
  const one = async () => {
    const start = process.hrtime.bigint();
    let r = await attempt();
    // Again while it fails that way: the pool may hand out another connection being closed.
    for (let again = 0; again < 5 && retry && r.err && r.reused && r.err.code === 'ECONNRESET'; again++) {
      retried++;
      r = await attempt();
    }
    if (r.err || r.status !== 200) {
      failed++;
      const k = r.err ? r.err.code : r.status;
      why[k] = (why[k] ?? 0) + 1;
    } else times.push(Number(process.hrtime.bigint() - start) / 1e6);
  };
  const work = Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  if (during) await during();
  await work;
  if (agent) agent.destroy();
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return { perSecond: times.length / seconds, p50: at(0.5), p99: at(0.99), cpuUs: NaN, failed, why: retried ? { ...why, retried } : why };
}

/**
 * HTTP/2 over TLS (what browsers use): one connection with `concurrency` streams in flight, a new
 * connection when nginx sends GOAWAY or the connection ends. A stream that fails is counted. Refused
 * ones (REFUSED_STREAM: above GOAWAY's last stream id, never processed) are safe to resend by the
 * protocol (RFC 9113 8.7), which browsers do; retry: so does this client.
 */
async function h2Load(port, during, { retry = false } = {}) {
  const deadline = Date.now() + seconds * 1000;
  let session = null;
  const connect = () => {
    const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'app.localhost' });
    s.on('error', () => {});
    s.on('goaway', () => {
      if (session === s) session = null;
    });
    s.on('close', () => {
      if (session === s) session = null;
    });
    return s;
  };
  let ok = 0;
  let retried = 0;
  const why = {};
  const attempt = () =>
    new Promise((resolve) => {
      session ??= connect();
      let req;
      try {
        req = session.request({ ':path': '/', ':authority': 'app.localhost' });
      } catch (err) {
        // Asked of a connection that had just gone away: nothing was sent.
        session = null;
        return resolve({ k: err.code ?? 'error', refused: true });
      }
      req.resume();
      req.on('end', () => resolve({}));
      req.on('error', (err) => {
        const refused = req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
        resolve({ k: err.code === 'ERR_HTTP2_STREAM_ERROR' ? `stream ${req.rstCode}` : (err.code ?? 'error'), refused });
      });
    });
  const one = async () => {
    let r = await attempt();
    for (let again = 0; again < 5 && retry && r.k && r.refused; again++) {
      retried++;
      r = await attempt();
    }
    if (r.k) why[r.k] = (why[r.k] ?? 0) + 1;
    else ok++;
  };
  const work = Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline) await one();
  }));
  if (during) await during();
  await work;
  session?.close();
  const failed = Object.values(why).reduce((a, b) => a + b, 0);
  return { perSecond: ok / seconds, p50: NaN, p99: NaN, cpuUs: NaN, failed, why: retried ? { ...why, retried } : why };
}

const load = (url, pidFile) => (hasWrk ? wrk(url, undefined, pidFile) : nodeLoad(url));

function rssKb(pidFile) {
  const master = Number(readFileSync(pidFile, 'utf8').trim());
  const pids = [master, ...readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)];
  return pids.reduce((kb, pid) => kb + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0), 0);
}

const show = (name, r) =>
  console.log(
    `${name.padEnd(26)} ${r.perSecond.toFixed(0).padStart(6)} req/s${Number.isNaN(r.p99) ? '' : `  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms`}${Number.isNaN(r.cpuUs) ? '' : `  nginx ${r.cpuUs.toFixed(1)} µs CPU/req`}  failed ${r.failed}${Object.keys(r.why).length ? ` ${JSON.stringify(r.why)}` : ''}`,
  );
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let n = 0;
const nextTable = () => table({ [`extra${n++}`]: { upstreams: [`127.0.0.1:${upPort}`] } });
/** RELOADS route changes spread over the run, each served (tested and reloaded) before the next. */
const routeChanges = async (on = router) => {
  for (let i = 0; i < RELOADS; i++) {
    await on.serve(nextTable());
    await new Promise((r) => setTimeout(r, (seconds * 1000) / (RELOADS + 2)));
  }
};
/** RELOADS route changes at once (a scale-up's containers turning healthy together). */
const burst = async () => {
  await new Promise((r) => setTimeout(r, (seconds * 1000) / 2));
  await Promise.all(Array.from({ length: RELOADS }, () => router.serve(nextTable())));
};
/** RELOADS writes of a table that renders the same config (say, an access refresh that changed nothing). */
let same = null;
const sameConfig = async () => {
  for (let i = 0; i < RELOADS; i++) {
    await router.serve({ ...same, apps: { ...same.apps } });
    await new Promise((r) => setTimeout(r, (seconds * 1000) / (RELOADS + 2)));
  }
};
/** Runs `measure` around `changes` and adds how many reloads nginx made meanwhile. */
const counted = async (label, measure) => {
  const before = reloads;
  const r = await measure();
  const made = reloads - before;
  show(`${label} (${made} reloads${made ? `, ${(r.failed / made).toFixed(1)} failed/reload` : ''})`, r);
};

try {
  console.log(`load: ${hasWrk ? `wrk -t2 -c${concurrency}` : `Node http.Agent, ${concurrency} loops`}, ${seconds} s per run, ${ROUNDS} rounds alternating; same upstream (Node, "hello")`);
  const pids = { http: path.join(dir, 'router', 'nginx.pid'), https: path.join(dir, 'router-tls', 'nginx.pid'), plain: `${plain}/nginx.pid` };
  for (const [scheme, ours, theirs] of [
    ['http', `http://127.0.0.1:${platform.http}/`, `http://127.0.0.1:${plainPort.http}/`],
    ['https', `https://127.0.0.1:${platform.https}/`, `https://127.0.0.1:${plainPort.https}/`],
  ]) {
    if (part !== 'all' && part !== scheme) continue;
    await load(theirs); // warm-up
    await load(ours);
    const rps = [];
    const p99 = [];
    const cpu = [];
    for (let round = 0; round < ROUNDS; round++) {
      const base = await load(theirs, pids.plain);
      const mine = await load(ours, pids[scheme]);
      show(`${scheme} plain nginx`, base);
      show(`${scheme} platform router`, mine);
      rps.push(mine.perSecond / base.perSecond);
      p99.push(mine.p99 / base.p99);
      cpu.push(mine.cpuUs / base.cpuUs);
    }
    const list = (xs) => xs.map((x) => x.toFixed(2)).join(' ');
    console.log(`${scheme} ratio platform/plain: req/s ${median(rps).toFixed(2)}x median (${list(rps)}; goal >= 0.95), p99 ${median(p99).toFixed(2)}x median (${list(p99)}; goal <= 1.2)`);
    if (hasWrk) console.log(`${scheme} nginx CPU per request platform/plain: ${median(cpu).toFixed(2)}x median (${list(cpu)})`);
  }

  if (part === 'all' || part === 'reloads') {
    // Route changes under load: each is a graceful reload, and old workers close their idle
    // keep-alive connections at once; a client that sends on one at that moment gets a reset
    // (docs/router.md, "Reloads under load").
    const url = `http://127.0.0.1:${platform.http}/`;
    if (hasWrk) {
      await counted(`wrk, ${RELOADS} changes`, () => wrk(url, routeChanges));
      await counted(`wrk, ${RELOADS} at once`, () => wrk(url, burst));
      same = nextTable();
      await router.serve(same);
      await counted(`wrk, ${RELOADS} same config`, () => wrk(url, sameConfig));
      // wrk sends the header but still reconnects per request: every request on a new connection.
      const close = () => run('wrk', ['-t2', `-c${concurrency}`, `-d${seconds}s`, '-H', 'Host: app.localhost', '-H', 'Connection: close', url], { maxBuffer: 1 << 20 });
      await counted(`wrk Connection: close, ${RELOADS} changes`, async () => {
        const work = close();
        await routeChanges();
        const { stdout } = await work;
        const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
        const failed = non2xx + (errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
        return { perSecond: Number(/Requests\/sec:\s+([0-9.]+)/.exec(stdout)?.[1] ?? 0), p50: NaN, p99: NaN, cpuUs: NaN, failed, why: errors ? { connect: +errors[1], read: +errors[2], write: +errors[3], timeout: +errors[4] } : {} };
      });
    }
    await counted(`Agent, ${RELOADS} changes`, () => nodeLoad(url, { during: routeChanges }));
    await counted(`Agent+retry, ${RELOADS} changes`, () => nodeLoad(url, { during: routeChanges, retry: true }));
    await counted(`new connections, ${RELOADS} changes`, () => nodeLoad(url, { during: routeChanges, fresh: true }));
    await counted(`HTTP/2 over TLS, ${RELOADS} changes`, () => h2Load(platform.https, () => routeChanges(tlsRouter)));
    await counted(`HTTP/2+retry refused, ${RELOADS} changes`, () => h2Load(platform.https, () => routeChanges(tlsRouter), { retry: true }));
    show('Agent, no changes', await nodeLoad(url));
  }

  await new Promise((r) => setTimeout(r, 1000));
  console.log(
    `idle memory (RSS, master + workers): platform router ${(rssKb(path.join(dir, 'router', 'nginx.pid')) / 1024).toFixed(1)} MiB, plain nginx ${(rssKb(`${plain}/nginx.pid`) / 1024).toFixed(1)} MiB`,
  );
} finally {
  await router.stop({ graceMs: 2000 });
  await tlsRouter.stop({ graceMs: 2000 });
  execFileSync('nginx', [...plainArgs, '-s', 'stop']);
  upstream.close();
  await fs.rm(dir, { recursive: true, force: true });
}
