#!/usr/bin/env node
// The platform's router (nginx rendered from the route table) against a hand-written plain nginx
// `proxy_pass` with keep-alive to the same upstream, in one run: req/s, p50/p99, failures, and
// failures during 20 route changes (reloads) under load, plus the router's idle memory. Ratios
// only; it asserts nothing (issue 12, README "Development").
// Usage: node bench/router-nginx.mjs [seconds=3] [concurrency=32]   (needs the build and nginx)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, startRouter } from './nginx-router.mjs';

const seconds = Number(process.argv[2] ?? 3);
const concurrency = Number(process.argv[3] ?? 32);

const upstream = http.createServer((_req, res) => res.end('hello'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upPort = upstream.address().port;

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-'));
const table = (extra = {}) => ({ version: 1, domain: 'localhost', apps: { app: { upstreams: [`127.0.0.1:${upPort}`] }, ...extra }, git: null });
const platformPort = await freePort();
const router = await startRouter(dir, table(), platformPort);

// The baseline: what an operator would write by hand.
const plainPort = await freePort();
const plain = path.join(dir, 'plain');
await fs.mkdir(path.join(plain, 'logs'), { recursive: true });
await fs.writeFile(
  path.join(plain, 'nginx.conf'),
  `worker_processes auto; pid ${plain}/nginx.pid; error_log ${plain}/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${plain}/b; proxy_temp_path ${plain}/p; fastcgi_temp_path ${plain}/f; uwsgi_temp_path ${plain}/u; scgi_temp_path ${plain}/s;
  upstream app { server 127.0.0.1:${upPort}; keepalive 32; }
  server { listen 127.0.0.1:${plainPort}; location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app; } }
}
`,
);
execFileSync('nginx', ['-p', plain, '-e', `${plain}/logs/error.log`, '-c', `${plain}/nginx.conf`]);

async function load(port, host, during) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + seconds * 1000;
  const times = [];
  let failed = 0;
  const why = {};
  const one = () =>
    new Promise((resolve) => {
      const start = process.hrtime.bigint();
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { host } }, (res) => {
        if (res.statusCode !== 200) {
          failed++;
          why[res.statusCode] = (why[res.statusCode] ?? 0) + 1;
        }
        res.resume();
        res.on('end', () => {
          times.push(Number(process.hrtime.bigint() - start) / 1e6);
          resolve();
        });
      });
      req.on('error', (err) => {
        failed++;
        why[err.code] = (why[err.code] ?? 0) + 1;
        resolve();
      });
    });
  const work = Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await one();
    }),
  );
  if (during) await during();
  await work;
  agent.destroy();
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return { perSecond: times.length / seconds, p50: at(0.5), p99: at(0.99), failed, why };
}

function rssKb(pidFile) {
  const master = Number(readFileSync(pidFile, 'utf8').trim());
  const pids = [master, ...readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)];
  return pids.reduce((kb, pid) => kb + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0), 0);
}

const show = (name, r) => console.log(`${name.padEnd(9)} ${r.perSecond.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  non-2xx/failed ${r.failed}${r.failed ? ` ${JSON.stringify(r.why)}` : ''}`);
try {
  await load(plainPort, 'app.localhost'); // warm-up
  const base = await load(plainPort, 'app.localhost');
  const ours = await load(platformPort, 'app.localhost');
  show('plain', base);
  show('platform', ours);
  console.log(`ratio platform/plain: ${(ours.perSecond / base.perSecond).toFixed(2)}x req/s, p99 ${(ours.p99 / base.p99).toFixed(2)}x`);
  const reloads = await load(platformPort, 'app.localhost', async () => {
    for (let i = 0; i < 20; i++) await router.serve(table({ [`extra${i}`]: { upstreams: [`127.0.0.1:${upPort}`] } }));
  });
  show('reloading', reloads);
  console.log(`20 route changes (reloads) under load: ${reloads.failed} failed requests`);
  await new Promise((r) => setTimeout(r, 1000));
  console.log(`idle memory: platform router ${(rssKb(path.join(dir, 'router', 'nginx.pid')) / 1024).toFixed(1)} MiB, plain nginx ${(rssKb(`${plain}/nginx.pid`) / 1024).toFixed(1)} MiB (RSS, master + workers)`);
} finally {
  await router.stop({ graceMs: 2000 });
  execFileSync('nginx', ['-p', plain, '-e', `${plain}/logs/error.log`, '-c', `${plain}/nginx.conf`, '-s', 'stop']);
  upstream.close();
  await fs.rm(dir, { recursive: true, force: true });
}
