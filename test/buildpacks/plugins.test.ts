import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchBuildpack, parseBuildpackUrl } from '../../buildpacks/fetch-url.js';
import { BuildpackPlugins, buildpackVersion, extractTarball } from '../../buildpacks/plugins.js';
import { buildpacksHome } from '../../buildpacks/runner.js';
import { UrlGuard } from '../../buildpacks/url-guard.js';
import { scaffoldFiles } from '../../buildpacks/skeleton.js';
import { checkBuildpackEntry, directoryCatalog, resolveBuildpacks, type BuildpackCatalog } from '../../hooks/choose-buildpacks.js';
import { detectBuildpacks, parseBuildpacksFile, pinOf } from '../../hooks/builders/buildpacks-detect.js';
import { chooseBuilderName, dirSource } from '../../hooks/builders/index.js';

/** What a deploy's buildpacks builder resolves for a pushed tree. */
const chooseBuildpacks = async (catalog: BuildpackCatalog, pin: string[], dir: string) => resolveBuildpacks(catalog, pinOf(await detectBuildpacks(dirSource(dir), pin)));
import { SlipwayError } from '../../core/errors.js';
import { absolutePathArgs } from '../../receiver/commands/buildpacks.js';
import { freePort } from '../support/platform.js';
import { buildArgsFor, imageCommand, planDockerfile, shellJoin } from '../../runtime/dockerfile.js';

const execFileP = promisify(execFile);
// These tests serve buildpacks from loopback, which the platform refuses unless allowed.
const guard = new UrlGuard({ allow: ['127.0.0.1'] });
let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bp-unit-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function refused(fn: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SlipwayError);
  expect((err as Error).message).toMatch(pattern);
  expect((err as Error).message).not.toContain('\n');
}

async function tgz(entries: { name: string; type?: 'file' | 'symlink' | 'directory'; body?: string; linkname?: string; mode?: number }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname! });
    else if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mode: 0o755 });
    else pack.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const script = (body: string) => `#!/usr/bin/env bash\n${body}\n`;

describe('.buildpacks entries', () => {
  it('reads one buildpack per line and tells names from URLs', () => {
    expect(parseBuildpacksFile('# pinned\nnode\r\n\n  https://example.com/bp.tgz  \n')).toEqual(['node', 'https://example.com/bp.tgz']);
    expect(checkBuildpackEntry('my-bp', '.buildpacks')).toBe('my-bp');
    expect(checkBuildpackEntry('https://github.com/org/bp.git#v1.2', '.buildpacks')).toMatchObject({ kind: 'git', ref: 'v1.2' });
  });

  it('refuses lines that are neither a name nor a fetchable URL', () => {
    for (const bad of ['../evil', 'Node', '-rf', 'a;b', 'x y', '/etc/passwd']) refused(() => checkBuildpackEntry(bad, '.buildpacks'), /neither a buildpack name/);
  });
});

describe('buildpack URLs', () => {
  it('classifies git and tarball URLs, hides credentials and keys the cache by URL', () => {
    const git = parseBuildpackUrl('https://user:secret@example.com/org/python-bp.git#main')!;
    expect(git).toMatchObject({ kind: 'git', url: 'https://user:secret@example.com/org/python-bp.git', ref: 'main', name: 'python-bp' });
    expect(git.display).toBe('https://example.com/org/python-bp.git#main');
    expect(git.display).not.toContain('secret');
    const tgzUrl = parseBuildpackUrl('https://example.com/dl/static-bp.tar.gz')!;
    expect(tgzUrl).toMatchObject({ kind: 'tgz', ref: null, name: 'static-bp' });
    expect(tgzUrl.key).toMatch(/^[0-9a-f]{16}$/);
    expect(parseBuildpackUrl('https://example.com/a.git#v1')!.key).not.toBe(parseBuildpackUrl('https://example.com/a.git#v2')!.key);
    expect(parseBuildpackUrl('node')).toBeNull();
  });

  it('refuses schemes that reach local files or keys, and refs that would be options', () => {
    refused(() => parseBuildpackUrl('file:///etc/bp'), /only https, http and git/);
    refused(() => parseBuildpackUrl('ssh://git@example.com/bp.git'), /only https, http and git/);
    refused(() => checkBuildpackEntry('ext::sh -c touch% /tmp/pwned', '.buildpacks'), /neither a buildpack name/);
    refused(() => parseBuildpackUrl('https://example.com/bp.git#--upload-pack=touch'), /not a branch or tag/);
    refused(() => parseBuildpackUrl('https://example.com/bp.git#a/../../b'), /not a branch or tag/);
    refused(() => parseBuildpackUrl('https://example.com/bp.tgz#v1'), /#fragment/);
    refused(() => parseBuildpackUrl('https://exa mple.com/bp.git'), /whitespace/);
  });

  it('fetches a git URL once with git clone, then serves it from the cache', async () => {
    const src = path.join(tmp, 'git-src');
    await fs.mkdir(path.join(src, 'bin'), { recursive: true });
    await fs.writeFile(path.join(src, 'bin', 'detect'), script('exit 1'), { mode: 0o755 });
    await fs.writeFile(path.join(src, 'bin', 'compile'), script('true'), { mode: 0o755 });
    const git = (args: string[]) => execFileP('git', args, { cwd: src, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e.invalid' } });
    await git(['init', '-q', '--initial-branch=main']);
    await git(['add', '-A']);
    await git(['commit', '-q', '-m', 'bp']);
    // A real git:// server on loopback, so the fetcher's own clone runs unchanged.
    const port = await freePort();
    const daemon = spawn('git', ['daemon', '--export-all', `--base-path=${tmp}`, '--listen=127.0.0.1', `--port=${port}`, '--reuseaddr', tmp], { stdio: 'ignore' });
    const bp = parseBuildpackUrl(`git://127.0.0.1:${port}/git-src#main`)!;
    const lines: string[] = [];
    const cacheDir = path.join(tmp, 'fetched');
    let ref;
    try {
      for (let i = 0; ; i++) {
        try {
          ref = await fetchBuildpack(bp, { cacheDir, say: (l) => lines.push(l), guard });
          break;
        } catch (err) {
          // The daemon may not listen yet.
          if (i >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(ref.name).toBe('git-src');
    expect((await fs.stat(path.join(ref.dir, 'bin', 'compile'))).mode & 0o111).not.toBe(0);
    await expect(fs.access(path.join(ref.dir, '.git'))).rejects.toThrow();
    // The server is gone: the cache still answers (an airgapped platform keeps building).
    const again = await fetchBuildpack(bp, { cacheDir, say: (l) => lines.push(l), guard });
    expect(again.dir).toBe(ref.dir);
    expect(lines.join('\n')).toContain('(cached)');
  });

  it('downloads a .tgz named in .buildpacks into the catalog cache and runs it pinned', async () => {
    const data = await tgz([
      { name: 'remote-bp/bin/detect', body: script('exit 0'), mode: 0o755 },
      { name: 'remote-bp/bin/compile', body: script('true'), mode: 0o755 },
    ]);
    let requests = 0;
    const server = http.createServer((req, res) => {
      requests++;
      if (req.url === '/dl/remote-bp.tgz') res.end(data);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const app = path.join(tmp, 'url-app');
      await fs.mkdir(app, { recursive: true });
      await fs.writeFile(path.join(app, '.buildpacks'), `http://127.0.0.1:${port}/dl/remote-bp.tgz\nstatic\n`);
      const installed = path.join(tmp, 'url-installed');
      const choice = await chooseBuildpacks(directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed), guard), [], app);
      expect(choice.pinnedBy).toBe('.buildpacks');
      expect(choice.candidates.map((c) => c.name)).toEqual(['remote-bp', 'static']);
      expect(path.dirname(choice.candidates[0]!.dir)).toBe(path.join(installed, '.fetched'));
      await chooseBuildpacks(directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed), guard), [], app);
      expect(requests).toBe(1);
      // Fetched buildpacks are not installed ones: they do not join detection.
      expect((await directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed)).list()).map((b) => b.name)).toEqual(['node', 'python', 'static']);
      await fs.writeFile(path.join(app, '.buildpacks'), `http://127.0.0.1:${port}/dl/missing.tgz\n`);
      await expect(chooseBuildpacks(directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed), guard), [], app)).rejects.toThrow(/cannot fetch buildpack .*missing\.tgz: HTTP 404/);
    } finally {
      server.close();
    }
  });

  it('explains how to install first when a URL cannot be reached', async () => {
    const bp = parseBuildpackUrl('http://127.0.0.1:9/nothing.tgz')!;
    const err = await fetchBuildpack(bp, { cacheDir: path.join(tmp, 'fetched2'), say: () => undefined, timeoutMs: 5000, guard }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipwayError);
    expect((err as Error).message).toMatch(/cannot fetch buildpack http:\/\/127\.0\.0\.1:9\/nothing\.tgz.*buildpacks:install/);
  });
});

describe('choosing buildpacks', () => {
  it('detects over built-ins node, python, static, then installed ones by name', async () => {
    const installed = path.join(tmp, 'installed-order');
    for (const n of ['zeta', 'alpha']) await fs.mkdir(path.join(installed, n), { recursive: true });
    await fs.mkdir(path.join(installed, '.fetched'), { recursive: true });
    const names = (await directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed)).list()).map((b) => b.name);
    expect(names).toEqual(['node', 'python', 'static', 'alpha', 'zeta']);
  });

  it('prefers buildpacks:set over .buildpacks, and .buildpacks over detection', async () => {
    const app = path.join(tmp, 'choose-app');
    await fs.mkdir(app, { recursive: true });
    const catalog = directoryCatalog(new BuildpackPlugins(buildpacksHome(), path.join(tmp, 'none')));
    expect((await chooseBuildpacks(catalog, [], app)).pinnedBy).toBeNull();
    await fs.writeFile(path.join(app, '.buildpacks'), 'static\npython\n');
    const byFile = await chooseBuildpacks(catalog, [], app);
    expect(byFile).toMatchObject({ pinnedBy: '.buildpacks' });
    expect(byFile.candidates.map((c) => c.name)).toEqual(['static', 'python']);
    const bySet = await chooseBuildpacks(catalog, ['node'], app);
    expect(bySet.candidates.map((c) => c.name)).toEqual(['node']);
    await fs.writeFile(path.join(app, '.buildpacks'), 'nope\n');
    await expect(chooseBuildpacks(catalog, [], app)).rejects.toThrow(/names buildpack "nope", which is not installed \(known: node, python, static\)/);
  });

  it('builds with a Dockerfile only when nothing pins buildpacks', async () => {
    const usesDockerfile = async (pin: string[], dir: string) => (await chooseBuilderName(pin, dirSource(dir))).name === 'dockerfile';
    const app = path.join(tmp, 'docker-app');
    await fs.mkdir(app, { recursive: true });
    expect(await usesDockerfile([], app)).toBe(false);
    await fs.writeFile(path.join(app, 'Dockerfile'), 'FROM x\n');
    expect(await usesDockerfile([], app)).toBe(true);
    expect(await usesDockerfile(['node'], app)).toBe(false);
    await fs.writeFile(path.join(app, '.buildpacks'), 'static\n');
    expect(await usesDockerfile([], app)).toBe(false);
  });
});

describe('installing buildpacks', () => {
  const plugins = () => new BuildpackPlugins(buildpacksHome(), path.join(tmp, 'bps'));

  it('installs a folder atomically under its base name, with a version and source', async () => {
    const src = path.join(tmp, 'src', 'my-pack');
    await fs.mkdir(path.join(src, 'bin'), { recursive: true });
    await fs.writeFile(path.join(src, 'bin', 'detect'), script('exit 1'), { mode: 0o700 });
    await fs.writeFile(path.join(src, 'bin', 'compile'), script('true'), { mode: 0o700 });
    await fs.writeFile(path.join(src, 'VERSION'), '1.4.2\n');
    const { info, replaced } = await plugins().install({ dir: src, source: src });
    expect(replaced).toBe(false);
    expect(info).toMatchObject({ name: 'my-pack', version: '1.4.2', source: src, overrides: false });
    // Readable by the unprivileged build user.
    expect((await fs.stat(path.join(info.dir, 'bin', 'compile'))).mode & 0o777).toBe(0o755);
    expect((await plugins().install({ dir: src, source: src })).replaced).toBe(true);
    const leftovers = (await fs.readdir(path.join(tmp, 'bps'))).filter((n) => n.startsWith('.install-'));
    expect(leftovers).toEqual([]);
  });

  it('refuses folders without executable bin/detect and bin/compile, bad names and built-in names', async () => {
    const src = path.join(tmp, 'src', 'half');
    await fs.mkdir(path.join(src, 'bin'), { recursive: true });
    await fs.writeFile(path.join(src, 'bin', 'detect'), script('exit 1'), { mode: 0o755 });
    await expect(plugins().install({ dir: src, source: src })).rejects.toThrow(/bin\/compile is missing/);
    await fs.writeFile(path.join(src, 'bin', 'compile'), script('true'), { mode: 0o644 });
    await expect(plugins().install({ dir: src, source: src })).rejects.toThrow(/bin\/compile is not executable/);
    await fs.chmod(path.join(src, 'bin', 'compile'), 0o755);
    for (const name of ['../x', 'Bad', 'a;b', '-x', '']) await expect(plugins().install({ dir: src, name, source: src })).rejects.toThrow(/invalid buildpack name/);
    await expect(plugins().install({ dir: src, name: 'static', source: src })).rejects.toThrow(/built-in.*--force/);
    const forced = await plugins().install({ dir: src, name: 'static', force: true, source: src });
    expect(forced.info.overrides).toBe(true);
    const list = await plugins().list();
    expect(list.filter((b) => b.name === 'static')).toEqual([{ name: 'static', dir: path.join(tmp, 'bps', 'static') }]);
    expect(await fs.readdir(path.join(tmp, 'bps'))).not.toContain('x');
  });

  it('installs a tarball with a top folder, named after the tarball', async () => {
    const data = await tgz([
      { name: 'pack-1.0/bin/detect', body: script('exit 1'), mode: 0o755 },
      { name: 'pack-1.0/bin/compile', body: script('true'), mode: 0o755 },
      { name: 'pack-1.0/buildpack.toml', body: '[buildpack]\nversion = "2.0.0"\n' },
    ]);
    const { info } = await plugins().install({ tarball: data, tarballName: 'tar-pack.tgz', source: 'x' });
    expect(info).toMatchObject({ name: 'tar-pack', version: '2.0.0' });
  });

  it('refuses tarball entries that leave the folder', async () => {
    const cases: [Parameters<typeof tgz>[0], RegExp][] = [
      [[{ name: '../evil', body: 'x' }], /'\.\.'/],
      [[{ name: '/etc/evil', body: 'x' }], /absolute/],
      [[{ name: 'link', type: 'symlink', linkname: '/etc' }], /outside/],
      [[{ name: 'link', type: 'symlink', linkname: '../..' }], /outside/],
      [[{ name: 'dir', type: 'symlink', linkname: '.' }, { name: 'dir/x', body: 'x' }], /under the symlink/],
    ];
    for (const [entries, why] of cases) {
      const dest = await fs.mkdtemp(path.join(tmp, 'x-'));
      await expect(extractTarball(await tgz(entries), dest)).rejects.toThrow(why);
    }
    await expect(extractTarball(Buffer.from('not a tarball'), await fs.mkdtemp(path.join(tmp, 'x-')))).rejects.toThrow(/not a gzipped tar/);
  });

  it('versions a buildpack without VERSION by a content hash', async () => {
    const v = await buildpackVersion(path.join(buildpacksHome(), 'static'));
    expect(v).toMatch(/^sha256:[0-9a-f]{12}$/);
  });

  it('writes a skeleton whose scripts are valid bash', async () => {
    const files = scaffoldFiles('hello-bp');
    expect(files.map((f) => f.path).sort()).toEqual(['README.md', 'bin/compile', 'bin/detect', 'bin/release', 'buildpack.toml']);
    for (const f of files.filter((x) => x.executable)) {
      const file = path.join(tmp, `skel-${path.basename(f.path)}`);
      await fs.writeFile(file, f.text);
      await execFileP('bash', ['-n', file]);
    }
    expect(files.find((f) => f.path === 'bin/compile')!.text).toContain('export HELLO_BP_BUILT=1');
  });
});

describe('Dockerfile parsing', () => {
  // The parser and the stage checks have their own tests: test/runtime/dockerfile-check.test.ts.
  it('lists external base images, skipping stages and scratch, resolving global ARGs', () => {
    const text = ['ARG BASE=slipway/stack:test', 'FROM ${BASE} AS build', 'ARG TOKEN', 'ARG A=1 B', 'FROM build', 'FROM scratch', 'FROM debian:12'].join('\n');
    const images = (config: Record<string, string>) => planDockerfile(text, config).plan.images.map((i) => i.image);
    expect(images({})).toEqual(['slipway/stack:test', 'debian:12']);
    expect(planDockerfile(text, {}).plan.args).toEqual(['A', 'B', 'BASE', 'TOKEN']);
    expect(images({ BASE: 'other:1' })[0]).toBe('other:1');
    refused(() => planDockerfile('FROM $NOPE\n', {}), /uses \$NOPE/);
    refused(() => planDockerfile('RUN true\n', {}), /before the first FROM/);
    refused(() => planDockerfile('FROM x\nARG $(id)\n', {}), /not a valid build argument/);
  });

  it('passes only declared ARGs as build args', () => {
    const { plan, buildArgs } = planDockerfile('FROM x\nARG GREETING\nARG UNSET\n', { GREETING: 'hi', SECRET_KEY: 's3cret' });
    expect(buildArgs).toEqual({ GREETING: 'hi' });
    expect(buildArgsFor(plan, { GREETING: 'hi', SECRET_KEY: 's3cret' })).toEqual({ GREETING: 'hi' });
  });

  it('turns the image ENTRYPOINT and CMD into one quoted shell command', () => {
    expect(shellJoin(['python3', '-c', "print('a b')"])).toBe(`python3 -c 'print('\\''a b'\\'')'`);
    expect(imageCommand({ Entrypoint: null, Cmd: ['/bin/sh', '-c', 'exec srv --port $PORT'] })).toBe("exec /bin/sh -c 'exec srv --port $PORT'");
    expect(imageCommand({ Entrypoint: ['tini', '--'], Cmd: ['app'] })).toBe('exec tini -- app');
    expect(imageCommand({ Entrypoint: null, Cmd: null })).toBeNull();
  });
});

describe('CLI path arguments', () => {
  it('makes path arguments absolute for the daemon, leaving names, flags and - alone', () => {
    expect(absolutePathArgs(['buildpacks:install', 'bp', '--name', 'x'], '/home/u')).toEqual(['buildpacks:install', '/home/u/bp', '--name', 'x']);
    expect(absolutePathArgs(['buildpacks:install', '-', '--name', 'x'], '/home/u')).toEqual(['buildpacks:install', '-', '--name', 'x']);
    expect(absolutePathArgs(['buildpacks:new', 'hello'], '/w')).toEqual(['buildpacks:new', 'hello', '/w/hello']);
    expect(absolutePathArgs(['buildpacks:new', 'hello', 'sub/dir'], '/w')).toEqual(['buildpacks:new', 'hello', '/w/sub/dir']);
    expect(absolutePathArgs(['buildpacks:test', 'bp', '/abs/app'], '/w')).toEqual(['buildpacks:test', '/w/bp', '/abs/app']);
    expect(absolutePathArgs(['apps:create', 'x'], '/w')).toEqual(['apps:create', 'x']);
  });
});
