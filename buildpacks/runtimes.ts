import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { SlipwayError } from '../core/errors.js';
import { isNpmName, npmTarballPath } from './mirror/layout.js';
import { extractSafely } from './safe-tar.js';

/**
 * Language runtimes (a Node.js binary, npm) unpacked once per version on the host, under
 * `$SLIPWAY_HOME/runtimes/<name>-<version>`, and bind-mounted read-only into build containers at
 * `RUNTIMES_MOUNT/<name>-<version>` instead of being copied into every build (issue 15). The release
 * image carries the same folders at the same path (runtime/images.ts), so what a build links to
 * is what the app runs with. Which runtimes a build gets is declared by the buildpack
 * (buildpacks/builtins.ts, `runtimes`); the platform knows no runtime by name.
 */
export const RUNTIMES_MOUNT = '/opt/slipway/runtimes';

/** Written last into an unpacked runtime, before it is renamed into place: its absence means broken. */
export const RUNTIME_MARKER = '.slipway-runtime.json';

/** A runtime unpacked on the host: `key` is its folder name both on the host and under RUNTIMES_MOUNT. */
export interface RuntimeDir {
  key: string;
  hostDir: string;
}

/** An npm-layout package of the mirror (`npm/<name>/-/<name>-<version>.tgz`). */
export interface RuntimePackage {
  name: string;
  version: string;
  /** The top-level folders and files of the package to unpack (what builds and releases use); all when absent. */
  paths?: readonly string[];
}

const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+$/;
/** A runtime is a few hundred megabytes at most (Node.js 24 unpacks to about 190 MB). */
const MAX_RUNTIME_BYTES = 1024 * 1024 * 1024;

/** The folder name of a runtime; only unscoped names and plain versions, so it is one path component. Pure. */
export function runtimeKey(p: RuntimePackage): string {
  if (!isNpmName(p.name) || p.name.includes('/') || !VERSION.test(p.version)) {
    throw new SlipwayError('E_BUILDPACK', `invalid runtime ${JSON.stringify(`${p.name}@${p.version}`.slice(0, 100))}: an unscoped package name and an x.y.z version are needed`);
  }
  return `${p.name}-${p.version}`;
}

interface Marker {
  name: string;
  version: string;
  paths: string[] | null;
  files: number;
  bytes: number;
}

/** Whether `dir` is a complete unpack of `p`: a folder (not a link) holding the marker written last. */
async function isComplete(dir: string, p: RuntimePackage): Promise<boolean> {
  const st = await fs.lstat(dir).catch(() => null);
  if (!st?.isDirectory()) return false;
  const text = await fs.readFile(path.join(dir, RUNTIME_MARKER), 'utf8').catch(() => null);
  if (text === null) return false;
  try {
    const m = JSON.parse(text) as Partial<Marker>;
    return m.name === p.name && m.version === p.version && JSON.stringify(m.paths ?? null) === JSON.stringify(wanted(p));
  } catch {
    return false;
  }
}

/**
 * Removes the temporary folders of unpacks a dead daemon left (`.unpack-*`: never a runtime's
 * name). Only while no build runs: the daemon calls it as it starts.
 */
export async function removeStaleUnpacks(runtimesDir: string): Promise<string[]> {
  const stale = (await fs.readdir(runtimesDir).catch(() => [] as string[])).filter((name) => name.startsWith('.unpack-'));
  for (const name of stale) await fs.rm(path.join(runtimesDir, name), { recursive: true, force: true, maxRetries: 3 });
  return stale;
}

/**
 * The unpacked runtimes under `runtimesDir` whose key is not in `keep`: what `slipway prune` may
 * remove (README "Cleaning up"). Only runtime-shaped names; temporary unpacks (`.unpack-*`) are
 * removeStaleUnpacks's. Pure.
 */
export function unusedRuntimeDirs(entries: readonly string[], keep: ReadonlySet<string>): string[] {
  return entries.filter((name) => /^[A-Za-z0-9~-][A-Za-z0-9._~-]*-[0-9]+\.[0-9]+\.[0-9]+$/.test(name) && !keep.has(name)).sort();
}

/** Removes unpacked runtimes by key. Only while nothing mounts or unpacks them (`slipway prune` holds builds). */
export async function removeRuntimeDirs(runtimesDir: string, keys: readonly string[]): Promise<void> {
  for (const key of keys) await fs.rm(path.join(runtimesDir, key), { recursive: true, force: true, maxRetries: 3 });
}

const wanted = (p: RuntimePackage): string[] | null => (p.paths ? [...p.paths].sort() : null);

/** Files lose their write bits: nobody edits a runtime in place (a new version is a new folder). */
async function dropWriteBits(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await dropWriteBits(p);
    else if (entry.isFile()) await fs.chmod(p, (await fs.lstat(p)).mode & 0o555);
  }
}

/**
 * The runtimes of one `$SLIPWAY_HOME`: each unpacked from the mirror's tarball the first time it
 * is asked for (only the package's `paths` when given), one unpack per runtime at a time. The
 * daemon makes one and hands it to whatever prepares runtimes (pushes, and the preparation ahead
 * of them, README "Server options" `prepareRuntimes`), so a push that needs a runtime being
 * unpacked waits for that unpack instead of starting its own. Other processes are handled by the
 * atomic rename.
 *
 * An unpack goes into a temporary folder beside the final one, the marker written last, then is
 * renamed into place, so a crash or a failed unpack never leaves a folder under the final name
 * that looks complete. A folder under the final name without its marker (a broken unpack, say by
 * an older version or a full disk) is removed and unpacked again.
 */
export class RuntimeUnpacks {
  readonly #running = new Map<string, Promise<RuntimeDir | null>>();
  readonly #o: { runtimesDir: string; mirrorDir: string };
  readonly #unpack: (pkg: RuntimePackage) => Promise<RuntimeDir | null>;

  /**
   * unpackWith: where a missing runtime is unpacked; by default in this process. The daemon has
   * another process do it (hooks/runtime-prep-process.ts), so the bytes never pass through its
   * own memory (README "Server options", `prepareRuntimes`).
   */
  constructor(o: { runtimesDir: string; mirrorDir: string; unpackWith?: (pkg: RuntimePackage) => Promise<RuntimeDir | null> }) {
    this.#o = { runtimesDir: o.runtimesDir, mirrorDir: o.mirrorDir };
    this.#unpack = o.unpackWith ?? ((pkg) => unpackRuntime({ ...this.#o, pkg }, runtimeKey(pkg)));
  }

  /** The host folder of a runtime; null when the mirror has no tarball for it (the buildpack then does without). */
  ensure(pkg: RuntimePackage): Promise<RuntimeDir | null> {
    const key = runtimeKey(pkg);
    const running = this.#running.get(key);
    if (running) return running;
    const hostDir = path.join(this.#o.runtimesDir, key);
    const work = isComplete(hostDir, pkg)
      .then((done) => (done ? { key, hostDir } : this.#unpack(pkg)))
      .finally(() => this.#running.delete(key));
    this.#running.set(key, work);
    return work;
  }
}

async function unpackRuntime(o: { runtimesDir: string; mirrorDir: string; pkg: RuntimePackage }, key: string): Promise<RuntimeDir | null> {
  const hostDir = path.join(o.runtimesDir, key);
  for (const p of o.pkg.paths ?? []) {
    if (!/^[A-Za-z0-9._-]+$/.test(p) || p === '.' || p === '..') throw new SlipwayError('E_BUILDPACK', `invalid runtime path ${JSON.stringify(p)}: a top-level name of the package`);
  }
  const tgz = path.join(o.mirrorDir, npmTarballPath(o.pkg.name, o.pkg.version));
  if (!(await fs.stat(tgz).catch(() => null))?.isFile()) return null;
  await fs.mkdir(o.runtimesDir, { recursive: true, mode: 0o755 });
  // Broken: never used, replaced.
  await fs.rm(hostDir, { recursive: true, force: true });
  const tmp = await fs.mkdtemp(path.join(o.runtimesDir, `.unpack-${key}-`));
  try {
    const extract = tar.extract();
    const feeding = pipeline(createReadStream(tgz), createGunzip(), extract).catch(() => undefined);
    let counted: { files: number; bytes: number };
    try {
      counted = await extractSafely(extract, {
        dest: tmp,
        maxBytes: MAX_RUNTIME_BYTES,
        entryLabel: 'runtime tarball',
        treeLabel: 'the runtime',
        tooLarge: `runtime ${key} unpacks to more than ${MAX_RUNTIME_BYTES} bytes`,
        // `package/` and, when the buildpack named them, only the parts it uses.
        keep: (parts) => !o.pkg.paths || parts.length < 2 || o.pkg.paths.includes(parts[1]!),
      });
    } catch (err) {
      throw new SlipwayError('E_MIRROR', `unpacking runtime ${key} from the mirror failed: ${(err as Error).message}`, { cause: err });
    }
    await feeding;
    // npm tarballs hold one top folder, `package/`.
    const root = path.join(tmp, 'package');
    if (!(await fs.lstat(root).catch(() => null))?.isDirectory()) throw new SlipwayError('E_MIRROR', `runtime tarball ${key} has no package/ folder`);
    await dropWriteBits(root);
    await fs.chmod(root, 0o755);
    const marker: Marker = { name: o.pkg.name, version: o.pkg.version, paths: wanted(o.pkg), ...counted };
    await fs.writeFile(path.join(root, RUNTIME_MARKER), `${JSON.stringify(marker)}\n`, { mode: 0o444 });
    try {
      await fs.rename(root, hostDir);
    } catch (err) {
      // Another process renamed its own unpack into place first: use that one.
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !(await isComplete(hostDir, o.pkg))) throw err;
    }
    return { key, hostDir };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
