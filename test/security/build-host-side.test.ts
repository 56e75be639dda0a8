import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import DockerodeClass from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_APP_LABEL } from '../../runtime/labels.js';
import { ranBuildpacks, runBuild } from '../../buildpacks/runner.js';
import { rejectsOneLine, throwsOneLine } from '../support/errors.js';
import { TestPlatform, repoRoot, uniqueApp } from '../support/platform.js';

/**
 * Issue 9, critical 1 and medium 5, through the real build path (git push over SSH, the build
 * container, the daemon reading back): a build that links what the daemon reads back to a
 * root-only host file must fail the push with one clean line, never show the file, and leave the
 * running release alone. Build scratch (ENV_DIR with config values) lives under
 * $SLIPWAY_HOME/tmp, root-only, and is emptied when the daemon starts.
 */
describe('build output is read back without following links', () => {
  let platform: TestPlatform;
  let app: string;
  let wc: string;
  let secretFile: string;
  // Parses as a Procfile: before the fix a linked Procfile deployed and ran it.
  const SECRET = `web: echo LEAKED-${crypto.randomBytes(6).toString('hex')}`;
  const token = SECRET.slice('web: echo '.length);
  const docker = new DockerodeClass();

  const cli = async (args: string[]) => {
    const r = await platform.cli(args);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const writeAttack = async (attack: string | null, message: string) => {
    if (attack === null) await fs.rm(path.join(wc, 'attack'), { force: true });
    else await fs.writeFile(path.join(wc, 'attack'), `${attack}\n`);
    await fs.writeFile(path.join(wc, 'note'), `${message}\n`);
    await platform.commitAll(wc, message);
  };
  const state = async () => ({
    releases: JSON.parse(await cli(['releases', app, '--json'])) as unknown[],
    serving: (await platform.fetchApp(app)).body,
  });

  beforeAll(async () => {
    platform = await TestPlatform.start();
    const inst = await platform.cli(['buildpacks:install', path.join(repoRoot, 'fixtures', 'buildpacks', 'linker'), '--name', 'linker']);
    expect(inst.code, inst.stderr).toBe(0);
    // A root-only host file outside anything a build can see.
    secretFile = path.join(platform.home, `secret-${crypto.randomBytes(3).toString('hex')}`);
    await fs.writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
    app = uniqueApp('saferead');
    await platform.createApp(app);
    wc = await fs.mkdtemp(path.join(platform.home, 'wc-'));
    await fs.writeFile(path.join(wc, '.buildpacks'), 'linker\n');
    await fs.writeFile(path.join(wc, 'index.html'), 'v1 serving\n');
    await platform.git(wc, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(wc, 'v1');
    const first = await platform.push(wc, platform.sshRemote(app));
    expect(first.code, first.stderr).toBe(0);
    expect((await platform.fetchApp(app)).body).toBe('v1 serving\n');
  }, 600_000);

  afterAll(async () => {
    await platform?.stop();
  }, 180_000);

  const attacks: { attack: string; error: string }[] = [
    { attack: 'Procfile', error: 'Procfile is a symlink; builds may not link files out of the app: replace it with a regular file' },
    {
      attack: 'buildpacks',
      error: "the build's buildpack list (out/buildpacks) is a symlink; builds may not link files out of the app: replace it with a regular file",
    },
    {
      attack: 'release.yml',
      error: 'the bin/release output (out/release.yml) is a symlink; builds may not link files out of the app: replace it with a regular file',
    },
  ];

  for (const { attack, error } of attacks) {
    it(`refuses a build that links ${attack} to a root-only host file, and changes nothing`, async () => {
      const before = await state();
      await writeAttack(`${attack} ${secretFile}`, `link ${attack}`);
      const push = await platform.push(wc, platform.sshRemote(app));
      expect(push.code).not.toBe(0);
      expect(push.stderr).toContain(` !     ${error}`);
      expect(push.stderr).toContain('The push was refused; the running release is unchanged.');

      const builds = await cli(['builds', app, '--json']);
      const last = (JSON.parse(builds) as { status: string; error: string; buildpacks: string[] }[])[0]!;
      expect(last).toMatchObject({ status: 'failed', error });
      const log = await cli(['builds:log', app]);
      for (const text of [push.stdout, push.stderr, builds, log, await cli(['releases', app]), await cli(['ps', app]), platform.serverLog]) {
        expect(text).not.toContain(token);
      }
      expect(await state()).toEqual(before);
      expect(before.serving).toBe('v1 serving\n');
    }, 300_000);
  }

  it('keeps build scratch (ENV_DIR with config values) in a root-only SLIPWAY_HOME/tmp, and empties it at start', async () => {
    const set = await platform.cli(['config:set', app, 'SCRATCH_SECRET=hunter2', '--no-restart']);
    expect(set.code, set.stderr).toBe(0);
    await writeAttack('wait', 'hold the build');
    const pushing = platform.push(wc, platform.sshRemote(app));
    let build: Dockerode.ContainerInfo | undefined;
    for (let i = 0; i < 600 && !build; i++) {
      [build] = await docker.listContainers({ filters: { label: [`${BUILD_APP_LABEL}=${app}`] } });
      if (!build) await new Promise((r) => setTimeout(r, 200));
    }
    expect(build).toBeDefined();
    const envMount = build!.Mounts.find((m) => m.Destination === '/tmp/env')!;
    const tmpDir = path.join(platform.home, 'tmp');
    expect(path.dirname(path.dirname(envMount.Source))).toBe(tmpDir);
    expect(path.basename(path.dirname(envMount.Source))).toMatch(/^build-/);
    const st = await fs.stat(tmpDir);
    expect({ mode: st.mode & 0o777, uid: st.uid }).toEqual({ mode: 0o700, uid: 0 });
    expect(await fs.readFile(path.join(envMount.Source, 'SCRATCH_SECRET'), 'utf8')).toBe('hunter2');

    // During the build the app's cache is the build's /tmp/cache, in the scratch with BUILD_DIR
    // (one mount, buildpacks/runner.ts); it is back at cache/<app> after.
    const tmpMount = build!.Mounts.find((m) => m.Destination === '/tmp')!;
    expect(path.dirname(tmpMount.Source)).toBe(path.dirname(envMount.Source));
    await fs.writeFile(path.join(tmpMount.Source, 'cache', 'go'), '');
    const push = await pushing;
    expect(push.code, push.stderr).toBe(0);
    expect((await fs.stat(path.join(platform.home, 'cache', app, 'go'))).isFile()).toBe(true);
    await expect(fs.stat(path.dirname(envMount.Source))).rejects.toThrow(/ENOENT/);

    // What a daemon killed mid-build leaves is gone once it starts again.
    await platform.stopDaemon();
    const leftover = path.join(tmpDir, 'build-leftover', 'env');
    await fs.mkdir(leftover, { recursive: true });
    await fs.writeFile(path.join(leftover, 'SCRATCH_SECRET'), 'hunter2');
    await fs.chmod(tmpDir, 0o755);
    await platform.restartDaemon();
    expect(await fs.readdir(tmpDir)).toEqual([]);
    expect((await fs.stat(tmpDir)).mode & 0o777).toBe(0o700);
  }, 600_000);
});

describe('the runner trusts nothing the build wrote', () => {
  it('accepts only the buildpacks it ran, in order', () => {
    const c = [
      { name: 'a', dir: '/a' },
      { name: 'b', dir: '/b' },
    ];
    expect(ranBuildpacks('0\n1\n', c, true)).toEqual(['a', 'b']);
    expect(ranBuildpacks('1\n', c, false)).toEqual(['b']);
    for (const [text, pinned] of [
      ['0\n', true],
      ['1\n0\n', true],
      ['0\n1\n', false],
      ['2\n', false],
      ['-----BEGIN OPENSSH PRIVATE KEY-----\n', false],
      ['', false],
      [null, false],
    ] as const) {
      const err = throwsOneLine(() => ranBuildpacks(text, c, pinned));
      expect(err.message).not.toContain('PRIVATE');
    }
  });

  it('refuses a scratch parent other users can enter, before anything runs', async () => {
    const open = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-scratch-'));
    try {
      await fs.chmod(open, 0o755);
      const err = await rejectsOneLine(
        runBuild({
          docker: {} as Dockerode,
          stackImage: 'unused',
          appDir: open,
          cacheDir: path.join(open, 'cache'),
          envVars: { SECRET: 'x' },
          candidates: [{ name: 'x', dir: open }],
          pinned: false,
          mirrorDir: path.join(open, 'mirror'),
          buildEnv: {},
          memory: '1g',
          pidsLimit: 64,
          timeoutSeconds: 10,
          onOutput: () => undefined,
          scratchParent: open,
        }),
      );
      expect(err.message).toBe(`build scratch folder ${open} must be a folder only its owner (root) can enter: run \`chmod 700 ${open}\``);
      expect((await fs.readdir(open)).filter((f) => f.startsWith('build-'))).toEqual([]);
    } finally {
      await fs.rm(open, { recursive: true, force: true });
    }
  });
});
