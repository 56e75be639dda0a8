#!/usr/bin/env node
// Requests lost during zero-downtime switches, against a baseline measured in the same run.
// Starts a throw-away `slipway server` on free loopback ports, deploys fixtures/apps/node-ops,
// then: load alone (baseline), load while `ps:restart` runs RESTARTS times, and the time of
// `ps:scale web=1 -> 10` until every web container is healthy and routed.
// Usage: node bench/zero-downtime.mjs [restarts=5] [concurrency=8]
// Needs Docker, the stack image and a seeded mirror (SLIPWAY_TEST_MIRROR or .cache/test-mirror).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const restarts = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 8);
const root = path.resolve(import.meta.dirname, '..');
const slipway = path.join(root, 'slipway');
const MAX_REQUESTS = 200_000;

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

function run(cmd, args, o = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out}`))));
  });
}

const home = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-'));
const sshPort = await freePort();
const httpPort = await freePort();
const app = `bench-${crypto.randomBytes(3).toString('hex')}`;
const env = { ...process.env, SLIPWAY_HOME: home };
const cli = (...args) => run(slipway, args, { env });
let server = null;

async function start() {
  await fs.symlink(path.resolve(process.env.SLIPWAY_TEST_MIRROR ?? path.join(root, '.cache', 'test-mirror')), path.join(home, 'mirror'));
  await fs.writeFile(path.join(home, 'config.json'), JSON.stringify({ healthSettleMs: 500, drainMs: 500, stopGraceSeconds: 2 }));
  server = spawn(slipway, ['server', '--ssh-port', String(sshPort), '--http-port', String(httpPort)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  const deadline = Date.now() + 240_000;
  while (!log.includes('Ready.')) {
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`slipway server did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function deploy() {
  const key = path.join(home, 'bench-key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await cli('ssh-keys:add', 'bench', `${key}.pub`);
  await cli('apps:create', app);
  const wc = await fs.mkdtemp(path.join(home, 'wc-'));
  await fs.cp(path.join(root, 'fixtures', 'apps', 'node-ops'), wc, { recursive: true });
  const gitEnv = {
    ...process.env,
    GIT_SSH_COMMAND: `ssh -i ${key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR`,
    GIT_AUTHOR_NAME: 'Bench', GIT_AUTHOR_EMAIL: 'bench@example.invalid', GIT_COMMITTER_NAME: 'Bench', GIT_COMMITTER_EMAIL: 'bench@example.invalid',
  };
  for (const args of [['init', '-q', '--initial-branch=main'], ['add', '-A'], ['commit', '-q', '-m', 'bench'], ['push', '-q', `ssh://git@127.0.0.1:${sshPort}/${app}`, 'main']]) {
    await run('git', args, { cwd: wc, env: gitEnv });
  }
}

/** Keep-alive load through the router until `until` settles; bounded by MAX_REQUESTS. */
async function load(until) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = [];
  let failed = 0;
  // Requests that got no response at all (no latency to count).
  let errors = 0;
  let done = false;
  const statuses = new Map();
  until.finally(() => (done = true));
  const one = () =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.get({ host: '127.0.0.1', port: httpPort, path: '/', agent, headers: { host: `${app}.localhost:${httpPort}` } }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - t0);
          if (res.statusCode !== 200) {
            failed++;
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          }
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        failed++;
        errors++;
        statuses.set(err.code ?? err.message, (statuses.get(err.code ?? err.message) ?? 0) + 1);
        resolve();
      });
    });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (!done && latencies.length + errors < MAX_REQUESTS) await one();
  }));
  await until;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? NaN;
  return { sent: latencies.length + errors, failed, p99, statuses };
}

const report = (label, r) =>
  console.log(`${label.padEnd(28)} sent ${String(r.sent).padStart(6)}  failed ${String(r.failed).padStart(4)}  p99 ${r.p99.toFixed(1)} ms${r.statuses.size ? `  (${[...r.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`);

try {
  await start();
  await deploy();
  // Warm up the app and the router's upstream connections first; that second is not counted.
  await load(new Promise((r) => setTimeout(r, 1000)));
  const baseline = await load(new Promise((r) => setTimeout(r, 3000)));
  report('baseline (3 s, no switch)', baseline);
  const t0 = Date.now();
  const during = await load((async () => {
    for (let i = 0; i < restarts; i++) await cli('ps:restart', app);
  })());
  report(`during ${restarts} x ps:restart`, during);
  console.log(`p99 ratio switching/baseline: ${(during.p99 / baseline.p99).toFixed(2)}   (${((Date.now() - t0) / 1000 / restarts).toFixed(1)} s per restart)`);
  const s0 = Date.now();
  await cli('ps:scale', app, 'web=10');
  const scaleMs = Date.now() - s0;
  const routes = JSON.parse(await fs.readFile(path.join(home, 'routes.json'), 'utf8').catch(() => '{}'));
  const routed = routes.apps?.[app]?.upstreams?.length ?? '?';
  console.log(`ps:scale web=1 -> 10: ${(scaleMs / 1000).toFixed(1)} s until healthy and routed (${routed} upstreams in the route table)`);
} finally {
  await cli('apps:destroy', app, '--force').catch((err) => console.error(err.message));
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  const router = await fs.readFile(path.join(home, 'run', 'router.json'), 'utf8').then(JSON.parse).catch(() => null);
  if (router) {
    try {
      process.kill(router.pid, 'SIGTERM');
    } catch {}
  }
  await fs.rm(home, { recursive: true, force: true });
}
