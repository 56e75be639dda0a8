import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { SlipwayError } from './errors.js';

/**
 * Reading back what a build produced. The daemon runs as root; code in a build runs as uid 1000
 * and owns BUILD_DIR and the out folder, so any name there may have been replaced by a symlink to
 * a host file, a fifo that blocks, or a file of gigabytes. A plain fs.readFile would follow the
 * link and read the target as root (issue 9, "A build makes the daemon read host files as
 * root"). Here every path component is opened without following links: each folder with
 * O_NOFOLLOW|O_DIRECTORY relative to the one before (through /proc/self/fd, as Node has no
 * openat), the file itself with O_NOFOLLOW|O_NONBLOCK, and it must then be a regular file of at
 * most `maxBytes`.
 */

const { O_RDONLY, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

export interface ReadUnderOptions {
  /** Larger files are refused, not truncated. */
  maxBytes: number;
  /** How the file is named in errors; `rel` by default (e.g. "Procfile", "the build's buildpack list"). */
  what?: string;
}

const linkAdvice = 'builds may not link files out of the app';

/** Splits a relative path into components, refusing anything that could leave the root. Pure. */
export function relComponents(rel: string): string[] {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (rel.startsWith('/') || rel.includes('\0') || parts.length === 0 || parts.includes('..')) {
    throw new SlipwayError('E_INTERNAL', `readFileUnder: ${JSON.stringify(rel)} is not a plain relative path`);
  }
  return parts;
}

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSymbolicLink(): boolean }): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

const at = (fd: number, name: string): string => `/proc/self/fd/${fd}/${name}`;

/**
 * Opens `root/rel` for reading without following a link anywhere below `root` (root itself is
 * the platform's own folder and trusted). Null when it (or a folder on the way) does not exist.
 * The caller closes the handle.
 */
export async function openUnder(root: string, rel: string, what: string = rel): Promise<FileHandle | null> {
  const parts = relComponents(rel);
  let dir: FileHandle;
  try {
    dir = await fs.open(root, O_RDONLY | O_DIRECTORY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let next: FileHandle;
      try {
        next = await fs.open(at(dir.fd, name), DIR_FLAGS);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return null;
        if (code === 'ELOOP' || code === 'ENOTDIR') {
          const st = await fs.lstat(at(dir.fd, name)).catch(() => null);
          if (st?.isSymbolicLink()) {
            throw new SlipwayError('E_UNSAFE_FILE', `${what}: ${parts.slice(0, i + 1).join('/')} is a symlink; ${linkAdvice}: replace it with a regular folder`);
          }
          return null; // a file where a folder would be: the path does not exist
        }
        throw err;
      }
      await dir.close();
      dir = next;
    }
    let file: FileHandle;
    try {
      file = await fs.open(at(dir.fd, parts[parts.length - 1]!), FILE_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') throw new SlipwayError('E_UNSAFE_FILE', `${what} is a symlink; ${linkAdvice}: replace it with a regular file`);
      if (code === 'ENXIO') throw new SlipwayError('E_UNSAFE_FILE', `${what} is a socket, not a regular file: replace it with a regular file`);
      throw err;
    }
    return file;
  } finally {
    await dir.close();
  }
}

/**
 * The bytes of `root/rel`, read without following links (see above), or null when it does not
 * exist. A symlink anywhere below root, anything but a regular file, or more than `maxBytes`
 * is refused with a one-line SlipwayError.
 */
export async function readBytesUnder(root: string, rel: string, o: ReadUnderOptions): Promise<Buffer | null> {
  const what = o.what ?? rel;
  const file = await openUnder(root, rel, what);
  if (file === null) return null;
  try {
    return await readOpened(file, what, o.maxBytes);
  } finally {
    await file.close();
  }
}

/** Text (UTF-8) version of readBytesUnder; null when the file does not exist. */
export async function readFileUnder(root: string, rel: string, o: ReadUnderOptions): Promise<string | null> {
  return (await readBytesUnder(root, rel, o))?.toString('utf8') ?? null;
}

/** Checks an opened handle is a regular file within the limit, then reads it whole. */
export async function readOpened(file: FileHandle, what: string, maxBytes: number): Promise<Buffer> {
  const st = await file.stat();
  if (!st.isFile()) throw new SlipwayError('E_UNSAFE_FILE', `${what} is ${kindOf(st)}, not a regular file: replace it with a regular file`);
  const tooLarge = () => new SlipwayError('E_TOO_LARGE', `${what} is larger than ${maxBytes} bytes: keep it smaller`);
  if (st.size > maxBytes) throw tooLarge();
  // Read one byte past the limit: a file that grew since fstat is refused too.
  const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
  let filled = 0;
  while (filled < buf.length) {
    const { bytesRead } = await file.read(buf, filled, buf.length - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  if (filled > maxBytes) throw tooLarge();
  return buf.subarray(0, filled);
}

/**
 * Opens an absolute path for reading with O_NOFOLLOW on its last component, for walkers that
 * already lstat'ed every folder on the way (tar packing, folder digests): a link swapped in at
 * the end is refused rather than followed.
 */
export async function openNoFollow(abs: string): Promise<FileHandle> {
  return fs.open(abs, FILE_FLAGS);
}
