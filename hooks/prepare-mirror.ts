import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../platform/config.js';
import { SlipwayError } from '../platform/errors.js';
import type { Paths } from '../platform/paths.js';
import type { BuildpackRef } from '../buildpacks/runner.js';
import { ensureNpmPackages, lockfilePackages, resolveNodeRuntime } from '../buildpacks/mirror/npm.js';
import type { PackumentCache } from '../buildpacks/mirror/fetch.js';

/**
 * Builds run with no network, so everything they install must be in the mirror before they
 * start. For a Node app that means the runtime `engines.node` asks for, npm, and every package
 * the lockfile names. With an upstream configured, what is missing is fetched now (pull-through);
 * without one, what is missing fails the build here, by name, before compile.
 * Returns the hints the node buildpack reads (the resolved versions).
 */
export async function prepareMirror(o: {
  appDir: string;
  config: Config;
  paths: Paths;
  candidates: BuildpackRef[];
  say: (text: string) => void;
  packuments: PackumentCache;
}): Promise<Record<string, string>> {
  if (!o.candidates.some((c) => c.name === 'node')) return {};
  const pkgText = await fs.readFile(path.join(o.appDir, 'package.json'), 'utf8').catch(() => null);
  if (pkgText === null) return {};
  let pkg: { engines?: { node?: unknown } };
  try {
    pkg = JSON.parse(pkgText) as typeof pkg;
  } catch {
    throw new SlipwayError('E_BUILD', 'package.json is not valid JSON: fix it and push again');
  }
  const requested = typeof pkg.engines?.node === 'string' ? pkg.engines.node : null;
  const range = requested ?? o.config.defaultNodeRange;
  const progress = (line: string) => o.say(`${line}\n`);
  const upstream = o.config.npmUpstream;
  progress(`-----> Resolving Node.js ${requested ? `engines.node "${range}"` : `(no engines.node; default ${range})`}`);
  const runtime = await resolveNodeRuntime({ mirrorDir: o.paths.mirrorDir, range, upstream, progress, packuments: o.packuments });
  progress(`       Node.js ${runtime.node}, npm ${runtime.npm}`);
  const lockText = await fs.readFile(path.join(o.appDir, 'package-lock.json'), 'utf8').catch(() => null);
  if (lockText !== null) {
    const packages = lockfilePackages(lockText);
    await ensureNpmPackages({ mirrorDir: o.paths.mirrorDir, packages, upstream, progress });
  }
  return { SLIPWAY_NODE_VERSION: runtime.node, SLIPWAY_NPM_VERSION: runtime.npm };
}
