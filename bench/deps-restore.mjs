#!/usr/bin/env node
// The node buildpack's dependency cache restore on a warm push (issue 15, item 2): the copy it
// made before (`cp -a CACHE_DIR/node_modules BUILD_DIR/node_modules`) against what it does now
// (`cp -al`, hard links, plus the `find -newer` check that the cache was not written through a
// link), in the build container as builds run it (stack image, uid 1000, no network, BUILD_DIR
// and CACHE_DIR on one mount as /tmp). Two trees: the bench app's (node-hello: `ms`) and a large
// one (npm's own package unpacked 10 times, about 19,000 files, like a mid-sized app's).
// Needs the stack image and the test mirror (what ./scripts/test prepares).
//
//     node bench/deps-restore.mjs [rounds]
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const rounds = Number(process.argv[2] ?? 5);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const mirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(root, '.cache', 'test-mirror');
const stack =
  process.env.SLIPWAY_TEST_STACK_IMAGE ??
  (await import(path.join(root, 'dist/runtime/stack.js')).then((m) => m.stackImageRef()));
const newest = async (name) => {
  const dir = path.join(mirror, 'npm', name, '-');
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.tgz')).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (files.length === 0) throw new Error(`no ${name} in ${mirror}: run ./scripts/test first`);
  return path.join(dir, files.at(-1));
};

// Timed inside the container, so docker's own start-up is not counted.
const script = `
set -euo pipefail
now() { printf '%s' "\${EPOCHREALTIME/./}"; }
for tree in small large; do
  src=/tmp/cache/$tree/node_modules
  files=$(find "$src" ! -type d | wc -l)
  for ((i = 0; i < ${rounds}; i++)); do
    rm -rf /tmp/build/node_modules
    t0=$(now); cp -a "$src" /tmp/build/node_modules; t1=$(now)
    rm -rf /tmp/build/node_modules
    t2=$(now); cp -al "$src" /tmp/build/node_modules; t3=$(now)
    find "$src" -newer /tmp/cache/$tree/key ! -type d -print -quit >/dev/null; t4=$(now)
    echo "$tree $files $((t1 - t0)) $((t3 - t2)) $((t4 - t3))"
  done
done
`;

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-deps-'));
try {
  const tmp = path.join(work, 'tmp');
  const unpack = async (tgz, dest) => {
    await fs.mkdir(dest, { recursive: true });
    await run('tar', ['-xzf', tgz, '-C', dest, '--strip-components=1', '--no-same-owner']);
  };
  await unpack(await newest('ms'), path.join(tmp, 'cache/small/node_modules/ms'));
  const npm = await newest('npm');
  for (let i = 0; i < 10; i++) await unpack(npm, path.join(tmp, `cache/large/node_modules/npm-${i}`));
  for (const tree of ['small', 'large']) await fs.writeFile(path.join(tmp, 'cache', tree, 'key'), 'key\n');
  await fs.mkdir(path.join(tmp, 'build'));
  await run('chown', ['-R', '1000:1000', tmp]);
  const { stdout } = await run(
    'docker',
    ['run', '--rm', '--network', 'none', '--user', '1000:1000', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--mount', `type=bind,source=${tmp},target=/tmp`, stack, 'bash', '-c', script],
    { maxBuffer: 1024 * 1024 },
  );
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ms = (us) => `${(us / 1000).toFixed(1)} ms`.padStart(10);
  console.log(`node_modules restore on a warm push, median of ${rounds} (stack ${stack})`);
  for (const tree of ['small', 'large']) {
    const rows = stdout
      .split('\n')
      .map((l) => l.split(' '))
      .filter((p) => p[0] === tree)
      .map((p) => p.slice(1).map(Number));
    const [copy, links, check] = [1, 2, 3].map((k) => median(rows.map((r) => r[k])));
    console.log(`  ${tree} (${rows[0][0]} files)`);
    console.log(`    copy (before)          ${ms(copy)}`);
    console.log(`    hard links             ${ms(links)}`);
    console.log(`    check (find -newer)    ${ms(check)}`);
    console.log(`    ratio links+check/copy ${((links + check) / copy).toFixed(2)}x`.padEnd(36));
  }
} finally {
  await fs.rm(work, { recursive: true, force: true });
}
