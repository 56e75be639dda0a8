#!/usr/bin/env node
// What one proxied request costs nginx, counted in CPU instructions instead of timed: the
// platform's rendered config for one public app against the hand-written `proxy_pass` baseline
// (issue 12, docs/router.md "Instructions per request"). On a shared machine req/s and CPU time
// swing by more than the gap between the two; an instruction count does not.
// Each config runs as one nginx process (no master, one worker) under valgrind's callgrind, once
// with a warm-up of W keep-alive requests and once with W + N, on one connection from a client
// that sends the next request when the previous answer is in (500 per connection); the difference over N is the cost
// of a request in steady state (start, exit, the first connections and the warm-up cancel out).
// The upstream is a Node server in this process ("hello"), which callgrind does not count.
// Usage: node bench/router-instructions.mjs [requests=2000] [parts=nginx|nginx,app] [keep-dir]
// app: also the Node upstream's own instructions for the request each nginx forwarded (the app
// parses the headers the platform adds). keep-dir: the callgrind files are copied there (for
// callgrind_annotate).
// Needs the build, nginx and valgrind (apt-get install valgrind).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { renderNginxConfig } from '../dist/router/nginx-config.js';
import { freePort, plainNginxConfig } from './nginx-router.mjs';

const N = Number(process.argv[2] ?? 2000);
const parts = (process.argv[3] ?? 'nginx').split(',');
const keep = process.argv[4] ?? null;
const WARMUP = 100;
const PER_CONNECTION = 500;
const HOST = 'app.localhost';

/** What nginx sent upstream, per config: the app side replays it (`requestText`). */
const forwarded = {};
let current = '';
const upstream = http.createServer((req, res) => {
  forwarded[current] = req;
  res.end('hello');
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const target = `127.0.0.1:${upstream.address().port}`;
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-instr-'));

/** One nginx process in the foreground, so callgrind sees every request in one process. */
const SINGLE = 'daemon off;\nmaster_process off;';

/** The platform's config for one public app, as the daemon renders it. */
async function platformConfig(prefix, port) {
  const conf = renderNginxConfig(
    { version: 1, domain: 'localhost', apps: { app: { upstreams: [target] } }, git: null },
    // keepalive_time reopens the upstream connection every 250 ms of wall time: under callgrind
    // that is every few dozen requests and would make the count depend on the machine's speed.
    { prefix, listen: '127.0.0.1', httpPort: port, https: null, maxPushBytes: 1 << 30, workerProcesses: 1, upstreamKeepaliveTimeMs: 3_600_000 },
  );
  await fs.mkdir(path.join(prefix, 'logs'), { recursive: true });
  await fs.mkdir(path.join(prefix, 'tmp'), { recursive: true });
  return conf.replace(/^worker_processes 1;$/m, `worker_processes 1;\n${SINGLE}`);
}

async function baselineConfig(prefix, port) {
  await fs.mkdir(path.join(prefix, 'logs'), { recursive: true });
  return plainNginxConfig(prefix, target, port, null, { workers: 1, top: SINGLE });
}

/**
 * `n` GETs on keep-alive connections of PER_CONNECTION requests (nginx closes one after
 * `keepalive_requests`, 1000), each sent when the previous answer (200) is complete.
 */
async function requests(port, n, request) {
  for (let done = 0; done < n; done += PER_CONNECTION) await connection(port, Math.min(PER_CONNECTION, n - done), request);
}

const CLIENT_REQUEST = `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n`;

/** A request as an upstream received it, header names and values as sent. */
const requestText = (req) => `${req.method} ${req.url} HTTP/1.1\r\n${req.rawHeaders.map((v, i) => (i % 2 ? `${v}\r\n` : `${v}: `)).join('')}\r\n`;

async function connection(port, n, request) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let buf = Buffer.alloc(0);
  let wake = () => {};
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    wake();
  });
  const closed = once(socket, 'close');
  for (let i = 0; i < n; i++) {
    socket.write(request);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = buf.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 200 ')) throw new Error(`request ${i}: ${head.split('\r\n')[0]}`);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
        if (Number.isNaN(length)) throw new Error(`request ${i}: no Content-Length`);
        if (buf.length >= end + 4 + length) {
          buf = buf.subarray(end + 4 + length);
          break;
        }
      }
      const more = new Promise((r) => (wake = r));
      await Promise.race([more, closed.then(() => Promise.reject(new Error(`request ${i}: connection closed`)))]);
    }
  }
  socket.end();
  await closed;
}

async function waitForPort(port, child) {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`exited (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listened on ${port}`);
}

/** Instructions nginx executed from start to exit with `n` requests served. */
async function count(name, makeConfig, n) {
  const prefix = path.join(dir, `${name}-${n}`);
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  await fs.mkdir(prefix, { recursive: true });
  await fs.writeFile(conf, await makeConfig(prefix, port));
  current = name;
  return counted(name, n, prefix, port, ['nginx', '-p', prefix, '-e', path.join(prefix, 'logs', 'error.log'), '-c', conf], CLIENT_REQUEST);
}

/**
 * The app's side: a Node server like the upstream (the same Node as this script), sent the very
 * request nginx forwarded for `name`, `n` times.
 */
async function countApp(name, n) {
  const prefix = path.join(dir, `app-${name}-${n}`);
  const port = await freePort();
  await fs.mkdir(prefix, { recursive: true });
  const server = `require('http').createServer((q, s) => s.end('hello')).listen(${port}, '127.0.0.1'); process.on('SIGTERM', () => process.exit(0));`;
  return counted(`app-${name}`, n, prefix, port, [process.execPath, '-e', server], requestText(forwarded[name]));
}

/** Runs `command` under callgrind, sends it `n` requests and returns the instructions it executed. */
async function counted(name, n, prefix, port, command, request) {
  const out = path.join(prefix, 'callgrind.out');
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, ...command], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  try {
    await waitForPort(port, child);
    await requests(port, n, request);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${name}: ${err.message}\n${stderr}`);
  }
  child.kill('SIGTERM');
  await exited;
  const text = await fs.readFile(out, 'utf8');
  const total = Number(/^summary:\s+(\d+)/m.exec(text)?.[1] ?? /^totals:\s+(\d+)/m.exec(text)?.[1]);
  if (keep) {
    await fs.mkdir(keep, { recursive: true });
    await fs.copyFile(out, path.join(keep, `callgrind.${name}.${n}`));
  }
  return total;
}

/** Instructions per request in steady state: W + N requests minus W, over N. */
async function perRequest(label, measure) {
  const warm = await measure(WARMUP);
  const full = await measure(WARMUP + N);
  const per = (full - warm) / N;
  console.log(`${label.padEnd(13)} ${per.toFixed(0).padStart(8)} instructions/request  (${full} with ${WARMUP + N} requests, ${warm} with ${WARMUP})`);
  return per;
}

try {
  const nginx = {};
  for (const [name, make] of [
    ['baseline', baselineConfig],
    ['platform', platformConfig],
  ]) {
    nginx[name] = await perRequest(`${name} nginx`, (n) => count(name, make, n));
  }
  console.log(`nginx platform/baseline: ${(nginx.platform / nginx.baseline).toFixed(3)}x instructions per request (${N} keep-alive requests, ${PER_CONNECTION} per connection)`);
  if (parts.includes('app')) {
    // The headers the platform adds (docs/http.md) are parsed by the app too.
    const app = {};
    for (const name of ['baseline', 'platform']) {
      console.log(`${name} forwards ${forwarded[name].rawHeaders.length / 2} headers, ${Buffer.byteLength(requestText(forwarded[name]))} bytes`);
      app[name] = await perRequest(`${name} app`, (n) => countApp(name, n));
    }
    console.log(`app (Node) platform/baseline: ${(app.platform / app.baseline).toFixed(3)}x instructions per request; app + nginx: ${((app.platform + nginx.platform) / (app.baseline + nginx.baseline)).toFixed(3)}x`);
  }
} finally {
  upstream.close();
  await fs.rm(dir, { recursive: true, force: true });
}
