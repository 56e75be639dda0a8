import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildpacksHome, runBuild, shareOneMount, type BuildpackRef, type RunBuildOptions } from '../../buildpacks/runner.js';
import { ensureNpmPackages, lockfilePackages, resolveNodeRuntime } from '../../buildpacks/mirror/npm.js';
import { rejectsOneLine } from '../support/errors.js';

// Issue 15, item 2: BUILD_DIR and CACHE_DIR on one mount, so the cache is restored by hard links
// (or a rename) instead of a copy, and a build that fails halfway leaves the cache usable.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const sharedMirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repo, '.cache', 'test-mirror');
const docker = new Dockerode();
const testLabel = `build-cache-${crypto.randomBytes(4).toString('hex')}`;
const nodeBp: BuildpackRef = { name: 'node', dir: path.join(buildpacksHome(), 'node') };
let tmp: string;

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

async function appDir(files: Record<string, string> = {}, fixture?: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(tmp, 'app-'));
  if (fixture) await fs.cp(path.join(repo, 'fixtures', 'apps', fixture), dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

function build(over: Partial<RunBuildOptions> & Pick<RunBuildOptions, 'appDir' | 'candidates' | 'cacheDir'>) {
  let output = '';
  const promise = runBuild({
    docker,
    stackImage,
    envVars: {},
    pinned: false,
    mirrorDir: path.join(tmp, 'empty-mirror'),
    buildEnv: {},
    memory: '1g',
    pidsLimit: 512,
    timeoutSeconds: 300,
    labels: { 'slipway.test': '1', 'slipway.test.run': testLabel },
    scratchParent: path.join(tmp, 'scratch'),
    ...over,
    onOutput: (t) => {
      output += t;
    },
  });
  return { promise, output: () => output };
}

const read = (file: string) => fs.readFile(file, 'utf8');

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-build-cache-'));
});
afterAll(async () => {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('BUILD_DIR and CACHE_DIR on one mount', () => {
  it('lets a buildpack link and rename between them, and gives both back', async () => {
    const bp = await linkerBuildpack();
    const cacheDir = path.join(tmp, 'linker-cache');
    const app = await appDir({ 'hello.txt': 'hi\n' });
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
    await build({ appDir: await appDir(), cacheDir, candidates: [bp] }).promise;
    const failing = build({ appDir: await appDir({ fail: '' }), cacheDir, candidates: [bp] });
    const err = await rejectsOneLine(failing.promise);
    expect(err.message).toBe('buildpack linker failed to compile (exit status 7)');
    expect(failing.output()).toContain('failing halfway');
    // The failed build's writes to the cache are there, and the next build finds them.
    expect(await read(path.join(cacheDir, 'count'))).toBe('2\n');
    await build({ appDir: await appDir(), cacheDir, candidates: [bp] }).promise;
    expect(await read(path.join(cacheDir, 'count'))).toBe('3\n');

    const dropping = build({ appDir: await appDir({ 'drop-cache': '' }), cacheDir, candidates: [bp] });
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
      const app = await appDir({ 'hello.txt': 'hi\n' });
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

describe('the node buildpack restores node_modules as hard links', () => {
  let buildEnv: Record<string, string>;

  beforeAll(async () => {
    await fs.mkdir(sharedMirror, { recursive: true });
    const progress = () => undefined;
    const upstream = 'https://registry.npmjs.org/';
    const lock = await fs.readFile(path.join(repo, 'fixtures/apps/node-hello/package-lock.json'), 'utf8');
    await ensureNpmPackages({ mirrorDir: sharedMirror, packages: lockfilePackages(lock), upstream, progress });
    const runtime = await resolveNodeRuntime({ mirrorDir: sharedMirror, range: '24.x', upstream, progress });
    buildEnv = { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm };
  }, 600_000);

  /** node-hello, with a build script when given one. */
  const nodeApp = async (buildScript?: string) => {
    const dir = await appDir({}, 'node-hello');
    if (buildScript) {
      const pkg = JSON.parse(await read(path.join(dir, 'package.json'))) as { scripts: Record<string, string> };
      pkg.scripts.build = buildScript;
      await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    }
    return dir;
  };
  const nodeBuild = (dir: string, cacheDir: string) => build({ appDir: dir, cacheDir, candidates: [nodeBp], mirrorDir: sharedMirror, buildEnv });
  const msIndex = (dir: string) => path.join(dir, 'node_modules/ms/index.js');

  it('keeps the cache through a failed build, and installs again after a build wrote into it in place', async () => {
    const cacheDir = path.join(tmp, 'node-cache');
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
  }, 600_000);
});
