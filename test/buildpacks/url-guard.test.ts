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
import { fetchBuildpack, gitCloneArgs, parseBuildpackUrl } from '../../buildpacks/fetch-url.js';
import { classifyAddress, embeddedIpv4, parseAllowList, UrlGuard, type LookupAll } from '../../buildpacks/url-guard.js';
import { checkConfigInput } from '../../core/config.js';
import { rejectsOneLine, throwsOneLine } from '../support/errors.js';

// Every connection in this file goes to 127.0.0.1; names resolve through injected lookups.
const execFileP = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-url-guard-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const script = (body: string) => `#!/usr/bin/env bash\n${body}\n`;

async function buildpackTgz(): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'bp/bin/detect', mode: 0o755 }, script('exit 0'));
  pack.entry({ name: 'bp/bin/compile', mode: 0o755 }, script('true'));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A loopback server; `routes` answers by path, and every request is recorded. */
async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse, port: number) => void) {
  const seen: string[] = [];
  let port = 0;
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    handler(req, res, port);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  return { port, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const lookupTable =
  (table: Record<string, string[]>): LookupAll =>
  async (host) => {
    const list = table[host];
    if (!list) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

describe('address classes', () => {
  it('refuses loopback, link-local, private, CGNAT, ULA, unspecified, multicast and their IPv4-in-IPv6 forms', () => {
    const cases: Record<string, string> = {
      '127.0.0.1': 'loopback',
      '127.255.1.2': 'loopback',
      '0.0.0.0': 'unspecified',
      '10.1.2.3': 'private',
      '172.16.0.1': 'private',
      '172.31.255.255': 'private',
      '192.168.1.1': 'private',
      '100.64.0.1': 'shared (CGNAT)',
      '100.127.255.254': 'shared (CGNAT)',
      '169.254.169.254': 'link-local',
      '224.0.0.1': 'multicast',
      '255.255.255.255': 'reserved',
      '::': 'unspecified',
      '::1': 'loopback',
      'fe80::1': 'link-local',
      'fd12:3456::1': 'unique-local',
      'fc00::1': 'unique-local',
      'ff02::1': 'multicast',
      '::ffff:127.0.0.1': 'loopback',
      '::ffff:7f00:1': 'loopback',
      '::ffff:10.0.0.1': 'private',
      '::ffff:169.254.169.254': 'link-local',
      '::127.0.0.1': 'loopback',
      '64:ff9b::a9fe:a9fe': 'link-local',
      '2002:c0a8:101::1': 'private',
    };
    for (const [address, cls] of Object.entries(cases)) expect([address, classifyAddress(address)]).toEqual([address, cls]);
    for (const address of ['8.8.8.8', '172.32.0.1', '100.128.0.1', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect([address, classifyAddress(address)]).toEqual([address, 'public']);
    }
    expect(embeddedIpv4('2001:4860::8888')).toBeNull();
  });

  it('parses the allow list: names, addresses and CIDRs; a bad prefix is a config error', () => {
    const { hosts, nets } = parseAllowList(['Git.Internal.', '10.0.0.0/8', '[fd00::]/8', '127.0.0.1']);
    expect([...hosts]).toEqual(['git.internal']);
    expect(nets.check('10.9.9.9', 'ipv4')).toBe(true);
    expect(nets.check('fd00::5', 'ipv6')).toBe(true);
    expect(nets.check('127.0.0.2', 'ipv4')).toBe(false);
    expect(throwsOneLine(() => parseAllowList(['10.0.0.0/33'])).code).toBe('E_CONFIG');
    expect(checkConfigInput({ buildpackUrlAllow: ['git.internal', '10.0.0.0/8', 'fd00::/8'] }, 'x')).toBeTruthy();
    expect(() => checkConfigInput({ buildpackUrlAllow: ['http://x/'] }, 'x')).toThrow(/buildpackUrlAllow/);
    expect(() => checkConfigInput({ buildpackUrlAllow: 'git.internal' }, 'x')).toThrow(/buildpackUrlAllow/);
  });
});

describe('vetting a URL', () => {
  const lookup = lookupTable({
    'public.example': ['93.184.216.34'],
    'mixed.example': ['93.184.216.34', '10.0.0.7'],
    'meta.example': ['169.254.169.254'],
    'self.example': ['203.0.113.5'],
    'git.internal': ['10.1.1.1'],
  });
  const guard = (allow: string[] = []) => new UrlGuard({ allow, lookup, ownAddresses: () => ['203.0.113.5'] });

  it('refuses a host when any of its addresses is inward, in one line naming the host and buildpackUrlAllow', async () => {
    for (const [url, why] of [
      ['https://mixed.example/bp.tgz', /"mixed\.example" \(resolves to 10\.0\.0\.7\) is a private address/],
      ['http://meta.example/latest/', /"meta\.example" \(resolves to 169\.254\.169\.254\) is a link-local address/],
      ['https://self.example/bp.tgz', /"self\.example" \(resolves to 203\.0\.113\.5\) is one of the platform's own addresses/],
      ['http://127.0.0.1:8080/_git/app.git', /"127\.0\.0\.1" is a loopback address/],
      // The URL parser writes it as ::ffff:7f00:1; the guard still sees 127.0.0.1 in it.
      ['http://[::ffff:127.0.0.1]/x.tgz', /"::ffff:7f00:1" is a loopback address/],
      ['git://[::1]/bp', /"::1" is a loopback address/],
    ] as const) {
      const err = await rejectsOneLine(guard().vet(new URL(url)));
      expect(err.code).toBe('E_BUILDPACK');
      expect(err.message).toMatch(why);
      expect(err.message).toContain('buildpackUrlAllow');
    }
  });

  it('passes public hosts and what the operator allowed, returning the address to connect to', async () => {
    expect(await guard().vet(new URL('https://public.example/bp.tgz'))).toEqual({ host: 'public.example', port: 443, address: '93.184.216.34', family: 4 });
    expect((await guard(['git.internal']).vet(new URL('git://git.internal/bp'))).address).toBe('10.1.1.1');
    expect((await guard(['10.0.0.0/8']).vet(new URL('http://git.internal:8000/bp.git'))).port).toBe(8000);
    // Allowing one address does not open its neighbours.
    await rejectsOneLine(guard(['127.0.0.1']).vet(new URL('http://127.0.0.2/bp.tgz')));
    const unknown = await rejectsOneLine(guard().vet(new URL('https://nowhere.example/bp.tgz')));
    expect(unknown.message).toMatch(/cannot resolve buildpack URL host "nowhere\.example": ENOTFOUND/);
  });

  it('builds git options that pin the vetted address and turn off redirects and proxies', () => {
    const https = gitCloneArgs(new URL('https://bp.example/org/bp.git'), { host: 'bp.example', port: 443, address: '93.184.216.34', family: 4 });
    expect(https.args).toEqual(expect.arrayContaining(['http.curloptResolve=bp.example:443:93.184.216.34', 'http.followRedirects=false', 'http.proxy=', 'protocol.allow=never']));
    expect(https.cloneUrl).toBe('https://bp.example/org/bp.git');
    const v6 = gitCloneArgs(new URL('http://bp.example:8080/bp.git'), { host: 'bp.example', port: 8080, address: '2606:4700::1', family: 6 });
    expect(v6.args).toContain('http.curloptResolve=bp.example:8080:[2606:4700::1]');
    const literal = gitCloneArgs(new URL('http://[2606:4700::1]/bp.git'), { host: '2606:4700::1', port: 80, address: '2606:4700::1', family: 6 });
    expect(literal.args.some((a) => a.startsWith('http.curloptResolve'))).toBe(false);
    const git = gitCloneArgs(new URL('git://bp.example/bp'), { host: 'bp.example', port: 9418, address: '93.184.216.34', family: 4 });
    expect(git.cloneUrl).toBe('git://93.184.216.34/bp');
  });
});

describe('fetching through the guard (loopback servers only)', () => {
  let bp: Buffer;
  beforeAll(async () => {
    bp = await buildpackTgz();
  });
  const cacheDir = () => fs.mkdtemp(path.join(tmp, 'cache-'));

  it('refuses a loopback tarball URL without connecting, and leaves the cache empty', async () => {
    const srv = await serve((_req, res) => res.end(bp));
    try {
      const dir = await cacheDir();
      for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
        const url = parseBuildpackUrl(`http://${host}:${srv.port}/bp.tgz`)!;
        const err = await rejectsOneLine(fetchBuildpack(url, { cacheDir: dir, say: () => undefined, guard: new UrlGuard({ allow: [] }) }));
        expect(err.message).toMatch(/is a loopback address, which buildpacks are not fetched from; an operator can allow it with buildpackUrlAllow/);
      }
      expect(srv.seen).toEqual([]);
      expect((await fs.readdir(dir)).filter((e) => !e.startsWith('.fetch-'))).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  it('refuses a git URL at the platform\'s own /_git/ before git runs', async () => {
    const url = parseBuildpackUrl('http://127.0.0.1:8080/_git/other-app.git')!;
    // Were git spawned, the error would be "cannot run git".
    const err = await rejectsOneLine(fetchBuildpack(url, { cacheDir: await cacheDir(), say: () => undefined, guard: new UrlGuard({ allow: [] }), git: '/nonexistent/git' }));
    expect(err.message).toMatch(/"127\.0\.0\.1" is a loopback address.*buildpackUrlAllow/);
  });

  it('vets every redirect hop: an allowed host redirecting to a refused one stops there', async () => {
    const srv = await serve((req, res, port) => {
      const to: Record<string, string> = {
        '/to-other-loopback': `http://127.0.0.2:${port}/bp.tgz`,
        '/to-v6-loopback': `http://[::1]:${port}/bp.tgz`,
        '/to-metadata': 'http://169.254.169.254/latest/meta-data/',
        '/to-file': 'file:///etc/passwd',
      };
      const where = to[req.url!.replace(/\.tgz$/, '')];
      if (where) res.writeHead(302, { location: where }).end();
      else res.writeHead(404).end();
    });
    try {
      const guard = new UrlGuard({ allow: ['127.0.0.1'] });
      for (const [p, why] of [
        ['/to-other-loopback', /"127\.0\.0\.2" is a loopback address.*buildpackUrlAllow/],
        ['/to-v6-loopback', /"::1" is a loopback address.*buildpackUrlAllow/],
        ['/to-metadata', /"169\.254\.169\.254" is a link-local address.*buildpackUrlAllow/],
        ['/to-file', /a redirect to the file: scheme/],
      ] as const) {
        const url = parseBuildpackUrl(`http://127.0.0.1:${srv.port}${p}.tgz`)!;
        srv.seen.length = 0;
        const err = await rejectsOneLine(fetchBuildpack(url, { cacheDir: await cacheDir(), say: () => undefined, guard }));
        expect(err.message).toMatch(why);
        expect(srv.seen).toEqual([`${p}.tgz`]);
      }
    } finally {
      await srv.close();
    }
  });

  it('follows up to 5 allowed redirects and refuses a sixth', async () => {
    const srv = await serve((req, res) => {
      const m = /^\/hop(\d+)\.tgz$/.exec(req.url!);
      if (req.url === '/bp.tgz') res.end(bp);
      else if (m && Number(m[1]) > 0) res.writeHead(301, { location: `/hop${Number(m[1]) - 1}.tgz` }).end();
      else if (m) res.writeHead(302, { location: '/bp.tgz' }).end();
      else res.writeHead(404).end();
    });
    try {
      const guard = new UrlGuard({ allow: ['127.0.0.1'] });
      const ok = await fetchBuildpack(parseBuildpackUrl(`http://127.0.0.1:${srv.port}/hop4.tgz`)!, { cacheDir: await cacheDir(), say: () => undefined, guard });
      expect(await fs.readFile(path.join(ok.dir, 'bin', 'compile'), 'utf8')).toContain('true');
      const err = await rejectsOneLine(fetchBuildpack(parseBuildpackUrl(`http://127.0.0.1:${srv.port}/hop5.tgz`)!, { cacheDir: await cacheDir(), say: () => undefined, guard }));
      expect(err.message).toMatch(/more than 5 redirects/);
    } finally {
      await srv.close();
    }
  });

  it('connects to the vetted address, not to a second resolution of the name', async () => {
    const srv = await serve((req, res) => (req.url === '/bp.tgz' ? res.end(bp) : res.writeHead(404).end()));
    try {
      // The name exists only in the guard's lookup: the download must use the address it vetted.
      const guard = new UrlGuard({ allow: ['bp.slipway.invalid'], lookup: lookupTable({ 'bp.slipway.invalid': ['127.0.0.1'] }) });
      const ref = await fetchBuildpack(parseBuildpackUrl(`http://bp.slipway.invalid:${srv.port}/bp.tgz`)!, { cacheDir: await cacheDir(), say: () => undefined, guard });
      expect(ref.name).toBe('bp');
      expect(srv.seen).toEqual(['/bp.tgz']);
    } finally {
      await srv.close();
    }
  });

  it('pins git clones over http to the vetted address, and git does not follow redirects', async () => {
    // A bare repository served by git http-backend (CGI) on loopback.
    const src = path.join(tmp, 'src');
    await fs.mkdir(path.join(src, 'bin'), { recursive: true });
    await fs.writeFile(path.join(src, 'bin', 'detect'), script('exit 0'), { mode: 0o755 });
    await fs.writeFile(path.join(src, 'bin', 'compile'), script('true'), { mode: 0o755 });
    const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e.invalid' };
    await execFileP('git', ['init', '-q', '-b', 'main'], { cwd: src, env });
    await execFileP('git', ['add', '-A'], { cwd: src, env });
    await execFileP('git', ['commit', '-qm', 'bp'], { cwd: src, env });
    const root = path.join(tmp, 'repos');
    await fs.mkdir(root);
    await execFileP('git', ['clone', '-q', '--bare', src, path.join(root, 'bp.git')]);
    const srv = await serve((req, res, port) => {
      if (req.url!.startsWith('/moved/')) return res.writeHead(301, { location: `http://127.0.0.1:${port}${req.url!.slice(6)}` }).end();
      const [pathInfo, query = ''] = req.url!.split('?') as [string, string?];
      const cgi = spawn('git', ['http-backend'], {
        env: { ...process.env, GIT_PROJECT_ROOT: root, GIT_HTTP_EXPORT_ALL: '1', PATH_INFO: pathInfo, QUERY_STRING: query, REQUEST_METHOD: req.method!, CONTENT_TYPE: req.headers['content-type'] ?? '', HTTP_GIT_PROTOCOL: String(req.headers['git-protocol'] ?? '') },
      });
      req.pipe(cgi.stdin);
      const out: Buffer[] = [];
      cgi.stdout.on('data', (d: Buffer) => out.push(d));
      cgi.on('close', () => {
        const all = Buffer.concat(out);
        const end = all.indexOf('\r\n\r\n');
        const headers: Record<string, string> = {};
        let status = 200;
        for (const line of all.subarray(0, end).toString().split('\r\n')) {
          const [k, ...v] = line.split(': ');
          if (k!.toLowerCase() === 'status') status = parseInt(v.join(': '), 10);
          else headers[k!] = v.join(': ');
        }
        res.writeHead(status, headers).end(all.subarray(end + 4));
      });
    });
    try {
      const guard = new UrlGuard({ allow: ['bp.slipway.invalid'], lookup: lookupTable({ 'bp.slipway.invalid': ['127.0.0.1'] }) });
      const ref = await fetchBuildpack(parseBuildpackUrl(`http://bp.slipway.invalid:${srv.port}/bp.git#main`)!, { cacheDir: await cacheDir(), say: () => undefined, guard });
      expect(ref.name).toBe('bp');
      expect(srv.seen.some((u) => u.startsWith('/bp.git/info/refs'))).toBe(true);
      srv.seen.length = 0;
      const err = await rejectsOneLine(fetchBuildpack(parseBuildpackUrl(`http://bp.slipway.invalid:${srv.port}/moved/bp.git`)!, { cacheDir: await cacheDir(), say: () => undefined, guard }));
      expect(err.message).toMatch(/git clone failed/);
      expect(srv.seen.every((u) => u.startsWith('/moved/'))).toBe(true);
    } finally {
      await srv.close();
    }
  });
});
