/** The mirror's npm side, as the platform uses it: what a lockfile needs, and the Node.js runtime. */
export { ensureNpmPackages, type EnsureNpmOptions } from './fetch.js';
export { lockfilePackages, type LockedPackage } from './lockfile.js';
export { resolveNodeRuntime, type ResolveNodeOptions } from './node-runtime.js';
export { yarnLockPackages } from './yarn-lock.js';
export { pnpmLockPackages, pnpmRangeFor, type PnpmLock } from './pnpm-lock.js';
export { parsePackageManagerField, resolvePackageManager, type PackageManagerTool, type ResolveToolOptions } from './package-manager.js';
