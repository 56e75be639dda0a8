import { SlipwayError } from '../../core/errors.js';
import { isNpmName } from './layout.js';

export interface LockedPackage {
  name: string;
  version: string;
  resolved?: string;
  integrity?: string;
}

interface V1Dep {
  version?: string;
  resolved?: string;
  integrity?: string;
  bundled?: boolean;
  dependencies?: Record<string, V1Dep>;
}

interface V2Package {
  name?: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  inBundle?: boolean;
}

const SEMVER = /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/**
 * The registry packages a package-lock.json (v1, v2 or v3) installs, deduplicated. Links,
 * `file:` and git dependencies are not registry packages and bundled ones ship inside their
 * parent's tarball, so none of them is listed. Pure.
 */
export function lockfilePackages(lockText: string): LockedPackage[] {
  let lock: { lockfileVersion?: unknown; packages?: Record<string, V2Package>; dependencies?: Record<string, V1Dep> };
  try {
    lock = JSON.parse(lockText) as typeof lock;
  } catch {
    throw new SlipwayError('E_MIRROR', 'package-lock.json is not valid JSON: regenerate it with `npm install --package-lock-only`');
  }
  if (typeof lock !== 'object' || lock === null) throw new SlipwayError('E_MIRROR', 'package-lock.json is not a lockfile object');
  const found = new Map<string, LockedPackage>();
  const add = (name: string, p: { version?: string; resolved?: string; integrity?: string }) => {
    let version = p.version;
    // An alias (`"x": "npm:real@1.2.3"`) installs the real package.
    if (version?.startsWith('npm:')) {
      const spec = version.slice(4);
      const at = spec.lastIndexOf('@');
      if (at <= 0) return;
      name = spec.slice(0, at);
      version = spec.slice(at + 1);
    }
    if (version === undefined || !SEMVER.test(version) || !isNpmName(name)) return;
    if (p.resolved !== undefined && !/^https?:\/\//.test(p.resolved)) return;
    const key = `${name}@${version}`;
    if (found.has(key)) return;
    const pkg: LockedPackage = { name, version };
    if (p.resolved !== undefined) pkg.resolved = p.resolved;
    if (typeof p.integrity === 'string') pkg.integrity = p.integrity;
    found.set(key, pkg);
  };

  if (lock.packages && typeof lock.packages === 'object') {
    for (const [where, p] of Object.entries(lock.packages)) {
      // Only installed packages live under node_modules; "" is the root and other keys are
      // workspace folders.
      const i = where.lastIndexOf('node_modules/');
      if (i === -1 || p.link || p.inBundle) continue;
      add(p.name ?? where.slice(i + 'node_modules/'.length), p);
    }
  } else if (lock.dependencies && typeof lock.dependencies === 'object') {
    const walk = (deps: Record<string, V1Dep>) => {
      for (const [name, d] of Object.entries(deps)) {
        if (d.bundled) continue;
        add(name, d);
        if (d.dependencies) walk(d.dependencies);
      }
    };
    walk(lock.dependencies);
  }
  return [...found.values()];
}
