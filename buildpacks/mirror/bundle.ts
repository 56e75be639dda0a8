import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { SlipwayError, oneLine } from '../../core/errors.js';
import { integrityMatchesDigests, MultiHash } from './integrity.js';
import { addManifestEntries, npmTarballPath, readManifest, type MirrorEntry } from './layout.js';
import { parsePypiFilename } from './pypi.js';

/**
 * Mirror bundles: how packages cross an air gap. One plain tar (the tarballs inside are already
 * compressed) holding `manifest.json` first, then each entry's file at its mirror path, then
 * `SHA256SUMS` last, so a bundle cut short anywhere is detectably incomplete.
 */
const FORMAT = 'slipway-mirror-bundle';
const MANIFEST = 'manifest.json';
const SUMS = 'SHA256SUMS';
const MAX_META_BYTES = 64 * 1024 * 1024;

export interface BundleManifest {
  format: typeof FORMAT;
  version: 1;
  createdAt: string;
  since: string | null;
  entries: MirrorEntry[];
}

type Progress = (line: string) => void;

/** Where an entry's file must live, from what it claims to be; throws for anything else. */
export function expectedFile(e: MirrorEntry): string {
  if (e.kind === 'npm' || e.kind === 'node') return npmTarballPath(e.name, e.version);
  if (e.kind === 'pypi') {
    const base = typeof e.file === 'string' ? e.file.slice('pypi/'.length) : '';
    const parsed = parsePypiFilename(base);
    if (!e.file.startsWith('pypi/') || parsed === null || parsed.name !== e.name || parsed.version !== e.version) {
      throw new SlipwayError('E_MIRROR', `not a valid Python package file: ${JSON.stringify(String(e.file).slice(0, 120))}`);
    }
    return e.file;
  }
  throw new SlipwayError('E_MIRROR', `unknown mirror entry kind ${JSON.stringify(String(e.kind).slice(0, 20))}`);
}

const label = (e: MirrorEntry): string => (e.kind === 'pypi' ? e.file.slice('pypi/'.length) : `${e.name}@${e.version}`);

/**
 * Writes the mirror's entries (those added after `since`, or all) to `file`, atomically: a temp
 * file next to it, fsynced, then renamed. Each file is checked against its recorded integrity as
 * it is read, so a bundle never carries a mirror's own corruption.
 */
export async function exportBundle(o: { mirrorDir: string; file: string; since: Date | null; progress: Progress }): Promise<{ entries: number; bytes: number }> {
  const manifest = await readManifest(o.mirrorDir);
  const entries = Object.values(manifest.entries)
    .filter((e) => o.since === null || Date.parse(e.addedAt) > o.since.getTime())
    .sort((a, b) => a.file.localeCompare(b.file));
  for (const e of entries) expectedFile(e);
  const target = path.resolve(o.file);
  const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const total = entries.reduce((n, e) => n + e.size, 0);
  o.progress(`-----> Exporting ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} (${mib(total)})${o.since ? ` added after ${o.since.toISOString()}` : ''} to ${target}`);
  const doc: BundleManifest = { format: FORMAT, version: 1, createdAt: new Date().toISOString(), since: o.since?.toISOString() ?? null, entries };
  const pack = tar.pack();
  const writing = pipeline(pack, fs.createWriteStream(temp, { mode: 0o644 }));
  try {
    const mtime = new Date();
    pack.entry({ name: MANIFEST, mode: 0o644, mtime }, `${JSON.stringify(doc, null, 2)}\n`);
    const sums: string[] = [];
    let done = 0;
    let shown = 0;
    for (const e of entries) {
      const src = path.join(o.mirrorDir, e.file);
      const st = await fsp.stat(src).catch(() => null);
      if (!st?.isFile() || st.size !== e.size) {
        throw new SlipwayError('E_MIRROR', `${label(e)}: ${e.file} is missing or has the wrong size in the mirror; add it again with slipway mirror:add`);
      }
      const hash = new MultiHash();
      await pipeline(fs.createReadStream(src), hashing(hash), pack.entry({ name: e.file, size: st.size, mode: 0o644, mtime }));
      if (!integrityMatchesDigests(e.integrity, (a) => hash.digest(a))) {
        throw new SlipwayError('E_MIRROR', `${label(e)}: ${e.file} does not match its recorded checksum; the mirror copy is damaged: add it again with slipway mirror:add`);
      }
      sums.push(`${hash.digest('sha256', 'hex')}  ${e.file}\n`);
      done += e.size;
      if (done - shown >= total / 10 || e.size > 16 * 1024 * 1024) {
        o.progress(`       ${mib(done)} of ${mib(total)}`);
        shown = done;
      }
    }
    pack.entry({ name: SUMS, mode: 0o644, mtime }, sums.join(''));
    pack.finalize();
    await writing;
    const fd = await fsp.open(temp, 'r');
    await fd.sync();
    await fd.close();
    await fsp.rename(temp, target);
  } catch (err) {
    pack.destroy();
    await writing.catch(() => undefined);
    await fsp.rm(temp, { force: true });
    if (err instanceof SlipwayError) throw err;
    throw new SlipwayError('E_MIRROR', `writing ${target} failed: ${oneLine(err)}`, { cause: err });
  }
  const { size } = await fsp.stat(target);
  o.progress(`-----> Wrote ${target} (${mib(size)})`);
  return { entries: entries.length, bytes: size };
}

interface Staged {
  temp: string;
  hash: MultiHash;
}

/**
 * Imports a bundle. Nothing becomes visible until every entry checked out: the files are
 * extracted into a private staging folder inside the mirror (same filesystem, so the final move
 * is a rename), checked against the bundle's manifest and SHA256SUMS, and only then renamed into
 * place and merged into the manifest. Any failure removes the staging folder and names the
 * entry. Archive entries that are not plain files under npm/ or pypi/ are refused.
 */
export async function importBundle(o: { mirrorDir: string; file: string; progress: Progress }): Promise<{ added: number }> {
  if (!(await fsp.stat(o.file).catch(() => null))?.isFile()) throw new SlipwayError('E_MIRROR', `no such file: ${o.file}`);
  await fsp.mkdir(o.mirrorDir, { recursive: true });
  const staging = await fsp.mkdtemp(path.join(o.mirrorDir, '.import-'));
  const refuse = (why: string): SlipwayError => new SlipwayError('E_MIRROR', `${o.file} refused, nothing was imported: ${why}`);
  try {
    o.progress(`-----> Checking ${o.file}`);
    const staged = new Map<string, Staged>();
    let manifestText: string | null = null;
    let sumsText: string | null = null;
    const extract = tar.extract();
    const feeding = pipeline(fs.createReadStream(o.file), extract);
    try {
      for await (const entry of extract) {
        const { name, type, size } = entry.header;
        const shown = JSON.stringify(name.slice(0, 120));
        if (type !== 'file') throw refuse(`archive entry ${shown} is a ${type ?? 'special entry'}; a bundle holds only plain files`);
        if (staged.has(name) || (name === MANIFEST && manifestText !== null) || (name === SUMS && sumsText !== null)) {
          throw refuse(`archive entry ${shown} appears twice`);
        }
        if (name === MANIFEST || name === SUMS) {
          if ((size ?? 0) > MAX_META_BYTES) throw refuse(`${name} is too large`);
          const chunks: Buffer[] = [];
          for await (const c of entry) chunks.push(c as Buffer);
          const text = Buffer.concat(chunks).toString('utf8');
          if (name === MANIFEST) manifestText = text;
          else sumsText = text;
          continue;
        }
        if (!isSafeBundlePath(name)) throw refuse(`archive entry ${shown} has an unsafe or unexpected path`);
        const item: Staged = { temp: path.join(staging, String(staged.size)), hash: new MultiHash() };
        staged.set(name, item);
        await pipeline(entry, hashing(item.hash), fs.createWriteStream(item.temp, { mode: 0o644, flags: 'wx' }));
      }
      await feeding;
    } catch (err) {
      extract.destroy();
      await feeding.catch(() => undefined);
      if (err instanceof SlipwayError) throw err;
      throw refuse(`it is not a complete tar archive (${oneLine(err)}): copy it again`);
    }

    if (manifestText === null) throw refuse('it has no manifest.json: is it a file made by slipway mirror:export?');
    if (sumsText === null) throw refuse('it has no SHA256SUMS at its end: the bundle is incomplete, copy it again');
    const doc = parseBundleManifest(manifestText, refuse);
    const sums = parseSums(sumsText, refuse);
    const listed = new Set<string>();
    for (const e of doc.entries) {
      let file: string;
      try {
        file = expectedFile(e);
      } catch (err) {
        throw refuse(`manifest entry ${JSON.stringify(`${String(e.name)}@${String(e.version)}`.slice(0, 120))}: ${oneLine(err)}`);
      }
      if (listed.has(file)) throw refuse(`${label(e)} is listed twice in its manifest`);
      if (file !== e.file) throw refuse(`${label(e)}: recorded at ${JSON.stringify(e.file)} instead of ${file}`);
      const item = staged.get(file);
      if (!item) throw refuse(`${label(e)}: its file ${file} is not in the bundle (a partial bundle?)`);
      if (item.hash.size !== e.size) throw refuse(`${label(e)}: ${file} has ${item.hash.size} bytes, the manifest says ${e.size}`);
      if (!integrityMatchesDigests(e.integrity, (a) => item.hash.digest(a))) throw refuse(`${label(e)}: ${file} does not match its checksum (damaged or tampered)`);
      if (sums.get(file) !== item.hash.digest('sha256', 'hex')) throw refuse(`${label(e)}: ${file} does not match SHA256SUMS (damaged or tampered)`);
      listed.add(file);
    }
    for (const name of staged.keys()) {
      if (!listed.has(name)) throw refuse(`archive entry ${JSON.stringify(name.slice(0, 120))} is not in its manifest`);
    }

    // Verified: move into place. A crash from here on leaves verified files without manifest
    // entries at worst, which a later import or mirror:add records.
    const addedAt = new Date().toISOString();
    for (const e of doc.entries) {
      const target = path.join(o.mirrorDir, e.file);
      await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
      await fsp.rename(staged.get(e.file)!.temp, target);
    }
    await addManifestEntries(
      o.mirrorDir,
      doc.entries.map((e) => ({ kind: e.kind, name: e.name, version: e.version, file: e.file, integrity: e.integrity, size: e.size, source: e.source, addedAt })),
    );
    o.progress(`-----> Imported ${doc.entries.length} entr${doc.entries.length === 1 ? 'y' : 'ies'}`);
    return { added: doc.entries.length };
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/** A relative path under npm/ or pypi/ with no empty, `.` or `..` segment. Pure. */
export function isSafeBundlePath(name: string): boolean {
  if (name.length > 1024 || /[\\\0]/.test(name) || name.startsWith('/')) return false;
  const parts = name.split('/');
  if (parts[0] !== 'npm' && parts[0] !== 'pypi') return false;
  return parts.length >= 2 && parts.every((p) => p !== '' && p !== '.' && p !== '..');
}

function parseBundleManifest(text: string, refuse: (why: string) => SlipwayError): BundleManifest {
  let doc: Partial<BundleManifest>;
  try {
    doc = JSON.parse(text) as Partial<BundleManifest>;
  } catch {
    throw refuse('its manifest.json is not valid JSON');
  }
  if (doc?.format !== FORMAT || doc.version !== 1 || !Array.isArray(doc.entries)) throw refuse('its manifest.json is not a version 1 slipway mirror bundle manifest');
  for (const e of doc.entries) {
    const ok =
      typeof e === 'object' && e !== null &&
      ['name', 'version', 'file', 'integrity', 'source', 'addedAt'].every((k) => typeof (e as unknown as Record<string, unknown>)[k] === 'string') &&
      Number.isSafeInteger(e.size) && e.size >= 0;
    if (!ok) throw refuse('its manifest.json has a malformed entry');
  }
  return doc as BundleManifest;
}

function parseSums(text: string, refuse: (why: string) => SlipwayError): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64})  (.+)$/.exec(line);
    if (!m) throw refuse('its SHA256SUMS has a malformed line');
    sums.set(m[2]!, m[1]!);
  }
  return sums;
}

export function hashing(hash: MultiHash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
