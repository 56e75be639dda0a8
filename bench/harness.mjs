// What the benchmarks share: a throw-away `slipway server` on free loopback ports with
// fixtures/apps/node-ops deployed, keep-alive load through its router, and a clean stop.
// Needs Docker, the stack image and a seeded mirror (SLIPWAY_TEST_MIRROR or .cache/test-mirror).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

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

export const home = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-'));
const sshPort = await freePort();
export const httpPort = await freePort();
export const app = `bench-${crypto.randomBytes(3).toString('hex')}`;
const env = { ...process.env, SLIPWAY_HOME: home };
export const cli = (...args) => run(slipway, args, { env });
let server = null;
// Only a bench that deployed has an app to destroy (bench/services.mjs deploys none).
let deployed = false;

export async function start() {
  await fs.symlink(path.resolve(process.env.SLIPWAY_TEST_MIRROR ?? path.join(root, '.cache', 'test-mirror')), path.join(home, 'mirror'));
  // A strict mirror, as an airgapped site runs: benches reach nothing beyond loopback.
  await fs.writeFile(path.join(home, 'config.json'), JSON.stringify({ healthSettleMs: 500, drainMs: 500, stopGraceSeconds: 2, npmUpstream: null }));
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

/** The daemon's pid (`slipway` execs node, so it is the server child's). */
export const serverPid = () => server?.pid;

// The deployed app's working copy and git environment, for redeploys (push()).
let pushFrom = null;

export async function deploy() {
  const key = path.join(home, 'bench-key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await cli('ssh-keys:add', 'bench', `${key}.pub`);
  await cli('apps:create', app);
  deployed = true;
  // New apps need sign-in (README "Users and access"); the load is anonymous.
  await cli('access:set', app, 'public');
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
  pushFrom = { wc, gitEnv };
}

/** A redeploy by `git push` of a new commit (same code), after deploy(). */
export async function push() {
  const { wc, gitEnv } = pushFrom;
  await run('git', ['commit', '-q', '--allow-empty', '-m', 'redeploy'], { cwd: wc, env: gitEnv });
  await run('git', ['push', '-q', `ssh://git@127.0.0.1:${sshPort}/${app}`, 'main'], { cwd: wc, env: gitEnv });
}

/**
 * Keep-alive load through the router until `until` settles; bounded by MAX_REQUESTS. With
 * `resend`, a request that failed on a reused connection before any answer is sent once more
 * (as browsers do, RFC 9112 9.3.1): nginx never read it (README "How it works").
 */
export async function load(until, concurrency = 8, { resend = false } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = [];
  let failed = 0;
  // Requests that got no response at all (no latency to count).
  let errors = 0;
  let resent = 0;
  let done = false;
  const statuses = new Map();
  // Both ways: a failed command must end the load, not crash the run before its cleanup.
  until.then(() => (done = true), () => (done = true));
  const one = (retry = resend) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      let answered = false;
      const req = http.get({ host: '127.0.0.1', port: httpPort, path: '/', agent, headers: { host: `${app}.localhost:${httpPort}` } }, (res) => {
        answered = true;
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
        if (retry && !answered && req.reusedSocket && err.code === 'ECONNRESET') {
          resent++;
          resolve(one(false));
          return;
        }
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
  return { sent: latencies.length + errors, failed, resent, p99, statuses };
}

/**
 * How many web upstreams the router reaches for the app: the route table lists the app's stable
 * front (platform/fronts.ts), so each front counts as the DNAT targets of this instance's chain.
 */
export async function routedCount() {
  const routes = JSON.parse(await fs.readFile(path.join(home, 'routes.json'), 'utf8').catch(() => '{}'));
  const upstreams = routes.apps?.[app]?.upstreams ?? [];
  const id = (await fs.readFile(path.join(home, 'instance-id'), 'utf8').catch(() => '')).trim();
  const saved = upstreams.some((u) => u.endsWith(':9')) ? await run('iptables-save', ['-t', 'nat']) : '';
  let n = 0;
  for (const u of upstreams) {
    const front = /^(127\.(?:8\d|9[0-5])\.\d+\.\d+):9$/.exec(u);
    n += front ? saved.split('\n').filter((l) => l.startsWith(`-A SLWF-${id} -d ${front[1]}/32 `) && l.includes('DNAT')).length : 1;
  }
  return n;
}

/** Destroys the app, stops the daemon, then the router (and its fronts), registry and auth server by their pid files, and removes the home. */
export async function stop() {
  if (deployed) await cli('apps:destroy', app, '--force').catch((err) => console.error(err.message));
  // What this instance keeps for its future apps (README "Cleaning up"): a bench platform has none.
  if (server && server.exitCode === null) await cli('prune', '--all').catch((err) => console.error(err.message));
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  // Stops nginx and removes this instance's front NAT chains (a build without fronts only stops nginx).
  await cli('router:stop').catch((err) => console.error(err.message));
  for (const pidFile of [path.join(home, 'router', 'nginx.pid'), path.join(home, 'registry', 'registry.pid'), path.join(home, 'run', 'auth.pid')]) {
    const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => ''));
    if (Number.isInteger(pid) && pid > 1) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
    }
  }
  await fs.rm(home, { recursive: true, force: true });
}
