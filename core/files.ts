import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import writeFileAtomic from 'write-file-atomic';
import { SlipwayError } from './errors.js';

/**
 * Every state file goes through here: write to a temp file, fsync, rename. A crash leaves
 * either the old or the new content, never a torn file.
 */
export async function writeJsonAtomic(file: string, value: unknown, mode = 0o600): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, { mode, fsync: true });
}

export async function writeFileAtomicText(file: string, text: string | Buffer, mode = 0o644): Promise<void> {
  await writeFileAtomic(file, text, { mode, fsync: true });
}

/** A platform-owned text file's content; null when it does not exist. */
export async function readTextIfExists(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads a JSON file; `fallback` when it does not exist, a clear error when it is corrupt. */
export async function readJson<T>(file: string, fallback: T): Promise<T> {
  const text = await readTextIfExists(file);
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new SlipwayError('E_STATE', `state file ${file} is not valid JSON: restore it from a backup or remove it`, {
      cause: err,
    });
  }
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates `file` holding `content` unless it exists, and returns what it holds. Processes that
 * race (the daemon and the sign-in server) agree on one content: each writes its own temp file
 * and hard-links it into place, which fails for all but the first; the others read the winner's.
 */
export async function createFileOnce(file: string, content: Buffer, mode = 0o600): Promise<Buffer> {
  const existing = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (existing !== null) return existing;
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(tmp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return fs.readFile(file);
}
