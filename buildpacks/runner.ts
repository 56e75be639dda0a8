import crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { sourceRoot } from '../core/source-root.js';
import { parseMemory } from '../core/units.js';
import { SlipwayError } from '../core/errors.js';
import { readFileUnder } from '../core/safe-read.js';
import { lineIndenter } from './output.js';
import { parseRelease } from './release.js';
import { RUNTIMES_MOUNT, type RuntimeDir } from './runtimes.js';

/** A buildpack on the host: `dir` holds bin/detect, bin/compile, optional bin/release. */
export interface BuildpackRef {
  name: string;
  dir: string;
}

export interface BuildResult {
  /** The buildpacks that ran, in order. */
  buildpacks: string[];
  processTypes: Record<string, string>;
  configVars: Record<string, string>;
}

export interface RunBuildOptions {
  docker: Dockerode;
  stackImage: string;
  /** The extracted app; becomes BUILD_DIR and is left holding the built app. */
  appDir: string;
  /** Persists per app between builds. */
  cacheDir: string;
  /** The app's config vars, handed to buildpacks as ENV_DIR. */
  envVars: Record<string, string>;
  candidates: BuildpackRef[];
  /** Run every candidate in order instead of detecting one. */
  pinned: boolean;
  mirrorDir: string;
  /** Platform hints in the build's environment, e.g. SLIPWAY_NODE_VERSION. */
  buildEnv: Record<string, string>;
  /**
   * Runtimes unpacked on the host (buildpacks/runtimes.ts), mounted read-only at
   * `$SLIPWAY_RUNTIMES_DIR/<key>` for the buildpacks that declared them.
   */
  runtimes?: readonly RuntimeDir[];
  /** Docker memory limit like `2g`. */
  memory: string;
  pidsLimit: number;
  timeoutSeconds: number;
  onOutput: (text: string) => void;
  signal?: AbortSignal;
  /** Extra labels for the build container (tests mark theirs). */
  labels?: Record<string, string>;
  /**
   * A root-only (0700) folder the build's scratch (ENV_DIR with the config values, the out
   * folder) is made in: `$SLIPWAY_HOME/tmp` in the daemon, emptied at every start. Never /tmp,
   * where host users could read the secrets and a crash would leave them (issue 9, medium 5).
   */
  scratchParent: string;
}

/** The uid:gid buildpacks run as in the stack image (user `slipway`). */
const BUILD_UID = 1000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const EXIT_NOTHING_DETECTED = 3;
const EXIT_COMPILE_FAILED = 4;
const EXIT_RELEASE_FAILED = 5;
const EXIT_PINNED_NOT_DETECTED = 6;

/** The folder holding driver.sh and the built-in buildpacks (not compiled: read from the source tree). */
export function buildpacksHome(): string {
  const dir = path.join(sourceRoot(import.meta.url), 'buildpacks');
  if (!existsSync(path.join(dir, 'driver.sh'))) throw new SlipwayError('E_INTERNAL', `cannot find ${path.join(dir, 'driver.sh')}: reinstall Slipway`);
  return dir;
}

/**
 * Runs the Heroku buildpack API v2 over `appDir` in one throwaway container of the stack image:
 * no network, an unprivileged user, memory and pid limits, the mirror and the buildpacks
 * read-only. Output streams live to `onOutput`. The container and temp dirs are always removed.
 */
export async function runBuild(o: RunBuildOptions): Promise<BuildResult> {
  if (o.candidates.length === 0) throw new SlipwayError('E_DETECT', 'no buildpacks are installed: install one with `slipway buildpacks:install <dir|tarball>`');
  for (const key of Object.keys(o.envVars)) {
    // Keys become file names in ENV_DIR: anything else could escape it.
    if (!ENV_NAME.test(key)) throw new SlipwayError('E_BUILD', `config var name ${JSON.stringify(key.slice(0, 60))} is not a valid environment variable name`);
  }
  const memory = parseMemory(o.memory);
  const runtimes = o.runtimes ?? [];
  for (const r of runtimes) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(r.key)) throw new SlipwayError('E_INTERNAL', `invalid runtime folder name ${JSON.stringify(r.key)}`);
  }
  const home = buildpacksHome();
  // A bind mount of a missing folder fails; an empty mirror is a valid (strict) one.
  await fs.mkdir(o.mirrorDir, { recursive: true });
  const scratch = await makeScratch(o.scratchParent);
  let container: Dockerode.Container | undefined;
  let shared: SharedMount | null = null;
  try {
    const envDir = path.join(scratch, 'env');
    const outDir = path.join(scratch, 'out');
    await fs.mkdir(envDir, { mode: 0o700 });
    await fs.mkdir(outDir, { mode: 0o700 });
    for (const [k, v] of Object.entries(o.envVars)) await fs.writeFile(path.join(envDir, k), v, { mode: 0o600 });
    // The build user must read the secrets in ENV_DIR and write BUILD_DIR, CACHE_DIR and out; no
    // one else needs to.
    await chownTree(envDir);
    await chownTree(outDir);
    await chownTree(o.appDir);
    await fs.mkdir(o.cacheDir, { recursive: true });
    await chownTree(o.cacheDir);
    await fs.chmod(scratch, 0o711);
    shared = await shareOneMount(scratch, o.appDir, o.cacheDir);

    const bind = (source: string, target: string, readOnly: boolean) => ({ Type: 'bind' as const, Source: path.resolve(source), Target: target, ReadOnly: readOnly });
    const env = [
      ...Object.entries(o.buildEnv).filter(([k]) => ENV_NAME.test(k)).map(([k, v]) => `${k}=${v}`),
      `SLIPWAY_BP_COUNT=${o.candidates.length}`,
      ...o.candidates.map((c, i) => `SLIPWAY_BP_NAME_${i}=${c.name}`),
      `SLIPWAY_PINNED=${o.pinned ? 1 : 0}`,
      ...(runtimes.length > 0 ? [`SLIPWAY_RUNTIMES_DIR=${RUNTIMES_MOUNT}`] : []),
    ];
    container = await o.docker.createContainer({
      name: `slipway-build-${crypto.randomBytes(6).toString('hex')}`,
      Image: o.stackImage,
      Cmd: ['/bin/bash', '/tmp/driver.sh'],
      User: `${BUILD_UID}:${BUILD_UID}`,
      WorkingDir: '/tmp/build',
      Env: env,
      Labels: { 'slipway.role': 'build', ...o.labels },
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      HostConfig: {
        NetworkMode: 'none',
        Memory: memory,
        MemorySwap: memory,
        PidsLimit: o.pidsLimit,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Mounts: [
          // BUILD_DIR and CACHE_DIR on one mount when they could be moved together (shareOneMount),
          // else each on its own; the paths are the same either way. The engine mounts /tmp first.
          ...(shared ? [bind(shared.root, '/tmp', false)] : [bind(o.appDir, '/tmp/build', false), bind(o.cacheDir, '/tmp/cache', false)]),
          bind(path.join(home, 'driver.sh'), '/tmp/driver.sh', true),
          bind(envDir, '/tmp/env', true),
          bind(outDir, '/tmp/out', false),
          bind(o.mirrorDir, '/mirror', true),
          ...o.candidates.map((c, i) => bind(c.dir, `/tmp/buildpacks/${i}`, true)),
          // Root's and read-only: a build links to them and cannot change what other builds and
          // every release of this version run.
          ...runtimes.map((r) => bind(r.hostDir, path.posix.join(RUNTIMES_MOUNT, r.key), true)),
        ],
      },
    });

    const stdout = lineIndenter(o.onOutput);
    const stderr = lineIndenter(o.onOutput);
    const attached = await container.attach({ stream: true, stdout: true, stderr: true });
    const outStream = new PassThrough().on('data', (c: Buffer) => stdout.write(c));
    const errStream = new PassThrough().on('data', (c: Buffer) => stderr.write(c));
    container.modem.demuxStream(attached, outStream, errStream);
    const drained = new Promise<void>((resolve) => {
      attached.on('end', resolve);
      attached.on('close', resolve);
      attached.on('error', () => resolve());
    });

    let stopped: 'timeout' | 'cancelled' | null = null;
    const c = container;
    const stop = (why: 'timeout' | 'cancelled') => {
      stopped ??= why;
      c.kill().catch(() => undefined);
    };
    const timer = setTimeout(() => stop('timeout'), o.timeoutSeconds * 1000);
    const onAbort = () => stop('cancelled');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    let status: number;
    try {
      if (o.signal?.aborted) throw new SlipwayError('E_BUILD', 'build cancelled');
      await container.start();
      status = ((await container.wait()) as { StatusCode: number }).StatusCode;
      // The attach stream ends right after the container; wait for its last bytes, briefly.
      await Promise.race([drained, new Promise((r) => setTimeout(r, 2000))]);
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      stdout.flush();
      stderr.flush();
    }
    if (stopped === 'timeout') throw new SlipwayError('E_BUILD', `build timed out after ${o.timeoutSeconds} s`);
    if (stopped === 'cancelled') throw new SlipwayError('E_BUILD', 'build cancelled');

    // Everything in out/ was writable by the code that just ran: read it without following links
    // (core/safe-read.ts) and believe only what parses.
    const failed = async () => {
      const text = (await readFileUnder(outDir, 'failed', { maxBytes: 1024, what: "the build's failure report (out/failed)" })) ?? '';
      const m = /^([0-9]{1,4})(?: ([0-9]{1,3}))?$/.exec(text.trim());
      return { name: (m && o.candidates[Number(m[1])]?.name) || 'unknown', code: m?.[2] };
    };
    if (status === EXIT_NOTHING_DETECTED) {
      throw new SlipwayError(
        'E_DETECT',
        `no buildpack detected this app (tried: ${o.candidates.map((b) => b.name).join(', ')}); pin one with a .buildpacks file or \`slipway buildpacks:set <app> <buildpack>\``,
      );
    }
    if (status === EXIT_COMPILE_FAILED) {
      const f = await failed();
      throw new SlipwayError('E_BUILD', `buildpack ${f.name} failed to compile${f.code ? ` (exit status ${f.code})` : ''}`);
    }
    if (status === EXIT_PINNED_NOT_DETECTED) {
      throw new SlipwayError('E_DETECT', `pinned buildpack ${(await failed()).name} does not apply to this app (its bin/detect refused it, after the buildpacks before it ran): fix the app or the list in .buildpacks / buildpacks:set`);
    }
    if (status === EXIT_RELEASE_FAILED) throw new SlipwayError('E_BUILD', `buildpack ${(await failed()).name}: bin/release failed`);
    if (status !== 0) {
      const oom = (await container.inspect()).State?.OOMKilled === true;
      throw new SlipwayError('E_BUILD', oom ? `build ran out of memory (limit ${o.memory})` : `build failed (exit status ${status})`);
    }

    const ran = ranBuildpacks(await readFileUnder(outDir, 'buildpacks', { maxBytes: 64 * 1024, what: "the build's buildpack list (out/buildpacks)" }), o.candidates, o.pinned);
    const releaseText = (await readFileUnder(outDir, 'release.yml', { maxBytes: 1024 * 1024, what: 'the bin/release output (out/release.yml)' })) ?? '';
    const release = parseRelease(releaseText, ran[ran.length - 1] ?? 'unknown');
    for (const note of release.notes) o.onOutput(`       Note: ${note}\n`);
    return { buildpacks: ran, processTypes: release.processTypes, configVars: release.configVars };
  } finally {
    if (container) await container.remove({ force: true }).catch(() => undefined);
    // Before the scratch goes: the app and the cache are still in it. Whatever the build did,
    // failed or not, the cache goes back (issue 15: a failed build keeps its cache).
    try {
      if (shared) await shared.moveBack(o.onOutput);
    } finally {
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }
}

/** The build's /tmp on the host, holding BUILD_DIR and CACHE_DIR, and the way back out of it. */
interface SharedMount {
  root: string;
  moveBack: (say: (text: string) => void) => Promise<void>;
}

/**
 * Puts the app dir and the cache dir side by side in one folder of the scratch, mounted as the
 * build's /tmp, so BUILD_DIR (/tmp/build) and CACHE_DIR (/tmp/cache) are one mount: a buildpack
 * can then restore its cache by a rename or hard links instead of a copy (issue 15; link and
 * rename fail with EXDEV across two bind mounts, even of one file system). The paths buildpacks
 * see do not change. Both are moved by rename, so this needs them on the scratch's file system
 * (they are, under $SLIPWAY_HOME); otherwise null, and the build mounts them apart as before.
 */
export async function shareOneMount(scratch: string, appDir: string, cacheDir: string): Promise<SharedMount | null> {
  const root = path.join(scratch, 'tmp');
  await fs.mkdir(root, { mode: 0o700 });
  // A /tmp like any other: everyone may create, only owners remove (the mount points the engine
  // makes in it for /tmp/env, /tmp/out, ... stay root's).
  await fs.chmod(root, 0o1777);
  const build = path.join(root, 'build');
  const cache = path.join(root, 'cache');
  try {
    await fs.rename(appDir, build);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EXDEV') return null;
    throw err;
  }
  try {
    await fs.rename(cacheDir, cache);
  } catch (err) {
    await fs.rename(build, appDir);
    if ((err as NodeJS.ErrnoException).code === 'EXDEV') return null;
    throw err;
  }
  /** Moves `from` back to `to` if the build left a folder there (it may have renamed or replaced it). */
  const back = async (from: string, to: string): Promise<boolean> => {
    const st = await fs.lstat(from).catch(() => null);
    if (!st?.isDirectory()) {
      await fs.mkdir(to, { recursive: true });
      return false;
    }
    await fs.rename(from, to);
    return true;
  };
  return {
    root,
    moveBack: async (say) => {
      try {
        if (!(await back(cache, cacheDir))) say('       (the build removed CACHE_DIR: the next build starts with an empty cache)\n');
      } finally {
        if (!(await back(build, appDir))) throw new SlipwayError('E_BUILD', 'the build removed or replaced BUILD_DIR (/tmp/build): buildpacks build the app in place');
      }
    },
  };
}

/**
 * The names of the buildpacks that ran, from the driver's list of indices. The list lives where
 * build code could rewrite it, so it must name exactly what the driver runs: every candidate in
 * order when pinned, else the one detected. Anything else fails the build. Pure.
 */
export function ranBuildpacks(text: string | null, candidates: BuildpackRef[], pinned: boolean): string[] {
  const invalid = () => new SlipwayError('E_BUILD', "the build's list of buildpacks that ran (out/buildpacks) was tampered with: a buildpack or the app's build overwrote it; remove that step and push again");
  if (text === null) throw invalid();
  const lines = text.split('\n').filter((l) => l !== '');
  if (!lines.every((l) => /^[0-9]{1,4}$/.test(l))) throw invalid();
  const indices = lines.map(Number);
  const expected = pinned ? candidates.map((_, i) => i) : indices.length === 1 && indices[0]! < candidates.length ? indices : null;
  if (expected === null || indices.length !== expected.length || indices.some((v, i) => v !== expected[i])) throw invalid();
  return indices.map((i) => candidates[i]!.name);
}

/**
 * The build's own scratch folder inside `parent`, which must be a root-only folder: ENV_DIR holds
 * the config values, readable by uid 1000, and uid 1000 may be a real user on the host.
 */
async function makeScratch(parent: string): Promise<string> {
  if (!path.isAbsolute(parent)) throw new SlipwayError('E_INTERNAL', `build scratch folder ${parent} must be an absolute path`);
  await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  const st = await fs.lstat(parent);
  if (!st.isDirectory() || (st.mode & 0o077) !== 0 || (process.getuid?.() === 0 && st.uid !== 0)) {
    throw new SlipwayError('E_INTERNAL', `build scratch folder ${parent} must be a folder only its owner (root) can enter: run \`chmod 700 ${parent}\``);
  }
  return fs.mkdtemp(path.join(parent, 'build-'));
}

/** chown -R to the build user, never following symlinks (a pushed tree may contain them). */
async function chownTree(dir: string): Promise<void> {
  await fs.lchown(dir, BUILD_UID, BUILD_UID);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(p);
    else await fs.lchown(p, BUILD_UID, BUILD_UID);
  }
}
