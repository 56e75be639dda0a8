#!/usr/bin/env node
// `ps:scale web=1 -> 10` until every web process is healthy and routed, on each scheduler
// (issue 10 goals: <= 10 s on docker-local, <= 20 s on docker-swarm), then a swarm redeploy
// (`ps:restart`) under load, counting failed requests (goal: 0). Starts a throw-away `slipway
// server` on free loopback ports and deploys fixtures/apps/node-ops.
// Usage: node bench/scale.mjs [concurrency=8]
// Needs Docker, the stack image and a seeded mirror (SLIPWAY_TEST_MIRROR or .cache/test-mirror).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const concurrency = Number(process.argv[2] ?? 8);
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

const routedCount = async () => {
  const routes = JSON.parse(await fs.readFile(path.join(home, 'routes.json'), 'utf8').catch(() => '{}'));
  return routes.apps?.[app]?.upstreams?.length ?? 0;
};

try {
  await start();
  await deploy();
  for (const scheduler of ['docker-local', 'docker-swarm']) {
    const m0 = Date.now();
    await cli('scheduler:set', app, scheduler);
    console.log(`${scheduler}: scheduler:set took ${((Date.now() - m0) / 1000).toFixed(1)} s`);
    await cli('ps:scale', app, 'web=1');
    const s0 = Date.now();
    await cli('ps:scale', app, 'web=10');
    const ms = Date.now() - s0;
    console.log(`${scheduler}: ps:scale web=1 -> 10 in ${(ms / 1000).toFixed(1)} s until healthy and routed (${await routedCount()} upstreams routed)`);
  }
  const during = await load(cli('ps:restart', app));
  console.log(`docker-swarm: ps:restart of 10 replicas under load: sent ${during.sent}, failed ${during.failed}${during.statuses.size ? ` (${[...during.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}, p99 ${during.p99.toFixed(1)} ms`);
} finally {
  await cli('apps:destroy', app, '--force').catch((err) => console.error(err.message));
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  // The router and the registry are this home's own: stopped by their pid files.
  for (const pidFile of [path.join(home, 'router', 'nginx.pid'), path.join(home, 'registry', 'registry.pid')]) {
    const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => ''));
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
    }
  }
  await fs.rm(home, { recursive: true, force: true });
}
