import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, run, TestPlatform, uniqueApp } from '../support/platform.js';

const execFileP = promisify(execFile);
const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';
const fixtureBp = (name: string) => path.join(repoRoot, 'fixtures', 'buildpacks', name);

/** GET through the router by host name, with the response headers. */
function get(port: number, app: string, urlPath: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: { host: `${app}.localhost:${port}` }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

async function tgzOf(dir: string): Promise<Buffer> {
  const pack = tar.pack();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else {
        const st = await fs.stat(path.join(dir, r));
        pack.entry({ name: r, mode: st.mode & 0o777 }, await fs.readFile(path.join(dir, r)));
      }
    }
  };
  await walk('');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A pure-python wheel written by hand: the package index cannot be reached from here. */
async function writeWheel(dir: string, name: string, version: string, greeting: string): Promise<string> {
  const file = `${name}-${version}-py3-none-any.whl`;
  const script = `
import sys, zipfile
out, name, version, greeting = sys.argv[1:]
files = {
  f"{name}/__init__.py": f"def hello():\\n    return {greeting!r}\\n",
  f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
  f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: slipway-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = "".join(f"{p},,\\n" for p in files) + f"{name}-{version}.dist-info/RECORD,,\\n"
with zipfile.ZipFile(out, "w") as z:
    for p, text in files.items():
        z.writestr(p, text)
    z.writestr(f"{name}-{version}.dist-info/RECORD", record)
`;
  await execFileP('python3', ['-c', script, path.join(dir, file), name, version, greeting]);
  await fs.chmod(path.join(dir, file), 0o644);
  return file;
}

describe('buildpacks end to end', () => {
  let platform: TestPlatform;
  const created: string[] = [];
  let loopback: net.Server;
  let loopbackPort = 0;
  let wheelFile = '';
  let pypiDir = '';

  const newApp = async (prefix: string) => {
    const app = uniqueApp(prefix);
    await platform.createApp(app);
    created.push(app);
    return app;
  };
  /** The contract's config:set belongs to another feature; the app record is the same state. */
  const setConfig = async (app: string, vars: Record<string, string>) => {
    const file = path.join(platform.home, 'state', 'apps', `${app}.json`);
    const record = JSON.parse(await fs.readFile(file, 'utf8')) as { config: Record<string, string> };
    Object.assign(record.config, vars);
    await fs.writeFile(file, JSON.stringify(record));
  };
  const workingCopy = async (files: Record<string, string>) => {
    const dir = await fs.mkdtemp(path.join(platform.home, 'wc-'));
    for (const [name, text] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fs.writeFile(path.join(dir, name), text);
    }
    await platform.git(dir, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(dir, 'initial');
    return dir;
  };
  const push = (dir: string, app: string) => platform.push(dir, platform.sshRemote(app));

  beforeAll(async () => {
    platform = await TestPlatform.start();
    loopback = net.createServer((s) => s.end('reached')).listen(0, '127.0.0.1');
    await new Promise((r) => loopback.once('listening', r));
    loopbackPort = (loopback.address() as net.AddressInfo).port;
    pypiDir = path.join(platform.home, 'mirror', 'pypi');
    await fs.mkdir(pypiDir, { recursive: true, mode: 0o755 });
    wheelFile = await writeWheel(pypiDir, `slipwaygreet${Date.now().toString(36)}`, '1.0', 'hello from a wheel');
  }, 300_000);

  afterAll(async () => {
    loopback?.close();
    if (wheelFile) await fs.rm(path.join(pypiDir, wheelFile), { force: true });
    await platform?.stop();
  }, 180_000);

  it('installs a custom buildpack and uses it from .buildpacks: ENV_DIR, CACHE_DIR across builds, no network', async () => {
    const inst = await platform.cli(['buildpacks:install', fixtureBp('probe'), '--name', 'e2e-probe']);
    expect(inst.stderr).toBe('');
    expect(inst.code).toBe(0);
    expect(inst.stdout).toContain('Installed buildpack e2e-probe');
    const list = JSON.parse((await platform.cli(['buildpacks:list', '--json'])).stdout) as { name: string; source: string; version: string }[];
    expect(list.map((b) => b.name)).toEqual(['node', 'python', 'static', 'e2e-probe']);
    expect(list[3]).toMatchObject({ source: fixtureBp('probe') });
    expect(list[3]!.version).toMatch(/^sha256:[0-9a-f]{12}$/);

    const app = await newApp('bp-probe');
    await setConfig(app, { GREETING: 'hi there', PROBE_PORT: String(loopbackPort) });
    const wc = await workingCopy({ '.buildpacks': 'e2e-probe\n', 'README': 'probe me\n' });
    const first = await push(wc, app);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('Using buildpacks pinned by .buildpacks: e2e-probe');
    expect(first.stderr).toContain('probe: env GREETING=hi there');
    expect(first.stderr).toContain('probe: cache count 1');
    expect(first.stderr).toMatch(/probe: interfaces lo\s*$/m);
    expect(first.stderr).toContain('probe: loopback failed');
    expect(first.stderr).toContain('probe: dns failed');
    expect((await get(platform.httpPort, app, '/probed.txt')).body).toBe('probed\n');

    await fs.writeFile(path.join(wc, 'README'), 'again\n');
    await platform.commitAll(wc, 'again');
    const second = await push(wc, app);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('probe: cache count 2');
    expect((await platform.cli(['buildpacks', app])).stdout).toMatch(/pinned by \.buildpacks \(at [0-9a-f]{7}\):\n {2}e2e-probe\n/);
  }, 600_000);

  it('chains two buildpacks: the first hoists a folder, the second detects on the result, then the Procfile is read', async () => {
    // Over SSH a buildpack arrives as a tarball on stdin.
    const tarball = await tgzOf(fixtureBp('hoist'));
    const inst = await run('ssh', [...platform.sshArgs(), 'git@127.0.0.1', 'buildpacks:install', '-', '--name', 'hoist'], { input: tarball as unknown as string });
    expect(inst.code, inst.stderr).toBe(0);
    expect(inst.stdout).toContain('Installed buildpack hoist');

    const app = await newApp('bp-chain');
    const wc = await workingCopy({
      '.buildpacks': '# hoist first, then serve\nhoist\nstatic\n',
      'app/index.html': '<h1>hoisted site</h1>\n',
      'app/Procfile': 'web: HOISTED=1 python3 .slipway/static/server.py\n',
    });
    const res = await push(wc, app);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('hoist app detected (Hoist)');
    expect(res.stderr).toContain('static app detected (Static site)');
    const info = JSON.parse((await platform.cli(['apps:info', app, '--json'])).stdout) as { processTypes: Record<string, string> };
    expect(info.processTypes).toEqual({ web: 'HOISTED=1 python3 .slipway/static/server.py' });
    expect((await get(platform.httpPort, app, '/')).body).toContain('hoisted site');

    // A buildpack without bin/release, pinned with buildpacks:set: the Procfile decides alone.
    expect((await platform.cli(['buildpacks:set', app, 'hoist'])).code).toBe(0);
    expect((await platform.cli(['buildpacks', app])).stdout).toBe('pinned by buildpacks:set:\n  hoist\n');
    await fs.writeFile(path.join(wc, 'app', 'Procfile'), 'web: python3 -m http.server $PORT\n');
    await platform.commitAll(wc, 'plain server');
    const plain = await push(wc, app);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toContain('hoist has no bin/release');
    expect((await get(platform.httpPort, app, '/Procfile')).body).toContain('http.server');
    expect((await platform.cli(['buildpacks:clear', app])).code).toBe(0);
    expect((await platform.cli(['buildpacks', app])).stdout).toContain('pinned by .buildpacks');
  }, 600_000);

  it('builds a python app with a wheel from the mirror, runs its venv at /app, and caches the venv', async () => {
    const pkg = wheelFile.split('-')[0]!;
    const app = await newApp('bp-py');
    const wc = await workingCopy({
      'requirements.txt': `${pkg}==1.0\n`,
      'app.py': [
        'import http.server, os, sys',
        `import ${pkg}`,
        'class H(http.server.BaseHTTPRequestHandler):',
        '    def do_GET(self):',
        `        body = f"{${pkg}.hello()} prefix={sys.prefix}".encode()`,
        '        self.send_response(200); self.end_headers(); self.wfile.write(body)',
        'http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()',
        '',
      ].join('\n'),
      Procfile: 'web: python app.py\n',
    });
    const first = await push(wc, app);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('python app detected (Python)');
    expect(first.stderr).toContain('Virtualenv: cache miss');
    const res = await get(platform.httpPort, app, '/');
    expect(res.body).toBe('hello from a wheel prefix=/app/.venv');

    await fs.appendFile(path.join(wc, 'app.py'), '# touched\n');
    await platform.commitAll(wc, 'touch');
    const second = await push(wc, app);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('Virtualenv: cache hit');
    expect(second.stderr).toContain('restored as hard links');
    expect((await get(platform.httpPort, app, '/')).body).toBe('hello from a wheel prefix=/app/.venv');
    // The second build rewrote its scripts' #! lines in its own copies: the cache is intact for a third.
    await fs.appendFile(path.join(wc, 'app.py'), '# touched again\n');
    await platform.commitAll(wc, 'touch again');
    const third = await push(wc, app);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toContain('restored as hard links');
    expect((await get(platform.httpPort, app, '/')).body).toBe('hello from a wheel prefix=/app/.venv');

    // A requirement the mirror lacks: refused before the build, by name, with the command to add
    // it; v2 keeps serving.
    await fs.appendFile(path.join(wc, 'requirements.txt'), 'not-in-the-mirror==9.9\n');
    await platform.commitAll(wc, 'missing requirement');
    const broken = await push(wc, app);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain('missing from the mirror: not-in-the-mirror==9.9');
    expect(broken.stderr).toContain('slipway mirror:add pypi');
    expect(broken.stderr).not.toContain('Running buildpack python');
    expect(broken.stderr).toContain('running release is unchanged');
    expect((await get(platform.httpPort, app, '/')).body).toBe('hello from a wheel prefix=/app/.venv');
    const apps = JSON.parse((await platform.cli(['apps:info', app, '--json'])).stdout) as { release: string };
    expect(apps.release).toBe('v3');
  }, 600_000);

  it('serves a static site with content types and 404s', async () => {
    const app = await newApp('bp-static');
    const wc = await workingCopy({ 'public/index.html': '<h1>static home</h1>\n', 'public/site.css': 'h1 { color: red }\n', 'public/.secret': 'no\n' });
    const res = await push(wc, app);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('static app detected (Static site)');
    expect(res.stderr).toContain('Process types: web');
    const home = await get(platform.httpPort, app, '/');
    expect(home).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
    expect(home.body).toContain('static home');
    expect(await get(platform.httpPort, app, '/site.css')).toMatchObject({ status: 200, type: 'text/css; charset=utf-8' });
    expect((await get(platform.httpPort, app, '/nope.html')).status).toBe(404);
    expect((await get(platform.httpPort, app, '/.secret')).status).toBe(404);
    expect((await platform.cli(['buildpacks', app])).stdout).toBe('detected from: node, python, static, e2e-probe, hoist\n');
  }, 600_000);

  it('builds a Dockerfile app offline, with only declared ARGs, and runs its CMD as web', async () => {
    const app = await newApp('bp-docker');
    await setConfig(app, { GREETING: 'from config', SECRET_TOKEN: 'not-for-the-build' });
    const wc = await workingCopy({
      Dockerfile: [
        `FROM ${stackImage}`,
        'ARG GREETING',
        'WORKDIR /srv',
        'COPY site/ /srv/',
        'RUN echo "greeting=$GREETING secret=${SECRET_TOKEN:-unset}" > build.txt && ls /sys/class/net > net.txt',
        'CMD python3 -m http.server $PORT',
        '',
      ].join('\n'),
      'site/index.html': 'docker home\n',
    });
    const res = await push(wc, app);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`Building the Dockerfile (FROM ${stackImage}; no network)`);
    expect(res.stderr).toContain('build args from config: GREETING');
    expect(res.stderr).toMatch(/Process types: web \(the image's CMD\)/);
    expect((await get(platform.httpPort, app, '/')).body).toBe('docker home\n');
    expect((await get(platform.httpPort, app, '/build.txt')).body).toBe('greeting=from config secret=unset\n');
    expect((await get(platform.httpPort, app, '/net.txt')).body).toBe('lo\n');
    expect((await platform.cli(['buildpacks', app])).stdout).toMatch(/builds with its Dockerfile/);

    // A FROM image that is not on this machine: refused before building, with what to do.
    await fs.writeFile(path.join(wc, 'Dockerfile'), 'FROM slipway/not-loaded-here:1\nCMD ["true"]\n');
    await platform.commitAll(wc, 'missing base');
    const missing = await push(wc, app);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('FROM slipway/not-loaded-here:1: not on this machine');
    expect(missing.stderr).toContain('docker load -i');
    expect((await get(platform.httpPort, app, '/')).body).toBe('docker home\n');
  }, 600_000);

  it('refuses bad buildpack installs and pins with one line and no side effect', async () => {
    const bad = await platform.cli(['buildpacks:install', fixtureBp('hoist'), '--name', '../evil']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^slipway: invalid buildpack name "..\/evil"/);
    const builtin = await platform.cli(['buildpacks:install', fixtureBp('hoist'), '--name', 'node']);
    expect(builtin.stderr).toBe('slipway: "node" is a built-in buildpack: pick another --name, or pass --force to replace the built-in\n');
    const evil = tar.pack();
    evil.entry({ name: '../escape.txt' }, 'x');
    evil.finalize();
    const chunks: Buffer[] = [];
    for await (const c of evil.pipe(zlib.createGzip())) chunks.push(c as Buffer);
    const traversal = await run('ssh', [...platform.sshArgs(), 'git@127.0.0.1', 'buildpacks:install', '-', '--name', 'evil'], { input: Buffer.concat(chunks) as unknown as string });
    expect(traversal.code).toBe(1);
    expect(traversal.stderr).toMatch(/^slipway: refusing tarball entry "..\/escape.txt"/);
    const pathOverSsh = await platform.ssh(['buildpacks:install', '/etc']);
    expect(pathOverSsh.stderr).toMatch(/^slipway: buildpacks:install with a path works only for the local admin/);
    const app = await newApp('bp-refuse');
    const pin = await platform.cli(['buildpacks:set', app, 'file:///etc/x']);
    expect(pin.stderr).toMatch(/^slipway: buildpack URL "file:\/\/\/etc\/x" uses the file: scheme: only https, http and git URLs are fetched\n$/);
    const unknown = await platform.cli(['buildpacks:set', app, 'no-such-bp']);
    expect(unknown.stderr).toMatch(/^slipway: buildpack "no-such-bp" is not installed/);
    const names = (JSON.parse((await platform.cli(['buildpacks:list', '--json'])).stdout) as { name: string }[]).map((b) => b.name);
    expect(names).not.toContain('evil');
    expect(names.slice(0, 3)).toEqual(['node', 'python', 'static']);
    expect(JSON.parse(await fs.readFile(path.join(platform.home, 'state', 'apps', `${app}.json`), 'utf8'))).toMatchObject({ buildpacks: [] });
    await expect(fs.access(path.join(platform.home, 'escape.txt'))).rejects.toThrow();
    await expect(fs.access(path.join(platform.home, 'buildpacks', 'escape.txt'))).rejects.toThrow();
  }, 120_000);

  it('writes a buildpack skeleton that buildpacks:test runs offline, showing phases, timing and process types', async () => {
    const dir = path.join(platform.home, 'authoring', 'hello-bp');
    const created = await platform.cli(['buildpacks:new', 'hello-bp', dir]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('bin/compile');
    const appDir = path.join(platform.home, 'authoring', 'hello-app');
    await fs.mkdir(appDir, { recursive: true });
    await fs.writeFile(path.join(appDir, 'hello.txt'), 'world\n');
    const t = await run(path.join(repoRoot, 'slipway'), ['buildpacks:test', 'hello-bp', 'hello-app'], { env: platform.env, cwd: path.dirname(dir) });
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain('hello-bp app detected (hello-bp)');
    expect(t.stdout).toMatch(/detect \(hello-bp, matched\) took \d+\.\d{3} s/);
    expect(t.stdout).toMatch(/compile \(hello-bp\) took \d+\.\d{3} s/);
    expect(t.stdout).toContain('build number 1 of this app');
    expect(t.stdout).toContain('web: cd site && exec python3 -m http.server "$PORT"');
    expect(t.stdout).toMatch(/Buildpack test passed in \d+\.\d s/);
    expect((await platform.cli(['apps:list', '--json'])).stdout).not.toContain('hello');
    const again = await platform.cli(['buildpacks:new', 'hello-bp', dir]);
    expect(again.stderr).toMatch(/is not empty/);
    const nothing = await platform.cli(['buildpacks:test', dir, path.join(platform.home, 'authoring')]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/^slipway: no buildpack detected this app \(tried: hello-bp\)/);
  }, 300_000);
});
