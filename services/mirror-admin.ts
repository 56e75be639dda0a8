import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import semver from 'semver';
import { defaults, type Config } from '../core/config.js';
import { oneLine, SlipwayError } from '../core/errors.js';
import { appCachePath, type Paths } from '../core/paths.js';
import type { SettingsStore } from '../core/settings.js';
import { exportBundle, hashing, importBundle } from '../buildpacks/mirror/bundle.js';
import { ensureNpmPackages, fetchPackument, throwIfCancelled } from '../buildpacks/mirror/fetch.js';
import { MultiHash } from '../buildpacks/mirror/integrity.js';
import { addManifestEntries, isNpmName, mirroredVersions, NODE_PACKAGE, readManifest, type MirrorKind } from '../buildpacks/mirror/layout.js';
import { lockfilePackages, type LockedPackage } from '../buildpacks/mirror/lockfile.js';
import { resolveNodeRuntime } from '../buildpacks/mirror/node-runtime.js';
import { parsePypiFilename } from '../buildpacks/mirror/pypi.js';
import { exportStack, importStack } from '../runtime/stack.js';

export type UpstreamKind = 'npm' | 'pypi';
type Progress = (line: string) => void;

export interface UpstreamInfo {
  url: string | null;
  /** Which setting decided it, so `mirror:status` can explain itself. */
  from: 'mirror:upstream' | 'config.json' | 'host npm config' | 'default';
}

export interface MirrorStatus {
  dir: string;
  kinds: Record<MirrorKind, { count: number; bytes: number }>;
  upstreams: Record<UpstreamKind, UpstreamInfo>;
  /** When the newest entry arrived (fetch, add or import). */
  lastSync: string | null;
}

export interface MirrorAdminDeps {
  config: Config;
  paths: Paths;
  docker: Dockerode;
  settings: SettingsStore;
  /** Runs a task in the app's queue, so a cache purge never races a build of the same app. */
  serialize: <T>(app: string, task: () => Promise<T>) => Promise<T>;
  /** The registry the host's npm uses; read once. Injected so tests need not have npm. */
  hostNpmRegistry?: () => Promise<string | null>;
  /**
   * Makes a Node.js version just put in the mirror ready for builds (hooks/runtime-prep.ts); absent
   * when `prepareRuntimes` is off.
   */
  prepareNode?: (runtime: { node: string; npm: string }, progress: Progress) => Promise<unknown>;
}

/**
 * The operator's handle on the offline mirror and the stack image: upstream settings, filling
 * the mirror by hand, carrying it across an air gap, and per-app build caches.
 */
export class MirrorAdmin {
  readonly #d: MirrorAdminDeps;
  readonly #hostRegistry: () => Promise<string | null>;

  constructor(deps: MirrorAdminDeps) {
    this.#d = deps;
    let once: Promise<string | null> | undefined;
    this.#hostRegistry = deps.hostNpmRegistry ?? (() => (once ??= readHostNpmRegistry()));
  }

  get mirrorDir(): string {
    return this.#d.paths.mirrorDir;
  }

  /**
   * The upstream in force now: `mirror:upstream` wins; then config.json when it sets one (or sets
   * null: off); then, for npm, the registry the host's npm is configured with; then the default.
   */
  async upstreamInfo(kind: UpstreamKind): Promise<UpstreamInfo> {
    const settings = await this.#d.settings.read();
    const key = kind === 'npm' ? 'npmUpstream' : 'pypiUpstream';
    const set = settings[key];
    if (set !== undefined) return { url: set, from: 'mirror:upstream' };
    const configured = this.#d.config[key];
    if (configured !== defaults(this.#d.config.home)[key]) return { url: configured, from: 'config.json' };
    if (kind === 'npm') {
      const host = await this.#hostRegistry();
      if (host !== null) return { url: host, from: 'host npm config' };
    }
    return { url: configured, from: 'default' };
  }

  async upstream(kind: UpstreamKind): Promise<string | null> {
    return (await this.upstreamInfo(kind)).url;
  }

  async setUpstream(kind: UpstreamKind, url: string | null): Promise<void> {
    await this.#d.settings.update((s) => {
      s[kind === 'npm' ? 'npmUpstream' : 'pypiUpstream'] = url;
    });
  }

  async status(): Promise<MirrorStatus> {
    const manifest = await readManifest(this.mirrorDir);
    const kinds: MirrorStatus['kinds'] = { npm: { count: 0, bytes: 0 }, node: { count: 0, bytes: 0 }, pypi: { count: 0, bytes: 0 } };
    let lastSync: string | null = null;
    for (const e of Object.values(manifest.entries)) {
      const k = kinds[e.kind];
      if (!k) continue;
      k.count++;
      k.bytes += e.size;
      if (lastSync === null || e.addedAt > lastSync) lastSync = e.addedAt;
    }
    return { dir: this.mirrorDir, kinds, upstreams: { npm: await this.upstreamInfo('npm'), pypi: await this.upstreamInfo('pypi') }, lastSync };
  }

  /** `name`, `name@version`, `name@range` or `name@tag`: resolved through the upstream, then fetched and verified. */
  async addNpm(specs: string[], progress: Progress, signal?: AbortSignal): Promise<string[]> {
    const upstream = await this.upstream('npm');
    const wanted = specs.map(parseNpmSpec);
    progress(`-----> Resolving ${wanted.length} package spec${wanted.length === 1 ? '' : 's'} ${upstream === null ? 'in the mirror (upstream off)' : `at ${upstream}`}`);
    const resolved: LockedPackage[] = [];
    await Promise.all(
      wanted.map(async ({ name, range }) => {
        if (upstream === null) {
          const v = semver.maxSatisfying(await mirroredVersions(this.mirrorDir, name), range === 'latest' ? '*' : range);
          if (v === null) {
            throw new SlipwayError(
              'E_MIRROR',
              `${name}@${range} is not in the mirror and the npm upstream is off: turn one on with \`slipway mirror:upstream npm <registry-url>\`, or bring it in with \`slipway mirror:import <bundle>\``,
            );
          }
          resolved.push({ name, version: v });
          return;
        }
        let doc;
        try {
          doc = await fetchPackument(upstream, name, undefined, signal);
        } catch (err) {
          throwIfCancelled(signal);
          throw new SlipwayError('E_MIRROR', `cannot resolve ${name}@${range} at ${upstream}: ${(err as Error).message}; check \`slipway mirror:upstream npm\``);
        }
        const version = doc.distTags[range] ?? semver.maxSatisfying(Object.keys(doc.versions), range);
        const dist = version ? doc.versions[version]?.dist : undefined;
        if (!version || !dist) throw new SlipwayError('E_MIRROR', `no version of ${name} matches "${range}" at ${upstream}`);
        const pkg: LockedPackage = { name, version };
        if (dist.integrity) pkg.integrity = dist.integrity;
        resolved.push(pkg);
      }),
    );
    for (const kind of ['node', 'npm'] as const) {
      const packages = resolved.filter((p) => (p.name === NODE_PACKAGE) === (kind === 'node'));
      if (packages.length > 0) await ensureNpmPackages({ mirrorDir: this.mirrorDir, packages, upstream, progress, kind, ...(signal ? { signal } : {}) });
    }
    return resolved.map((p) => `${p.name}@${p.version}`).sort();
  }

  /** Every registry package a package-lock.json names. */
  async addLockfile(lockText: string, progress: Progress, signal?: AbortSignal): Promise<{ fetched: number; present: number }> {
    const packages = lockfilePackages(lockText);
    progress(`-----> ${packages.length} package${packages.length === 1 ? '' : 's'} in the lockfile`);
    return ensureNpmPackages({ mirrorDir: this.mirrorDir, packages, upstream: await this.upstream('npm'), progress, ...(signal ? { signal } : {}) });
  }

  /**
   * The newest Node.js release matching `range`, and an npm that supports it; then, unless
   * `prepareRuntimes` is off, both prepared for builds (unpacked, shared image), so the first push
   * that uses them does not wait for that. A failed preparation is reported, not fatal: the
   * versions are in the mirror, and the first push prepares them.
   */
  async addNode(range: string, progress: Progress, signal?: AbortSignal): Promise<{ node: string; npm: string }> {
    const r = await resolveNodeRuntime({ mirrorDir: this.mirrorDir, range, upstream: await this.upstream('npm'), progress, ...(signal ? { signal } : {}) });
    if (this.#d.prepareNode) {
      await this.#d.prepareNode(r, progress).catch((err: unknown) => progress(`       preparing Node.js ${r.node} failed (${oneLine(err)}); the first push that uses it prepares it`));
    }
    return r;
  }

  /**
   * Copies wheels and sdists from the server's disk into mirror/pypi, recording their sha256.
   * Every file is checked before any is copied. A file name already in the mirror with other
   * content is refused: PyPI never reuses a file name, so that is a mistake or an attack.
   */
  async addPypi(files: string[], progress: Progress): Promise<string[]> {
    const checked = [];
    for (const file of files) {
      const base = path.basename(file);
      const parsed = parsePypiFilename(base);
      if (parsed === null) {
        throw new SlipwayError('E_MIRROR', `${JSON.stringify(base.slice(0, 120))} is not a wheel (name-version-python-abi-platform.whl) or sdist (name-version.tar.gz) file name`);
      }
      const st = await fsp.stat(file).catch(() => null);
      if (!st?.isFile()) throw new SlipwayError('E_MIRROR', `no such file: ${file}`);
      checked.push({ file, base, parsed });
    }
    const dir = path.join(this.mirrorDir, 'pypi');
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    const known = (await readManifest(this.mirrorDir)).entries;
    const added = [];
    for (const { file, base, parsed } of checked) {
      const temp = path.join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
      const hash = new MultiHash();
      try {
        await pipeline(fs.createReadStream(file), hashing(hash), fs.createWriteStream(temp, { mode: 0o644, flags: 'wx' }));
        const integrity = `sha256-${hash.digest('sha256')}`;
        const prior = known[`pypi:pypi/${base}`];
        if (prior && prior.integrity !== integrity) {
          throw new SlipwayError('E_MIRROR', `pypi/${base} is already in the mirror with different content: remove ${path.join(dir, base)} first if the new file is right`);
        }
        await fsp.rename(temp, path.join(dir, base));
        added.push({ kind: 'pypi' as const, name: parsed.name, version: parsed.version, file: `pypi/${base}`, integrity, size: hash.size, source: `file:${file}`, addedAt: new Date().toISOString() });
        progress(`       ${base} (${parsed.name} ${parsed.version}, sha256 ${hash.digest('sha256', 'hex').slice(0, 12)}…)`);
      } finally {
        await fsp.rm(temp, { force: true });
      }
    }
    await addManifestEntries(this.mirrorDir, added);
    return added.map((e) => e.file);
  }

  exportBundle(file: string, since: Date | null, progress: Progress): Promise<{ entries: number; bytes: number }> {
    return exportBundle({ mirrorDir: this.mirrorDir, file, since, progress });
  }

  importBundle(file: string, progress: Progress): Promise<{ added: number }> {
    return importBundle({ mirrorDir: this.mirrorDir, file, progress });
  }

  exportStack(file: string, progress: Progress): Promise<void> {
    return exportStack(this.#d.docker, file, progress);
  }

  importStack(file: string, progress: Progress): Promise<string> {
    return importStack(this.#d.docker, file, progress);
  }

  /** Empties an app's build cache; the next build installs from scratch. False when there was none. */
  purgeCache(app: string): Promise<boolean> {
    return this.#d.serialize(app, async () => {
      const dir = appCachePath(this.#d.paths, app);
      const existed = await fsp.stat(dir).then(
        () => true,
        () => false,
      );
      await fsp.rm(dir, { recursive: true, force: true });
      return existed;
    });
  }
}

/** `name[@range]`, scoped names included; a usage error for anything npm would not accept. Pure. */
export function parseNpmSpec(spec: string): { name: string; range: string } {
  const at = spec.indexOf('@', spec.startsWith('@') ? 1 : 0);
  const name = at === -1 ? spec : spec.slice(0, at);
  const range = at === -1 ? 'latest' : spec.slice(at + 1) || 'latest';
  const isTag = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/.test(range);
  if (!isNpmName(name) || (!isTag && semver.validRange(range) === null)) {
    throw new SlipwayError('E_USAGE', `not an npm package spec: ${JSON.stringify(spec.slice(0, 120))}: use name, name@version or name@range`, { exitCode: 2 });
  }
  return { name, range };
}

/** Normalizes an upstream URL (http or https, trailing slash), or a usage error. Pure. */
export function parseUpstreamUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SlipwayError('E_USAGE', `not a URL: ${JSON.stringify(text.slice(0, 120))}: give http(s)://host/path or off`, { exitCode: 2 });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SlipwayError('E_USAGE', `an upstream must be an http:// or https:// URL, not ${url.protocol}`, { exitCode: 2 });
  }
  url.search = '';
  url.hash = '';
  const s = url.toString();
  return s.endsWith('/') ? s : `${s}/`;
}

async function readHostNpmRegistry(): Promise<string | null> {
  try {
    const { stdout } = await promisify(execFile)('npm', ['config', 'get', 'registry'], { timeout: 15_000 });
    return parseUpstreamUrl(stdout.trim());
  } catch {
    return null;
  }
}
