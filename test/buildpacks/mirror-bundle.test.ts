import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportBundle, importBundle, isSafeBundlePath } from '../../buildpacks/mirror/bundle.js';
import { sha512Sri } from '../../buildpacks/mirror/integrity.js';
import { addManifestEntries, readManifest } from '../../buildpacks/mirror/layout.js';
import { MirrorAdmin } from '../../services/mirror-admin.js';
import { defaults } from '../../core/config.js';
import { SlipwayError } from '../../core/errors.js';
import { pathsFor } from '../../core/paths.js';
import { SettingsStore } from '../../core/settings.js';

let tmp: string;
let source: string;
let target: string;
const lines: string[] = [];
const progress = (l: string) => lines.push(l);

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SlipwayError);
  return (err as Error).message;
}

/** A mirror with one npm tarball (added an hour ago) and one wheel (added now). */
async function seedSource(): Promise<void> {
  const tgz = Buffer.from('pretend npm tarball '.repeat(100));
  await fs.mkdir(path.join(source, 'npm/left-pad/-'), { recursive: true });
  await fs.writeFile(path.join(source, 'npm/left-pad/-/left-pad-1.3.0.tgz'), tgz);
  await addManifestEntries(source, [
    { kind: 'npm', name: 'left-pad', version: '1.3.0', file: 'npm/left-pad/-/left-pad-1.3.0.tgz', integrity: sha512Sri(tgz), size: tgz.length, source: 'test', addedAt: new Date(Date.now() - 3_600_000).toISOString() },
  ]);
  const wheel = path.join(tmp, 'Flask-3.0.0-py3-none-any.whl');
  await fs.writeFile(wheel, 'pretend wheel');
  const admin = new MirrorAdmin({
    config: defaults(tmp),
    paths: { ...pathsFor(tmp), mirrorDir: source },
    docker: {} as never,
    settings: new SettingsStore(path.join(tmp, 'settings.json')),
    serialize: (_app, task) => task(),
  });
  expect(await admin.addPypi([wheel], progress)).toEqual(['pypi/Flask-3.0.0-py3-none-any.whl']);
}

/** A tar built by hand, for archives mirror:export would never write. */
async function rawTar(entries: { header: Partial<tar.Header> & { name: string }; body?: string }[]): Promise<string> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.body === undefined) pack.entry(e.header);
    else pack.entry(e.header, e.body);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const file = path.join(tmp, `raw-${Math.random().toString(16).slice(2)}.tar`);
  await fs.writeFile(file, Buffer.concat(chunks));
  return file;
}

const manifestFor = (files: Record<string, string>) =>
  JSON.stringify({
    format: 'slipway-mirror-bundle',
    version: 1,
    createdAt: new Date().toISOString(),
    since: null,
    entries: Object.entries(files).map(([file, body]) => ({
      kind: 'pypi',
      name: 'flask',
      version: '3.0.0',
      file,
      integrity: `sha256-${createHash('sha256').update(body).digest('base64')}`,
      size: Buffer.byteLength(body),
      source: 'test',
      addedAt: new Date().toISOString(),
    })),
  });
const sumsFor = (files: Record<string, string>) => Object.entries(files).map(([f, b]) => `${createHash('sha256').update(b).digest('hex')}  ${f}\n`).join('');

/** The target mirror holds nothing: no files, no manifest, no staging left behind. */
async function expectUntouched(): Promise<void> {
  expect(await fs.readdir(target)).toEqual([]);
}

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bundle-'));
  source = path.join(tmp, 'source');
  target = path.join(tmp, 'target');
  await fs.mkdir(source);
  await fs.mkdir(target);
  lines.length = 0;
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('mirror bundles', () => {
  it('round-trips every entry with its checksum, and --since keeps only newer entries', async () => {
    await seedSource();
    const file = path.join(tmp, 'all.tar');
    expect(await exportBundle({ mirrorDir: source, file, since: null, progress })).toMatchObject({ entries: 2 });
    expect(await importBundle({ mirrorDir: target, file, progress })).toEqual({ added: 2 });
    expect(await fs.readFile(path.join(target, 'pypi/Flask-3.0.0-py3-none-any.whl'), 'utf8')).toBe('pretend wheel');
    expect(await fs.readFile(path.join(target, 'npm/left-pad/-/left-pad-1.3.0.tgz'))).toEqual(await fs.readFile(path.join(source, 'npm/left-pad/-/left-pad-1.3.0.tgz')));
    const entries = Object.values((await readManifest(target)).entries);
    expect(entries.map((e) => e.integrity).sort()).toEqual(Object.values((await readManifest(source)).entries).map((e) => e.integrity).sort());
    expect((await fs.readdir(target)).filter((f) => f.startsWith('.'))).toEqual([]);

    const recent = path.join(tmp, 'recent.tar');
    const r = await exportBundle({ mirrorDir: source, file: recent, since: new Date(Date.now() - 60_000), progress });
    expect(r.entries).toBe(1);
    const names: string[] = [];
    const extract = tar.extract();
    const reading = (async () => {
      for await (const e of extract) {
        names.push(e.header.name);
        e.resume();
      }
    })();
    extract.end(await fs.readFile(recent));
    await reading;
    expect(names).toEqual(['manifest.json', 'pypi/Flask-3.0.0-py3-none-any.whl', 'SHA256SUMS']);
  });

  it('refuses a bundle with one byte changed, naming the entry, and imports nothing', async () => {
    await seedSource();
    const file = path.join(tmp, 'all.tar');
    await exportBundle({ mirrorDir: source, file, since: null, progress });
    const bytes = await fs.readFile(file);
    const at = bytes.indexOf('pretend wheel');
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x20, at);
    await fs.writeFile(file, bytes);
    expect(await refusal(importBundle({ mirrorDir: target, file, progress }))).toMatch(/nothing was imported: Flask-3\.0\.0-py3-none-any\.whl: .* does not match its checksum/);
    await expectUntouched();
  });

  it('refuses a partial bundle', async () => {
    await seedSource();
    const file = path.join(tmp, 'all.tar');
    await exportBundle({ mirrorDir: source, file, since: null, progress });
    const bytes = await fs.readFile(file);
    // Cut at a block boundary after the first file, and mid-block.
    for (const size of [512 * 6, 1000]) {
      await fs.writeFile(file, bytes.subarray(0, size));
      expect(await refusal(importBundle({ mirrorDir: target, file, progress }))).toMatch(/nothing was imported/);
      await expectUntouched();
    }
  });

  it('refuses archive entries with absolute paths, .., symlinks, hard links and unlisted files', async () => {
    const files = { 'pypi/Flask-3.0.0-py3-none-any.whl': 'w' };
    const good = [
      { header: { name: 'manifest.json' }, body: manifestFor(files) },
      { header: { name: 'pypi/Flask-3.0.0-py3-none-any.whl' }, body: 'w' },
    ];
    const cases: [Partial<tar.Header> & { name: string }, string | undefined, RegExp][] = [
      [{ name: '/etc/evil' }, 'x', /unsafe or unexpected path/],
      [{ name: 'npm/../../evil' }, 'x', /unsafe or unexpected path/],
      [{ name: '../evil' }, 'x', /unsafe or unexpected path/],
      [{ name: 'evil.txt' }, 'x', /unsafe or unexpected path/],
      [{ name: 'npm/link', type: 'symlink', linkname: '/etc/passwd' }, undefined, /is a symlink/],
      [{ name: 'npm/hard', type: 'link', linkname: 'manifest.json' }, undefined, /is a link/],
      [{ name: 'npm/dir', type: 'directory' }, undefined, /is a directory/],
      [{ name: 'npm/extra/-/extra-1.0.0.tgz' }, 'x', /is not in its manifest/],
    ];
    for (const [header, body, message] of cases) {
      const file = await rawTar([...good, { header, ...(body === undefined ? {} : { body }) }, { header: { name: 'SHA256SUMS' }, body: sumsFor(files) }]);
      expect(await refusal(importBundle({ mirrorDir: target, file, progress })), header.name).toMatch(message);
      await expectUntouched();
    }
    await expect(fs.access(path.join(tmp, 'evil'))).rejects.toThrow();
    // The same archive without the bad entry is accepted: the refusals above were for that entry.
    const ok = await rawTar([...good, { header: { name: 'SHA256SUMS' }, body: sumsFor(files) }]);
    expect(await importBundle({ mirrorDir: target, file: ok, progress })).toEqual({ added: 1 });
  });

  it('refuses manifests that point entries at other paths, and bundles without SHA256SUMS', async () => {
    const files = { 'pypi/Flask-3.0.0-py3-none-any.whl': 'w' };
    const noSums = await rawTar([
      { header: { name: 'manifest.json' }, body: manifestFor(files) },
      { header: { name: 'pypi/Flask-3.0.0-py3-none-any.whl' }, body: 'w' },
    ]);
    expect(await refusal(importBundle({ mirrorDir: target, file: noSums, progress }))).toMatch(/no SHA256SUMS/);
    const renamed = { 'pypi/Django-5.0.0-py3-none-any.whl': 'w' };
    const lying = await rawTar([
      { header: { name: 'manifest.json' }, body: manifestFor(renamed) },
      { header: { name: 'pypi/Django-5.0.0-py3-none-any.whl' }, body: 'w' },
      { header: { name: 'SHA256SUMS' }, body: sumsFor(renamed) },
    ]);
    expect(await refusal(importBundle({ mirrorDir: target, file: lying, progress }))).toMatch(/not a valid Python package file/);
    await expectUntouched();
  });

  it('will not export a mirror file that no longer matches its checksum', async () => {
    await seedSource();
    await fs.writeFile(path.join(source, 'npm/left-pad/-/left-pad-1.3.0.tgz'), Buffer.from('PRETEND npm tarball '.repeat(100)));
    const file = path.join(tmp, 'bad.tar');
    expect(await refusal(exportBundle({ mirrorDir: source, file, since: null, progress }))).toMatch(/left-pad@1\.3\.0: .* does not match its recorded checksum/);
    expect((await fs.readdir(tmp)).filter((f) => f.startsWith('bad.tar'))).toEqual([]);
  });

  it('accepts only relative paths under npm/ or pypi/', () => {
    expect(isSafeBundlePath('npm/@s/n/-/n-1.0.0.tgz')).toBe(true);
    for (const bad of ['npm', 'npm/', 'npm//x', 'npm/./x', 'pypi/../x', '/npm/x', 'npm\\x', 'npm/x\0', 'other/x']) expect(isSafeBundlePath(bad), bad).toBe(false);
  });
});
