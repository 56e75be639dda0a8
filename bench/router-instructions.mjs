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
// Usage: node bench/router-instructions.mjs [requests=2000] [keep-dir]
// keep-dir: the four callgrind files are copied there (for callgrind_annotate).
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
const keep = process.argv[3] ?? null;
const WARMUP = 100;
const PER_CONNECTION = 500;
const HOST = 'app.localhost';

const upstream = http.createServer((_req, res) => res.end('hello'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const target = `127.0.0.1:${upstream.address().port}`;
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-instr-'));

/** One nginx process in the foreground, so callgrind sees every request in one process. */
const SINGLE = 'daemon off;\nmaster_process off;';

/** The platform's config for one public app, as the daemon renders it. */
async function platformConfig(prefix, port) {
  const conf = renderNginxConfig(
    { version: 1, domain: 'localhost', apps: { app: { upstreams: [target] } }, git: null },
    // keepalive_time reopens the upstream connection every second of wall time: under callgrind
    // that is every few hundred requests and would make the count depend on the machine's speed.
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
async function requests(port, n) {
  for (let done = 0; done < n; done += PER_CONNECTION) await connection(port, Math.min(PER_CONNECTION, n - done));
}

async function connection(port, n) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const request = `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n`;
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
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode})`);
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
  throw new Error(`nginx did not listen on ${port}`);
}

/** Instructions nginx executed from start to exit with `n` requests served. */
async function count(name, makeConfig, n) {
  const prefix = path.join(dir, `${name}-${n}`);
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  await fs.mkdir(prefix, { recursive: true });
  await fs.writeFile(conf, await makeConfig(prefix, port));
  const out = path.join(prefix, 'callgrind.out');
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, 'nginx', '-p', prefix, '-e', path.join(prefix, 'logs', 'error.log'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  try {
    await waitForPort(port, child);
    await requests(port, n);
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

try {
  const perRequest = {};
  for (const [name, make] of [
    ['baseline', baselineConfig],
    ['platform', platformConfig],
  ]) {
    const warm = await count(name, make, WARMUP);
    const full = await count(name, make, WARMUP + N);
    perRequest[name] = (full - warm) / N;
    console.log(`${name.padEnd(8)} ${perRequest[name].toFixed(0).padStart(8)} instructions/request  (${full} with ${WARMUP + N} requests, ${warm} with ${WARMUP})`);
  }
  console.log(`platform/baseline: ${(perRequest.platform / perRequest.baseline).toFixed(3)}x instructions per request (${N} keep-alive requests, ${PER_CONNECTION} per connection)`);
} finally {
  upstream.close();
  await fs.rm(dir, { recursive: true, force: true });
}
