#!/usr/bin/env node
// `mirror:add npm --lockfile` for a lockfile of about 200 packages: cold (empty mirror, every
// tarball fetched and verified) vs warm (all present), through the real command. Needs the npm
// registry (or REGISTRY=<url>) and the build (./scripts/ensure-build). Bounded: fetches time out
// after 120 s each, and the whole run is capped by BENCH_TIMEOUT_S (default 600).
// Usage: node bench/mirror-add.mjs [packages...]   (default: express fastify eslint)
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../dist/platform/log.js';
import { defaults } from '../dist/platform/config.js';
import { pathsFor } from '../dist/platform/paths.js';
import { SettingsStore } from '../dist/platform/settings.js';
import { MirrorAdmin } from '../dist/hooks/mirror-admin.js';
import { commands, runCommand } from '../dist/receiver/commands/index.js';

const registry = process.env.REGISTRY ?? 'https://registry.npmjs.org/';
const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['express', 'fastify', 'eslint'];
setTimeout(() => {
  console.error('bench: gave up after BENCH_TIMEOUT_S');
  process.exit(1);
}, Number(process.env.BENCH_TIMEOUT_S ?? 600) * 1000).unref();

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-mirror-'));
try {
  const project = path.join(dir, 'project');
  await fs.mkdir(project);
  await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'bench', version: '1.0.0', private: true }));
  await promisify(execFile)('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund', '--registry', registry, ...wanted], { cwd: project, timeout: 300_000 });
  const lockfile = path.join(project, 'package-lock.json');

  const home = path.join(dir, 'home');
  await fs.mkdir(path.join(home, 'state'), { recursive: true });
  const settings = new SettingsStore(path.join(home, 'state', 'settings.json'));
  await settings.update((s) => {
    s.npmUpstream = registry;
  });
  const mirror = new MirrorAdmin({ config: defaults(home), paths: pathsFor(home), docker: null, settings, serialize: (_app, task) => task() });
  const platform = { mirror, logger: createLogger('error') };
  let last = '';
  const io = { out: (t) => (last = t), err: (t) => process.stderr.write(t), readStdin: async () => '', signal: new AbortController().signal, actor: 'cli' };
  const timeAdd = async () => {
    const started = process.hrtime.bigint();
    const code = await runCommand(commands, ['mirror:add', 'npm', '--lockfile', lockfile], io, platform);
    if (code !== 0) throw new Error(`mirror:add exited ${code}`);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const cold = await timeAdd();
  const count = last.match(/all (\d+) packages/)?.[1] ?? '?';
  const warm = await timeAdd();
  console.log(`lockfile: ${count} packages (${wanted.join(', ')}) from ${registry}`);
  console.log(`cold (empty mirror): ${cold.toFixed(0)} ms`);
  console.log(`warm (all present):  ${warm.toFixed(0)} ms`);
  console.log(`ratio cold/warm: ${(cold / warm).toFixed(1)}x`);
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}
