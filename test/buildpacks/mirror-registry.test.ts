import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildpacksHome } from '../../buildpacks/runner.js';

// The loopback registry the node buildpack runs inside builds, exercised here with the host's node.
let tmp: string;
let child: ChildProcess;
let base: string;
let port: number;
const tgz = Buffer.from('pretend tarball');

/** Sends a raw request line, so paths reach the server exactly as written (no client normalizing). */
async function raw(method: string, target: string): Promise<{ status: number; body: string }> {
  const sock = net.connect(port, '127.0.0.1');
  sock.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const c of sock) text += (c as Buffer).toString('latin1');
  const [head, ...rest] = text.split('\r\n\r\n');
  return { status: Number(head!.split(' ')[1]), body: rest.join('\r\n\r\n') };
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-registry-test-'));
  await fs.mkdir(path.join(tmp, 'npm/ms/-'), { recursive: true });
  await fs.mkdir(path.join(tmp, 'npm/@s/n/-'), { recursive: true });
  await fs.writeFile(path.join(tmp, 'npm/ms/-/ms-2.1.3.tgz'), tgz);
  await fs.writeFile(path.join(tmp, 'npm/ms/-/ms-2.1.10.tgz'), tgz);
  await fs.writeFile(path.join(tmp, 'npm/@s/n/-/n-1.0.0.tgz'), tgz);
  await fs.writeFile(path.join(tmp, 'secret.txt'), 'outside npm/');
  await fs.writeFile(
    path.join(tmp, 'manifest.json'),
    JSON.stringify({ version: 1, entries: { 'npm:ms@2.1.3': { integrity: 'sha512-fromManifest' } } }),
  );
  child = spawn(process.execPath, [path.join(buildpacksHome(), 'node/lib/mirror-registry.mjs'), path.join(tmp, 'npm')], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const first = await readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
  port = Number(first.value);
  base = `http://127.0.0.1:${port}/`;
});
afterAll(async () => {
  child.kill();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('mirror-registry.mjs', () => {
  it('serves tarballs at registry paths, scoped ones included', async () => {
    const res = await fetch(`${base}ms/-/ms-2.1.3.tgz`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(tgz);
    expect((await fetch(`${base}@s/n/-/n-1.0.0.tgz`)).status).toBe(200);
    expect((await fetch(`${base}ms/-/ms-9.9.9.tgz`)).status).toBe(404);
  });

  it('synthesizes packuments from the tarballs present', async () => {
    const doc = (await (await fetch(`${base}ms`)).json()) as { 'dist-tags': { latest: string }; versions: Record<string, { dist: { tarball: string; integrity: string } }> };
    expect(Object.keys(doc.versions).sort()).toEqual(['2.1.10', '2.1.3']);
    expect(doc['dist-tags'].latest).toBe('2.1.10');
    expect(doc.versions['2.1.3']!.dist).toEqual({ tarball: `${base}ms/-/ms-2.1.3.tgz`, integrity: 'sha512-fromManifest' });
    expect(doc.versions['2.1.10']!.dist.integrity).toBe(`sha512-${createHash('sha512').update(tgz).digest('base64')}`);
    const scoped = (await (await fetch(`${base}@s%2fn`)).json()) as { versions: Record<string, unknown> };
    expect(Object.keys(scoped.versions)).toEqual(['1.0.0']);
    expect((await fetch(`${base}nothere`)).status).toBe(404);
  });

  it('refuses paths that climb out of npm/ and anything but reads', async () => {
    expect((await raw('GET', '/../secret.txt')).status).toBe(403);
    expect((await raw('GET', '/ms/-/%2e%2e/%2e%2e/%2e%2e/secret.txt')).status).toBe(403);
    expect((await raw('GET', '/%2e%2e%2fsecret.txt')).status).toBe(403);
    expect((await raw('PUT', '/ms')).status).toBe(405);
    expect((await raw('GET', '/../secret.txt')).body).not.toContain('outside npm/');
  });
});
