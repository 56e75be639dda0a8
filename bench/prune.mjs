#!/usr/bin/env node
// What `slipway prune` frees and how long it takes (README "Cleaning up"), with the real Node.js
// and npm of the mirror: one runtime prepared (unpacked and its shared image made) for a random
// instance, then pruned keeping the default runtime (nothing goes), then with `--all`. Run from a
// checkout after ./scripts/ensure-build, with SLIPWAY_TEST_STACK_IMAGE and SLIPWAY_TEST_MIRROR
// as for the tests:
//   node bench/prune.mjs
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';

const root = path.resolve(import.meta.dirname, '..');
const { RuntimeUnpacks } = await import(`${root}/dist/buildpacks/runtimes.js`);
const { RuntimePreparer } = await import(`${root}/dist/hooks/runtime-prep.js`);
const { BuildHold } = await import(`${root}/dist/hooks/build-hold.js`);
const { pruneInstance } = await import(`${root}/dist/hooks/prune.js`);
const { scopeToInstance } = await import(`${root}/dist/runtime/instance-engine.js`);
const { launchBaseRef } = await import(`${root}/dist/runtime/images.js`);
const { createLogger } = await import(`${root}/dist/core/log.js`);
const mirrorDir = process.env.SLIPWAY_TEST_MIRROR ?? path.join(root, '.cache', 'test-mirror');
const stack = process.env.SLIPWAY_TEST_STACK_IMAGE;
if (!stack) throw new Error('set SLIPWAY_TEST_STACK_IMAGE (see COMMON test setup)');
const range = process.argv[2] ?? '24.x';
const docker = scopeToInstance(new Dockerode(), randomBytes(8).toString('hex'));
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-prune-'));
const runtimesDir = path.join(tmp, 'runtimes');
const s = (since) => `${((performance.now() - since) / 1000).toFixed(2)} s`;
const bytes = async (dir) => {
  let n = 0;
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) if (e.isFile()) n += (await fs.lstat(path.join(e.parentPath, e.name))).size;
  return `${(n / 1e6).toFixed(0)} MB`;
};
try {
  const preparer = new RuntimePreparer({ docker, unpacks: new RuntimeUnpacks({ runtimesDir, mirrorDir }), stackImage: () => stack, mirrorDir, logger: createLogger('silent'), hold: new BuildHold() });
  let t = performance.now();
  await preparer.prepareDefault(range);
  const kept = await preparer.keptForPushes(range);
  if (!kept) throw new Error(`no Node.js ${range} in ${mirrorDir}`);
  // The prepared image's own layer: what removing it frees (its base, the launch base, stays).
  const own = (await docker.getImage(kept.image).inspect()).Size - (await docker.getImage(launchBaseRef(stack)).inspect()).Size;
  console.log(`prepared ${kept.image} in ${s(t)}: its layer ${(own / 1e6).toFixed(0)} MB, unpacked ${kept.keys.join(' ')} ${await bytes(runtimesDir)}`);
  t = performance.now();
  console.log(`prune:       ${JSON.stringify(await pruneInstance({ docker, runtimesDir, keep: kept, progress: () => undefined }))} in ${s(t)}`);
  t = performance.now();
  console.log(`prune --all: ${JSON.stringify(await pruneInstance({ docker, runtimesDir, keep: null, progress: () => undefined }))} in ${s(t)}; left unpacked: ${await bytes(runtimesDir)}`);
} finally {
  await fs.rm(tmp, { recursive: true, force: true });
}
