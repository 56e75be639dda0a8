import semver from 'semver';
import { SlipwayError } from '../../core/errors.js';
import { ensureNpmPackages, fetchPackument, type PackumentCache } from './fetch.js';
import { mirroredVersions } from './layout.js';

/** The package managers the node buildpack runs besides npm; each is the npm package of that name. */
export type PackageManagerTool = 'yarn' | 'pnpm';

/**
 * package.json's `packageManager` field as corepack writes it (`yarn@1.22.22`, `pnpm@9.15.9+sha512.…`).
 * Null when absent or not a plain version. Pure.
 */
export function parsePackageManagerField(value: unknown): { name: string; version: string } | null {
  if (typeof value !== 'string') return null;
  const m = /^(@?[a-z0-9][a-z0-9._/-]*)@([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)(?:\+.*)?$/.exec(value.trim());
  return m ? { name: m[1]!, version: m[2]! } : null;
}

export interface ResolveToolOptions {
  mirrorDir: string;
  tool: PackageManagerTool;
  /** The version package.json's `packageManager` pins for this tool, if any. */
  pinned: string | null;
  /** The line to pick from when nothing is pinned (`1.x` for yarn, the lockfile's pnpm major). */
  range: string;
  upstream: string | null;
  progress: (line: string) => void;
  packuments?: PackumentCache;
}

/**
 * Picks the yarn or pnpm version for a build and makes sure its tarball is in the mirror: the
 * pinned one, else the newest in `range` (from the upstream when there is one, else the mirror).
 */
export async function resolvePackageManager(o: ResolveToolOptions): Promise<string> {
  let version = o.pinned;
  if (version !== null && o.tool === 'yarn' && semver.major(version) >= 2) {
    throw new SlipwayError(
      'E_BUILD',
      `package.json asks for yarn ${version} (yarn 2+, "berry"), which is not supported offline yet: use yarn 1 ("packageManager": "yarn@1.22.22") or npm`,
    );
  }
  if (version === null) {
    const versions = await availableVersions(o);
    const stable = versions.filter((v) => semver.valid(v) !== null && semver.prerelease(v) === null);
    version = semver.maxSatisfying(stable, o.range);
    if (version === null) {
      const major = o.range.replace(/\.x$/, '');
      throw new SlipwayError(
        'E_MIRROR',
        `no ${o.tool} ${o.range} release in the ${o.upstream === null ? 'mirror' : 'registry'}; add one with: slipway mirror:add npm ${o.tool}@${major}`,
      );
    }
  }
  await ensureNpmPackages({ mirrorDir: o.mirrorDir, packages: [{ name: o.tool, version }], upstream: o.upstream, progress: o.progress });
  return version;
}

async function availableVersions(o: ResolveToolOptions): Promise<string[]> {
  if (o.upstream !== null) {
    try {
      return Object.keys((await fetchPackument(o.upstream, o.tool, o.packuments)).versions);
    } catch (err) {
      // An unreachable upstream should not stop a site that already mirrors what it needs.
      o.progress(`       ${o.tool}: upstream unavailable (${(err as Error).message}); using the mirror`);
    }
  }
  return mirroredVersions(o.mirrorDir, o.tool);
}
