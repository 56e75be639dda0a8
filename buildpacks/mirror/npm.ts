/** The mirror's npm side, as the platform uses it: what a lockfile needs, and the Node.js runtime. */
export { ensureNpmPackages, type EnsureNpmOptions } from './fetch.js';
export { lockfilePackages, type LockedPackage } from './lockfile.js';
export { resolveNodeRuntime, type ResolveNodeOptions } from './node-runtime.js';
