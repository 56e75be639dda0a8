#!/usr/bin/env node
// Fills the test mirror with what the fixture apps need (their Node.js line, npm, the yarn or
// pnpm they pin, and every package their lockfiles name), through Slipway's own mirror code,
// from the registry the host's npm uses. Tests that run with the upstream off (airgapped) depend on it. Idempotent: what is
// already there is not fetched again.
//   node scripts/fill-test-mirror.mjs <mirror-dir>      (needs the build: ./scripts/ensure-build)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensureNpmPackages,
  lockfilePackages,
  parsePackageManagerField,
  pnpmLockPackages,
  resolveNodeRuntime,
  yarnLockPackages,
} from '../dist/buildpacks/mirror/npm.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mirrorDir = path.resolve(process.argv[2] ?? path.join(root, '.cache', 'test-mirror'));
const upstream = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim();
const progress = (line) => process.stdout.write(`${line}\n`);

await fs.mkdir(mirrorDir, { recursive: true });
const appsDir = path.join(root, 'fixtures', 'apps');
const ranges = new Set();
for (const app of (await fs.readdir(appsDir)).sort()) {
  const pkg = JSON.parse(await fs.readFile(path.join(appsDir, app, 'package.json'), 'utf8').catch(() => '{}'));
  if (typeof pkg.engines?.node === 'string') ranges.add(pkg.engines.node);
  const lock = await fs.readFile(path.join(appsDir, app, 'package-lock.json'), 'utf8').catch(() => null);
  if (lock !== null) await ensureNpmPackages({ mirrorDir, packages: lockfilePackages(lock), upstream, progress });
  const yarnLock = await fs.readFile(path.join(appsDir, app, 'yarn.lock'), 'utf8').catch(() => null);
  if (yarnLock !== null) await ensureNpmPackages({ mirrorDir, packages: yarnLockPackages(yarnLock), upstream, progress });
  const pnpmLock = await fs.readFile(path.join(appsDir, app, 'pnpm-lock.yaml'), 'utf8').catch(() => null);
  if (pnpmLock !== null) await ensureNpmPackages({ mirrorDir, packages: pnpmLockPackages(pnpmLock).packages, upstream, progress });
  // The fixtures pin their yarn or pnpm with packageManager.
  const tool = parsePackageManagerField(pkg.packageManager);
  if (tool !== null && tool.name !== 'npm') await ensureNpmPackages({ mirrorDir, packages: [{ name: tool.name, version: tool.version }], upstream, progress });
}
for (const range of ranges) {
  const { node, npm } = await resolveNodeRuntime({ mirrorDir, range, upstream, progress });
  progress(`       test mirror: Node.js ${node} and npm ${npm} for engines.node "${range}"`);
}
