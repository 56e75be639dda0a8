import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runtimePackages } from '../../buildpacks/builtins.js';
import { PackumentCache } from '../../buildpacks/mirror/fetch.js';
import { buildpacksHome, runBuild, type BuildpackRef } from '../../buildpacks/runner.js';
import { RuntimeUnpacks, type RuntimeDir } from '../../buildpacks/runtimes.js';
import { loadConfig } from '../../core/config.js';
import { prepareMirror } from '../../hooks/prepare-mirror.js';

// The node buildpack with Node.js and npm mounted read-only (as every deploy has them): a build
// script's `npm install -g` must land somewhere writable, and on PATH.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const sharedMirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repo, '.cache', 'test-mirror');
const docker = new Dockerode();
const testLabel = `node-global-${crypto.randomBytes(4).toString('hex')}`;
const nodeBp: BuildpackRef = { name: 'node', dir: path.join(buildpacksHome(), 'node') };
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-node-global-'));
});
afterAll(async () => {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

it('installs a build script\'s global package into the app\'s Node folder, not the read-only runtime', async () => {
  const appDir = path.join(tmp, 'app');
  await fs.cp(path.join(repo, 'fixtures', 'apps', 'node-hello'), appDir, { recursive: true });
  const pkgFile = path.join(appDir, 'package.json');
  const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { scripts: Record<string, string> };
  // A global tool, then used from PATH-independent npm: what `npm install -g <tool> && <tool>` does.
  pkg.scripts.build = 'npm install -g ms@2.1.3 --no-audit --no-fund && node -e "require(require(\'path\').join(process.argv[1], \'lib/node_modules/ms\'))" "$(npm prefix -g)" && echo "global prefix $(npm prefix -g)"';
  await fs.writeFile(pkgFile, JSON.stringify(pkg, null, 2));

  const { config, paths } = await loadConfig(tmp);
  const buildEnv = await prepareMirror({ appDir, config, paths: { ...paths, mirrorDir: sharedMirror }, candidates: [nodeBp], say: () => undefined, packuments: new PackumentCache(), npmUpstream: null });
  const unpacks = new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'runtimes'), mirrorDir: sharedMirror });
  const runtimes: RuntimeDir[] = [];
  for (const p of runtimePackages([nodeBp], buildEnv)) {
    const dir = await unpacks.ensure(p);
    if (dir) runtimes.push(dir);
  }
  expect(runtimes.map((r) => r.key.split('-')[0])).toEqual(['node', 'npm']);

  let output = '';
  await runBuild({
    docker,
    stackImage,
    appDir,
    cacheDir: path.join(tmp, 'cache'),
    envVars: {},
    candidates: [nodeBp],
    pinned: false,
    mirrorDir: sharedMirror,
    buildEnv,
    runtimes,
    memory: '1g',
    pidsLimit: 512,
    timeoutSeconds: 300,
    scratchParent: path.join(tmp, 'scratch'),
    labels: { 'slipway.test': '1', 'slipway.test.run': testLabel },
    onOutput: (t) => (output += t),
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${output}`);
  });
  expect(output).toMatch(/global prefix \S*\/\.slipway\/node\n/);
  // In the built tree, so in the release image too; the mounted runtime is untouched.
  expect(JSON.parse(await fs.readFile(path.join(appDir, '.slipway', 'node', 'lib', 'node_modules', 'ms', 'package.json'), 'utf8'))).toMatchObject({ name: 'ms', version: '2.1.3' });
  expect((await fs.readdir(runtimes[0]!.hostDir)).sort()).toEqual(['.slipway-runtime.json', 'bin']);
}, 300_000);
