import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../../core/config.js';
import { startDaemon, type Daemon } from '../../platform/daemon.js';
import { removeFrontsOfHome } from '../../platform/fronts.js';
import { ensureInstanceId } from '../../core/instance-id.js';
import { pathsFor } from '../../core/paths.js';
import { AppStore } from '../../core/store.js';
import { commands, runCommand, type CommandIO } from '../../receiver/commands/index.js';
import { listAppContainers, removeApp, startProcess, stopAndRemove } from '../../runtime/containers.js';
import { buildReleaseImage, removeAppImages, removeUnusedRuntimeImages, runtimeImageRef } from '../../runtime/images.js';
import { assertAppNameFree, scopeToInstance } from '../../runtime/instance-engine.js';
import { freePort } from '../support/platform.js';
import { rejectsOneLine } from '../support/errors.js';
import { STACK, TEST_LABELS, WEB_COMMAND, docker as raw, logger, makeAppDir } from '../runtime/helpers.js';
import { releaseLayers } from '../../buildpacks/builtins.js';

/**
 * Two SLIPWAY_HOMEs on one real engine, each with an app of the same name (issue 9, High 3).
 * Instance A runs the app; instance B, started afterwards, must neither adopt, list, log, stop
 * nor remove A's container or images, and may not create or deploy an app of that name.
 */
describe('two instances on one Docker engine', () => {
  const app = `t-${randomBytes(5).toString('hex')}`;
  let homeA: string;
  let homeB: string;
  let dockerA: ReturnType<typeof scopeToInstance>;
  let idA: string;
  let image: string;
  let containerId: string;
  let daemonB: Daemon | null = null;

  const command = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    // The local admin over the socket (`local` marks it where CommandIO has that field).
    const io = { out: (d: string) => void (out += d), err: (d: string) => void (err += d), readStdin: async () => '', signal: new AbortController().signal, actor: 'cli', local: true } as CommandIO;
    const code = await runCommand(commands, argv, io, daemonB!.platform);
    return { code, out, err };
  };
  const stillRunning = async (): Promise<boolean> => (await raw.getContainer(containerId).inspect()).State.Running;
  const imageThere = (ref: string): Promise<boolean> =>
    raw
      .getImage(ref)
      .inspect()
      .then(() => true, () => false);

  beforeAll(async () => {
    homeA = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-a-'));
    homeB = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-b-'));
    idA = await ensureInstanceId(pathsFor(homeA).instanceIdFile);
    dockerA = scopeToInstance(raw, idA);

    // A deploys the app: a runtime layer (.heroku), a release image and a running web container.
    const appDir = await makeAppDir('instance A\n');
    await fs.mkdir(path.join(appDir, '.heroku'));
    await fs.writeFile(path.join(appDir, '.heroku', 'runtime.txt'), `runtime of ${app}\n`);
    try {
      image = await buildReleaseImage({ docker: dockerA, stackImage: STACK, appDir, app, version: 1, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {} });
    } finally {
      await fs.rm(appDir, { recursive: true, force: true });
    }
    containerId = (await startProcess(dockerA, { app, type: 'web', index: 1, image, release: 1, command: WEB_COMMAND, env: {}, web: true })).id;

    // B knew an app of the same name before A deployed it (nothing on the engine then), and
    // has no release of it: a restart of B's daemon reconciles that app to "no containers".
    const pathsB = pathsFor(homeB);
    const appsB = new AppStore(pathsB.appsDir);
    await appsB.init();
    await appsB.create(app);
    daemonB = await startDaemon({
      config: { ...defaults(homeB), sshPort: await freePort(), httpPort: await freePort() },
      paths: pathsB,
      docker: raw,
      logger,
      routerAlive: async () => false,
    });
  }, 300_000);

  afterAll(async () => {
    await daemonB?.close();
    if (homeB) await removeFrontsOfHome(pathsFor(homeB));
    await removeApp(dockerA, app, 0).catch(() => undefined);
    await removeAppImages(dockerA, app).catch(() => undefined);
    await removeUnusedRuntimeImages(dockerA).catch(() => undefined);
    // A per-app network, where the runtime makes one.
    for (const n of await raw.listNetworks({ filters: { label: [`slipway.app=${app}`, `slipway.instance=${idA}`] } })) await raw.getNetwork(n.Id).remove().catch(() => undefined);
    for (const home of [homeA, homeB]) if (home) await fs.rm(home, { recursive: true, force: true });
  }, 120_000);

  it('B has an id of its own, and everything A made carries A\'s', async () => {
    const idB = (await fs.readFile(pathsFor(homeB).instanceIdFile, 'utf8')).trim();
    expect(idB).not.toBe(idA);
    expect((await raw.getContainer(containerId).inspect()).Config.Labels['slipway.instance']).toBe(idA);
    expect((await raw.getImage(image).inspect()).Config.Labels['slipway.instance']).toBe(idA);
  });

  it('restarting B (recovery) leaves A\'s running container alone', async () => {
    expect(await stillRunning()).toBe(true);
    expect((await raw.getContainer(containerId).inspect()).RestartCount).toBe(0);
  });

  it('B lists no container of A and reads none of its logs', async () => {
    const ps = await command(['ps', app]);
    expect(ps.code).toBe(0);
    expect(ps.out).not.toContain(`${app}.web.1`);
    const logs = await command(['logs', app, '-n', '50']);
    expect(logs.out + logs.err).not.toContain('greeting=');
    // A sees its own.
    expect((await listAppContainers(dockerA, app)).map((c) => c.Id)).toEqual([containerId]);
  });

  it('B cannot stop or remove A\'s container or image through its engine view', async () => {
    const idB = (await fs.readFile(pathsFor(homeB).instanceIdFile, 'utf8')).trim();
    const dockerB = scopeToInstance(raw, idB);
    // For B the container does not exist: removal paths treat it as gone and leave it be...
    await stopAndRemove(dockerB, containerId, 0);
    expect(await stillRunning()).toBe(true);
    // ...and any direct action is refused with one line.
    const err = await rejectsOneLine(dockerB.getContainer(containerId).stop());
    expect(err.message).toMatch(/^refusing to stop container [0-9a-f]{12}: it does not carry this Slipway instance's label/);
    await rejectsOneLine(dockerB.getContainer(containerId).remove({ force: true }));
    await rejectsOneLine(dockerB.getImage(image).remove());
    await rejectsOneLine(dockerB.getContainer(`${app}.web.1`).logs({ stdout: true }) as Promise<unknown>);
    expect(await stillRunning()).toBe(true);
    expect(await imageThere(image)).toBe(true);
  });

  it('B cannot deploy over A: the name is in use on the engine', async () => {
    const idB = (await fs.readFile(pathsFor(homeB).instanceIdFile, 'utf8')).trim();
    const err = await rejectsOneLine(assertAppNameFree(scopeToInstance(raw, idB), app));
    expect(err.message).toBe(`app name "${app}" is in use on this Docker engine by another Slipway instance (or containers named ${app}.*): choose another app name`);
    await expect(assertAppNameFree(dockerA, app)).resolves.toBeUndefined();
  });

  it('apps:destroy in B removes B\'s app only: A\'s container, release image and runtime image stay', async () => {
    const runtimeTags = (await raw.listImages({ filters: { label: [`slipway.instance=${idA}`], reference: ['slipway-platform/runtime'] } })).flatMap((i) => i.RepoTags ?? []);
    expect(runtimeTags.length).toBeGreaterThan(0);
    expect(runtimeTags.every((t) => t.startsWith('slipway-platform/runtime:') && t.endsWith(`-${idA}`))).toBe(true);
    const res = await command(['apps:destroy', app, '--force']);
    expect(res.code, res.err).toBe(0);
    expect(await stillRunning()).toBe(true);
    expect(await imageThere(image)).toBe(true);
    for (const tag of runtimeTags) expect(await imageThere(tag)).toBe(true);
    expect(runtimeImageRef('x', idA)).toMatch(new RegExp(`-${idA}$`));
  });

  it('B cannot create an app whose name A uses, nor a reserved name; nothing changes', async () => {
    const before = await fs.readdir(pathsFor(homeB).appsDir);
    const taken = await command(['apps:create', app]);
    expect(taken.code).toBe(1);
    expect(taken.err).toBe(`slipway: app name "${app}" is in use on this Docker engine by another Slipway instance (or containers named ${app}.*): choose another app name\n`);
    for (const name of ['stack', 'runtime', 'base']) {
      const reserved = await command(['apps:create', name]);
      expect(reserved.code).toBe(1);
      expect(reserved.err).toMatch(new RegExp(`^slipway: app name "${name}" is reserved for the platform: choose another name \\(reserved: [a-z, -]+\\)\\n$`));
    }
    expect(await fs.readdir(pathsFor(homeB).appsDir)).toEqual(before);
    expect(await stillRunning()).toBe(true);
  });
});

describe('an upgraded instance and objects from before instance ids', () => {
  const app = `t-${randomBytes(5).toString('hex')}`;
  let id: string;

  beforeAll(async () => {
    // What a Slipway without instance ids left running: app labels, no instance label.
    const c = await raw.createContainer({
      name: `${app}.web.1`,
      Image: STACK,
      Cmd: ['sleep', '600'],
      Labels: { ...TEST_LABELS, 'slipway.app': app, 'slipway.type': 'web', 'slipway.index': '1', 'slipway.release': '1' },
    });
    await c.start();
    id = c.id;
  }, 60_000);

  afterAll(async () => {
    await raw.getContainer(id).remove({ force: true }).catch(() => undefined);
  });

  it('another instance neither sees nor removes it, and may not take its name', async () => {
    const other = scopeToInstance(raw, 'cccccccccccccccc');
    expect(await listAppContainers(other, app)).toEqual([]);
    await rejectsOneLine(other.getContainer(id).remove({ force: true }));
    await stopAndRemove(other, id, 0);
    await rejectsOneLine(assertAppNameFree(other, app));
    expect((await raw.getContainer(id).inspect()).State.Running).toBe(true);
  });

  it('the instance that had the app when it got its id adopts it (lists it, may stop it)', async () => {
    const upgraded = scopeToInstance(raw, 'dddddddddddddddd', { legacyApps: new Set([app]) });
    expect((await listAppContainers(upgraded, app)).map((c) => c.Id)).toEqual([id]);
    await expect(assertAppNameFree(upgraded, app)).resolves.toBeUndefined();
    await stopAndRemove(upgraded, id, 0);
    await expect(raw.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('a container of another program named like the app blocks the name too', async () => {
    const name = `t-${randomBytes(5).toString('hex')}`;
    const c = await raw.createContainer({ name: `${name}.web.1`, Image: STACK, Cmd: ['true'], Labels: TEST_LABELS });
    try {
      const err = await rejectsOneLine(assertAppNameFree(scopeToInstance(raw, 'eeeeeeeeeeeeeeee'), name));
      expect(err.message).toMatch(/is in use on this Docker engine/);
    } finally {
      await c.remove({ force: true });
    }
  });
});
