import path from 'node:path';
import semver from 'semver';
import { SlipwayError } from '../../core/errors.js';
import { mirroredVersions, NODE_PACKAGE, npmTarballPath, NPM_PACKAGE } from './layout.js';
import { ensureNpmPackages, fetchPackument, throwIfCancelled, type PackumentCache } from './fetch.js';
import { readTgzPackageJson } from './tgz.js';

export interface ResolveNodeOptions {
  mirrorDir: string;
  /** engines.node of the app, or the platform's default range. */
  range: string;
  upstream: string | null;
  progress: (line: string) => void;
  /** Shares registry answers between builds (the daemon keeps one). */
  packuments?: PackumentCache;
  /** Aborts the fetches: the caller went away. */
  signal?: AbortSignal;
}

/**
 * Picks the Node.js and npm versions for a build and makes sure both tarballs are in the mirror.
 * With an upstream the newest matching release wins (as on Heroku); without one, the newest the
 * mirror holds.
 */
export async function resolveNodeRuntime(o: ResolveNodeOptions): Promise<{ node: string; npm: string }> {
  const range = semver.validRange(o.range);
  if (range === null) {
    throw new SlipwayError('E_NODE_VERSION', `engines.node "${o.range}" is not a valid version range: use one like "24.x" or ">=20"`);
  }
  const nodeVersions = await availableVersions(o, NODE_PACKAGE);
  const node = semver.maxSatisfying(nodeVersions.versions, range);
  if (node === null) {
    throw new SlipwayError(
      'E_NODE_VERSION',
      `no Node.js version matches engines.node "${o.range}" (available: ${summarize(nodeVersions.versions)}); ` +
        (o.upstream === null
          ? 'add one to the mirror with `slipway mirror:add node <version>` or change engines.node in package.json'
          : 'change engines.node in package.json'),
    );
  }
  await ensureNpmPackages({ mirrorDir: o.mirrorDir, packages: [{ name: NODE_PACKAGE, version: node }], upstream: o.upstream, progress: o.progress, kind: 'node', ...(o.signal ? { signal: o.signal } : {}) });

  const npmVersions = await availableVersions(o, NPM_PACKAGE);
  const accepts = async (v: string): Promise<boolean> => {
    const engines = npmVersions.engines
      ? npmVersions.engines[v]
      : ((await readTgzPackageJson(path.join(o.mirrorDir, npmTarballPath(NPM_PACKAGE, v))))?.engines as { node?: string } | undefined)?.node;
    return engines === undefined || semver.satisfies(node, engines);
  };
  const npm = await pickNpm(npmVersions.versions, accepts);
  if (npm === null) {
    throw new SlipwayError(
      'E_NODE_VERSION',
      `no npm release in the ${npmVersions.engines ? 'registry' : 'mirror'} supports Node.js ${node}; add one with: slipway mirror:add npm npm@<version>`,
    );
  }
  await ensureNpmPackages({ mirrorDir: o.mirrorDir, packages: [{ name: NPM_PACKAGE, version: npm }], upstream: o.upstream, progress: o.progress, ...(o.signal ? { signal: o.signal } : {}) });
  return { node, npm };
}

/** Prefers the newest of the 10.x/11.x lines (current, well-tested with today's Node), else any. */
export async function pickNpm(versions: string[], accepts: (v: string) => Promise<boolean>): Promise<string | null> {
  const stable = versions.filter((v) => semver.valid(v) !== null && semver.prerelease(v) === null).sort(semver.rcompare);
  const preferred = stable.filter((v) => semver.satisfies(v, '10.x || 11.x'));
  for (const v of [...preferred, ...stable.filter((x) => !preferred.includes(x))]) {
    if (await accepts(v)) return v;
  }
  return null;
}

/** The newest release of each major line, for an error message. Pure. */
export function summarize(versions: string[]): string {
  const byMajor = new Map<number, string>();
  for (const v of versions) {
    if (semver.valid(v) === null || semver.prerelease(v) !== null) continue;
    const major = semver.major(v);
    const cur = byMajor.get(major);
    if (cur === undefined || semver.gt(v, cur)) byMajor.set(major, v);
  }
  const list = [...byMajor.values()].sort(semver.compare);
  if (list.length === 0) return 'none';
  return list.length > 8 ? `${list.slice(-8).join(', ')} and older` : list.join(', ');
}

async function availableVersions(
  o: ResolveNodeOptions,
  name: string,
): Promise<{ versions: string[]; engines: Record<string, string | undefined> | null }> {
  if (o.upstream !== null) {
    try {
      const doc = await fetchPackument(o.upstream, name, o.packuments, o.signal);
      const engines: Record<string, string | undefined> = {};
      for (const [v, meta] of Object.entries(doc.versions)) engines[v] = meta.engines?.node;
      return { versions: Object.keys(doc.versions), engines };
    } catch (err) {
      throwIfCancelled(o.signal);
      // An unreachable upstream should not stop a site that already mirrors what it needs.
      o.progress(`       ${name}: upstream unavailable (${(err as Error).message}); using the mirror`);
    }
  }
  return { versions: await mirroredVersions(o.mirrorDir, name), engines: null };
}
