import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import type { Paths } from '../core/paths.js';
import { readFileUnder } from '../core/safe-read.js';
import { mirrorNeeds, type MirrorNeed } from '../buildpacks/builtins.js';
import type { BuildpackRef } from '../buildpacks/runner.js';
import {
  ensureNpmPackages,
  lockfilePackages,
  parsePackageManagerField,
  pnpmLockPackages,
  pnpmRangeFor,
  resolveNodeRuntime,
  resolvePackageManager,
  yarnLockPackages,
} from '../buildpacks/mirror/npm.js';
import type { PackumentCache } from '../buildpacks/mirror/fetch.js';
import { missingRequirements, parseRequirements } from '../buildpacks/mirror/pypi.js';

/** Lockfiles of large monorepos run to tens of megabytes; anything beyond this is not one. */
const LOCKFILE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * A file of the pushed tree, read as root on the host: never through a link, only a regular file
 * within the limit (core/safe-read.ts); null when it is absent.
 */
const readAppFile = (appDir: string, file: string, maxBytes = 1024 * 1024): Promise<string | null> => readFileUnder(appDir, file, { maxBytes });

interface PrepareOptions {
  appDir: string;
  config: Config;
  paths: Paths;
  candidates: BuildpackRef[];
  say: (text: string) => void;
  packuments: PackumentCache;
  /** The npm upstream in force now; null when the mirror is strict. */
  npmUpstream: string | null;
}

/** One preparer per need a buildpack can declare (docs/buildpacks.md, "Built-in buildpacks"); each returns build hints. */
const PREPARERS: Record<MirrorNeed, (o: PrepareOptions) => Promise<Record<string, string>>> = {
  pypi: async (o) => {
    await checkPythonRequirements(o.appDir, o.paths.mirrorDir, (line) => o.say(`${line}\n`));
    return {};
  },
  npm: (o) => prepareNpm(o),
};

/**
 * Builds run with no network, so everything they install must be in the mirror before they
 * start: each candidate buildpack declares what it needs (docs/buildpacks.md), and the
 * preparer of each need runs once. Returns the hints the buildpacks read (resolved versions).
 */
export async function prepareMirror(o: PrepareOptions): Promise<Record<string, string>> {
  let hints: Record<string, string> = {};
  for (const need of mirrorNeeds(o.candidates)) hints = { ...hints, ...(await PREPARERS[need](o)) };
  return hints;
}

/** The hints the node buildpack reads its Node.js and npm versions from (buildpacks/builtins.ts `versionHint`). Pure. */
export function nodeRuntimeHints(runtime: { node: string; npm: string }): Record<string, string> {
  return { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm };
}

/**
 * The hints of the Node.js version a push without `engines.node` gets from the mirror as it is
 * (no upstream asked): what preparing runtimes ahead of pushes prepares at daemon start. Null when
 * the mirror has no Node.js in `range` or no npm for it.
 */
export async function mirrorNodeHints(mirrorDir: string, range: string): Promise<Record<string, string> | null> {
  try {
    return nodeRuntimeHints(await resolveNodeRuntime({ mirrorDir, range, upstream: null, progress: () => undefined }));
  } catch (err) {
    if (err instanceof SlipwayError && (err.code === 'E_NODE_VERSION' || err.code === 'E_MIRROR')) return null;
    throw err;
  }
}

/**
 * For a Node app: the runtime `engines.node` asks for, npm, the package manager its lockfile
 * needs (yarn, pnpm), and every package the lockfile names. With an upstream configured, what is
 * missing is fetched now (pull-through); without one, what is missing fails the build here, by
 * name, before compile. Returns the hints the node buildpack reads (the resolved versions).
 */
async function prepareNpm(o: PrepareOptions): Promise<Record<string, string>> {
  const pkgText = await readAppFile(o.appDir, 'package.json');
  if (pkgText === null) return {};
  let pkg: { engines?: { node?: unknown }; packageManager?: unknown };
  try {
    pkg = JSON.parse(pkgText) as typeof pkg;
  } catch {
    throw new SlipwayError('E_BUILD', 'package.json is not valid JSON: fix it and push again');
  }
  const requested = typeof pkg.engines?.node === 'string' ? pkg.engines.node : null;
  const range = requested ?? o.config.defaultNodeRange;
  const progress = (line: string) => o.say(`${line}\n`);
  const upstream = o.npmUpstream;
  progress(`-----> Resolving Node.js ${requested ? `engines.node "${range}"` : `(no engines.node; default ${range})`}`);
  const runtime = await resolveNodeRuntime({ mirrorDir: o.paths.mirrorDir, range, upstream, progress, packuments: o.packuments });
  progress(`       Node.js ${runtime.node}, npm ${runtime.npm}`);
  const hints = nodeRuntimeHints(runtime);
  const read = (file: string) => readAppFile(o.appDir, file, LOCKFILE_MAX_BYTES);
  const lockText = await read('package-lock.json');
  if (lockText !== null) {
    const packages = lockfilePackages(lockText);
    await ensureNpmPackages({ mirrorDir: o.paths.mirrorDir, packages, upstream, progress });
    return hints;
  }
  // The buildpack's order: npm's lockfiles, then yarn.lock, then pnpm-lock.yaml.
  if ((await read('npm-shrinkwrap.json')) !== null) return hints;
  const pinned = parsePackageManagerField(pkg.packageManager);
  const pinnedFor = (tool: string) => (pinned?.name === tool ? pinned.version : null);
  const yarnLock = await read('yarn.lock');
  if (yarnLock !== null) {
    progress('-----> Resolving yarn (yarn.lock)');
    const packages = yarnLockPackages(yarnLock);
    const yarn = await resolvePackageManager({ mirrorDir: o.paths.mirrorDir, tool: 'yarn', pinned: pinnedFor('yarn'), range: '1.x', upstream, progress, packuments: o.packuments });
    progress(`       yarn ${yarn}`);
    await ensureNpmPackages({ mirrorDir: o.paths.mirrorDir, packages, upstream, progress });
    return { ...hints, SLIPWAY_YARN_VERSION: yarn };
  }
  const pnpmLock = await read('pnpm-lock.yaml');
  if (pnpmLock !== null) {
    progress('-----> Resolving pnpm (pnpm-lock.yaml)');
    const lock = pnpmLockPackages(pnpmLock);
    const range = pnpmRangeFor(lock.lockfileVersion);
    const pnpm = await resolvePackageManager({ mirrorDir: o.paths.mirrorDir, tool: 'pnpm', pinned: pinnedFor('pnpm'), range, upstream, progress, packuments: o.packuments });
    progress(`       pnpm ${pnpm}`);
    await ensureNpmPackages({ mirrorDir: o.paths.mirrorDir, packages: lock.packages, upstream, progress });
    return { ...hints, SLIPWAY_PNPM_VERSION: pnpm };
  }
  return hints;
}

/**
 * A Python build installs with `pip install --no-index --find-links /mirror/pypi`: check here,
 * before the build, that every pinned requirement has a wheel or sdist in the mirror, and name
 * the missing ones with the command that adds them, instead of a pip error deep in the build.
 */
export async function checkPythonRequirements(appDir: string, mirrorDir: string, progress: (line: string) => void): Promise<void> {
  const text = await readAppFile(appDir, 'requirements.txt');
  if (text === null) return;
  const requirements = parseRequirements(text);
  progress(`-----> Checking ${requirements.length} Python requirement${requirements.length === 1 ? '' : 's'} against the mirror`);
  const files = await fs.readdir(path.join(mirrorDir, 'pypi')).catch(() => [] as string[]);
  const missing = missingRequirements(requirements, files).map((r) => `${r.name}==${r.version}`);
  if (missing.length === 0) return;
  const shown = missing.length > 20 ? [...missing.slice(0, 20), `and ${missing.length - 20} more`] : missing;
  throw new SlipwayError(
    'E_MIRROR',
    `missing from the mirror: ${shown.join(', ')}; on a connected machine run \`pip download --no-deps -d wheels ${missing.join(' ')}\`, then add the files with: slipway mirror:add pypi <file.whl|sdist>...`,
  );
}
