import { parse } from 'yaml';
import { SlipwayError } from '../../core/errors.js';
import { isNpmName } from './layout.js';
import type { LockedPackage } from './lockfile.js';

const SEMVER = /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

export interface PnpmLock {
  /** `lockfileVersion` as written ('9.0', '6.0', 5.4). */
  lockfileVersion: string;
  packages: LockedPackage[];
}

interface PnpmPackage {
  resolution?: { integrity?: unknown; tarball?: unknown; directory?: unknown; repo?: unknown; type?: unknown };
  name?: unknown;
  version?: unknown;
}

/**
 * The registry packages a pnpm-lock.yaml installs, deduplicated. The `packages:` keys say which:
 * `name@1.2.3` (lockfile 9), `/name@1.2.3(peer@1.0.0)` (lockfile 6), `/name/1.2.3_peer@1.0.0`
 * (lockfile 5). Tarball, directory and git resolutions are not registry packages and are left
 * out. Pure.
 */
export function pnpmLockPackages(text: string): PnpmLock {
  let doc: { lockfileVersion?: unknown; packages?: unknown };
  try {
    doc = parse(text, { maxAliasCount: 100 }) as typeof doc;
  } catch (err) {
    throw new SlipwayError('E_BUILD', `pnpm-lock.yaml is not valid YAML (${(err as Error).message.split('\n')[0]}): run \`pnpm install\`, commit pnpm-lock.yaml and push again`);
  }
  if (typeof doc !== 'object' || doc === null || (typeof doc.lockfileVersion !== 'string' && typeof doc.lockfileVersion !== 'number')) {
    throw new SlipwayError('E_BUILD', 'pnpm-lock.yaml has no lockfileVersion: run `pnpm install`, commit pnpm-lock.yaml and push again');
  }
  const lockfileVersion = String(doc.lockfileVersion);
  const found = new Map<string, LockedPackage>();
  const packages = typeof doc.packages === 'object' && doc.packages !== null ? (doc.packages as Record<string, PnpmPackage | null>) : {};
  for (const [key, entry] of Object.entries(packages)) {
    const res = entry?.resolution;
    if (res && (res.tarball !== undefined || res.directory !== undefined || res.repo !== undefined || res.type !== undefined)) continue;
    const id = packageId(key);
    if (id === null) continue;
    const name = typeof entry?.name === 'string' ? entry.name : id.name;
    const version = typeof entry?.version === 'string' ? entry.version : id.version;
    if (!isNpmName(name) || !SEMVER.test(version) || found.has(`${name}@${version}`)) continue;
    const p: LockedPackage = { name, version };
    if (typeof res?.integrity === 'string') p.integrity = res.integrity;
    found.set(`${name}@${version}`, p);
  }
  return { lockfileVersion, packages: [...found.values()] };
}

/** The name and version of a `packages:` key, peer suffixes removed; null for non-registry keys. */
function packageId(key: string): { name: string; version: string } | null {
  const bare = key.startsWith('/') ? key.slice(1) : key;
  // Lockfile 6 and 9: name@version, then peers in parentheses.
  const at = bare.indexOf('@', 1);
  if (at !== -1) {
    const name = bare.slice(0, at);
    const version = bare.slice(at + 1).replace(/\(.*$/, '');
    if (SEMVER.test(version) && isNpmName(name)) return { name, version };
  }
  // Lockfile 5: /name/version, then _peers.
  const slash = bare.lastIndexOf('/');
  if (key.startsWith('/') && slash > 0) {
    const version = bare.slice(slash + 1).replace(/_.*$/, '');
    if (SEMVER.test(version)) return { name: bare.slice(0, slash), version };
  }
  return null;
}

/** The pnpm major line that writes a lockfile version: what to pick when package.json does not say. */
export function pnpmRangeFor(lockfileVersion: string): string {
  const major = Number.parseInt(lockfileVersion, 10);
  if (major >= 9) return '9.x';
  if (major >= 6) return '8.x';
  return '7.x';
}
