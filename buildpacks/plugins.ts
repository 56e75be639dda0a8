import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { readJson, writeJsonAtomic } from '../core/files.js';
import { BUILTIN_BUILDPACKS } from './builtins.js';
import type { BuildpackRef } from './runner.js';
import { symlinkEscapes } from './safe-paths.js';
import { extractSafely } from './safe-tar.js';

export { BUILTIN_BUILDPACKS };

/** Largest buildpack tarball or tree accepted: buildpacks are scripts, not dependencies. */
export const MAX_BUILDPACK_BYTES = 256 * 1024 * 1024;

export interface BuildpackInfo extends BuildpackRef {
  /** `builtin`, or where it was installed from (a path or URL, credentials removed). */
  source: string;
  /** From buildpack.toml or VERSION, else `sha256:<12 hex>` of the contents. */
  version: string;
  /** An installed buildpack with a built-in's name replaces the built-in. */
  overrides: boolean;
}

interface Meta {
  source: string;
  installedAt: string;
}

/**
 * The buildpacks a platform knows: the built-ins shipped in the repository, and the ones an
 * operator installed under $SLIPWAY_HOME/buildpacks/<name>. Installs are atomic: a new tree is
 * completed in a hidden temp folder of the same file system, then renamed into place.
 */
export class BuildpackPlugins {
  readonly #builtinDir: string;
  readonly #dir: string;

  constructor(builtinDir: string, installedDir: string) {
    this.#builtinDir = builtinDir;
    this.#dir = installedDir;
  }

  get installedDir(): string {
    return this.#dir;
  }

  /** Detection order: built-ins (or what replaced them), then installed ones by name. */
  async list(): Promise<BuildpackRef[]> {
    const installed = await this.#installedNames();
    const builtins = BUILTIN_BUILDPACKS.map((name) => ({ name, dir: installed.includes(name) ? path.join(this.#dir, name) : path.join(this.#builtinDir, name) }));
    const others = installed.filter((n) => !BUILTIN_BUILDPACKS.includes(n)).map((name) => ({ name, dir: path.join(this.#dir, name) }));
    return [...builtins, ...others];
  }

  async describe(): Promise<BuildpackInfo[]> {
    const installed = await this.#installedNames();
    const out: BuildpackInfo[] = [];
    for (const ref of await this.list()) {
      const isInstalled = installed.includes(ref.name);
      const meta = isInstalled ? await readJson<Meta | null>(this.#metaFile(ref.name), null) : null;
      out.push({
        ...ref,
        source: isInstalled ? (meta?.source ?? ref.dir) : 'builtin',
        version: await buildpackVersion(ref.dir),
        overrides: isInstalled && BUILTIN_BUILDPACKS.includes(ref.name),
      });
    }
    return out;
  }

  /**
   * Installs a buildpack from a folder or a gzipped tarball (already read). Replaces an installed
   * one of the same name; a built-in's name needs `force`.
   */
  async install(o: { dir?: string; tarball?: Buffer; tarballName?: string; name?: string; force?: boolean; source: string }): Promise<{ info: BuildpackInfo; replaced: boolean }> {
    const fallback = o.dir !== undefined ? path.basename(path.resolve(o.dir)) : (o.tarballName ?? '').replace(/\.(tgz|tar\.gz)$/, '');
    const name = o.name ?? fallback;
    if (!isValidAppName(name)) {
      throw new SlipwayError('E_BUILDPACK', `invalid buildpack name ${JSON.stringify(name.slice(0, 60))}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter (pass --name)`);
    }
    if (BUILTIN_BUILDPACKS.includes(name) && !o.force) {
      throw new SlipwayError('E_BUILDPACK', `"${name}" is a built-in buildpack: pick another --name, or pass --force to replace the built-in`);
    }
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const work = await fs.mkdtemp(path.join(this.#dir, '.install-'));
    try {
      const staged = path.join(work, 'bp');
      if (o.tarball) {
        await extractTarball(o.tarball, staged);
        await copyTree(await tarballRoot(staged), path.join(work, 'root'));
        await fs.rm(staged, { recursive: true });
        await fs.rename(path.join(work, 'root'), staged);
      } else if (o.dir !== undefined) {
        const st = await fs.stat(o.dir).catch(() => null);
        if (!st?.isDirectory()) throw new SlipwayError('E_BUILDPACK', `no such folder: ${o.dir}`);
        await copyTree(o.dir, staged);
      } else {
        throw new SlipwayError('E_USAGE', 'buildpacks:install needs a folder or a tarball', { exitCode: 2 });
      }
      await validateBuildpack(staged);
      const target = path.join(this.#dir, name);
      const replaced = await swapInto(staged, target, work);
      await fs.mkdir(path.join(this.#dir, '.meta'), { recursive: true, mode: 0o700 });
      await writeJsonAtomic(this.#metaFile(name), { source: o.source, installedAt: new Date().toISOString() } satisfies Meta);
      const info = (await this.describe()).find((b) => b.name === name)!;
      return { info, replaced };
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  #metaFile(name: string): string {
    return path.join(this.#dir, '.meta', `${name}.json`);
  }

  async #installedNames(): Promise<string[]> {
    return (await fs.readdir(this.#dir, { withFileTypes: true }).catch(() => []))
      .filter((e) => e.isDirectory() && isValidAppName(e.name))
      .map((e) => e.name)
      .sort();
  }
}

/** Renames `staged` to `target`, moving an existing target aside first. Returns whether one existed. */
export async function swapInto(staged: string, target: string, work: string): Promise<boolean> {
  const old = path.join(work, 'old');
  let replaced = false;
  try {
    await fs.rename(target, old);
    replaced = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.rename(staged, target);
  return replaced;
}

/** A buildpack needs executable bin/detect and bin/compile files; bin/release is optional. */
export async function validateBuildpack(dir: string): Promise<void> {
  for (const script of ['bin/detect', 'bin/compile']) {
    const st = await fs.lstat(path.join(dir, script)).catch(() => null);
    if (!st?.isFile()) throw new SlipwayError('E_BUILDPACK', `not a buildpack: ${script} is missing (a buildpack needs bin/detect and bin/compile; see \`slipway buildpacks:new\`)`);
    if ((st.mode & 0o111) === 0) throw new SlipwayError('E_BUILDPACK', `not a buildpack: ${script} is not executable: run chmod +x ${script} (and commit the mode)`);
  }
}

/**
 * The version an operator sees: buildpack.toml's `version`, else the first line of VERSION, else
 * a hash of the contents so two different trees never look the same.
 */
export async function buildpackVersion(dir: string): Promise<string> {
  const toml = await fs.readFile(path.join(dir, 'buildpack.toml'), 'utf8').catch(() => null);
  const fromToml = toml === null ? null : /^\s*version\s*=\s*"([^"\n]{1,64})"/m.exec(toml)?.[1];
  if (fromToml) return fromToml;
  const file = (await fs.readFile(path.join(dir, 'VERSION'), 'utf8').catch(() => '')).split('\n')[0]!.trim();
  if (file !== '' && file.length <= 64) return file;
  return `sha256:${(await treeHash(dir)).slice(0, 12)}`;
}

async function treeHash(dir: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const entries = (await fs.readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const abs = path.join(dir, r);
      const st = await fs.lstat(abs);
      hash.update(`${r}\0${st.mode & 0o111 ? 'x' : '-'}\0`);
      if (e.isDirectory()) await walk(r);
      else if (e.isSymbolicLink()) hash.update(await fs.readlink(abs));
      else if (e.isFile()) hash.update(await fs.readFile(abs));
    }
  };
  await walk('');
  return hash.digest('hex');
}

/**
 * Copies a buildpack tree, keeping only the executable bit of each file's mode and making
 * everything readable by the build user. Symlinks are kept only when they stay inside the tree;
 * `.git` is history, not the buildpack.
 */
export async function copyTree(src: string, dest: string): Promise<void> {
  const symlinks = new Map<string, string>();
  let bytes = 0;
  const walk = async (rel: string): Promise<void> => {
    const from = path.join(src, rel);
    await fs.mkdir(path.join(dest, rel), { mode: 0o755 });
    await fs.chmod(path.join(dest, rel), 0o755);
    for (const e of await fs.readdir(from, { withFileTypes: true })) {
      if (rel === '' && e.name === '.git') continue;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      const abs = path.join(src, r);
      if (e.isDirectory()) {
        await walk(r);
      } else if (e.isSymbolicLink()) {
        const target = await fs.readlink(abs);
        symlinks.set(r, target);
        if (symlinkEscapes(r, target, symlinks)) throw new SlipwayError('E_BUILDPACK', `refusing ${r}: the symlink points outside the buildpack (${target.slice(0, 200)})`);
        await fs.symlink(target, path.join(dest, r));
      } else if (e.isFile()) {
        const st = await fs.stat(abs);
        bytes += st.size;
        if (bytes > MAX_BUILDPACK_BYTES) throw new SlipwayError('E_TOO_LARGE', `the buildpack is larger than ${MAX_BUILDPACK_BYTES / 1024 / 1024} MiB`);
        await fs.copyFile(abs, path.join(dest, r));
        await fs.chmod(path.join(dest, r), st.mode & 0o111 ? 0o755 : 0o644);
      }
      // Sockets, fifos and devices are not buildpack content.
    }
  };
  await walk('');
}

/**
 * Extracts a gzipped tar into `dest` with the rules of pushed trees: no absolute paths, no `..`,
 * nothing under or through a symlink that leaves the tree, only files, folders and symlinks.
 */
export async function extractTarball(data: Buffer, dest: string): Promise<void> {
  await fs.mkdir(dest, { recursive: true, mode: 0o755 });
  // Resolved before the stream starts: entries must not flow before extractSafely listens.
  const realDest = await fs.realpath(dest);
  const extract = tar.extract();
  const feeding = pipeline(Readable.from([data]), zlib.createGunzip(), extract).catch((err: unknown) => {
    extract.destroy(err as Error);
  });
  try {
    await extractSafely(extract, {
      dest: realDest,
      maxBytes: MAX_BUILDPACK_BYTES,
      entryLabel: 'tarball',
      treeLabel: 'the buildpack',
      tooLarge: `the tarball unpacks to more than ${MAX_BUILDPACK_BYTES / 1024 / 1024} MiB`,
    });
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    throw new SlipwayError('E_ARCHIVE', `not a gzipped tar archive, or a damaged one: ${(err as Error).message}`);
  }
  await feeding;
}

/** Tarballs from GitHub and many tools wrap everything in one top folder: the buildpack is inside it. */
export async function tarballRoot(dir: string): Promise<string> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  if (entries.some((e) => e.name === 'bin')) return dir;
  if (entries.length === 1 && entries[0]!.isDirectory()) return path.join(dir, entries[0]!.name);
  return dir;
}
