import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { SlipwayError } from '../platform/errors.js';
import { entryComponents, symlinkAncestor, symlinkEscapes } from './safe-paths.js';

const REV = /^[0-9a-f]{40}$/;

export interface ExtractOptions {
  /** The bare repository. */
  repoDir: string;
  rev: string;
  /** Merged over process.env: carries git's quarantine variables during a pre-receive hook. */
  gitEnv: Record<string, string>;
  /** Created if missing; expected empty. On error its contents are undefined: discard it. */
  dest: string;
  maxBytes: number;
}

/**
 * Writes the tree of one commit into `dest`, refusing anything that could write or point outside
 * it (Dokku 0.38.2 wrote arbitrary files through tar symlinks). Only regular files, directories
 * and symlinks are created; of the mode, only the executable bit survives.
 */
export async function extractRevision(o: ExtractOptions): Promise<{ files: number; bytes: number }> {
  if (!REV.test(o.rev)) throw new SlipwayError('E_ARCHIVE', `refusing to archive ${JSON.stringify(o.rev.slice(0, 60))}: not a full commit id`);
  await fs.mkdir(o.dest, { recursive: true });
  const dest = await fs.realpath(o.dest);

  const git = spawn('git', ['--git-dir', o.repoDir, 'archive', '--format=tar', o.rev], {
    env: { ...process.env, ...o.gitEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  git.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<number>((resolve, reject) => {
    git.on('error', reject);
    git.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });

  const symlinks = new Map<string, string>();
  let files = 0;
  let bytes = 0;
  const extract = tar.extract();
  const feeding = pipeline(git.stdout, extract).catch(() => {
    // The consumer below reports the error that matters; a broken feed follows from it.
  });
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const refuse = (why: string) =>
        new SlipwayError('E_ARCHIVE', `refusing pushed tree entry ${JSON.stringify(h.name.slice(0, 200))}: ${why}`);
      const parts = entryComponents(h.name);
      if (typeof parts === 'string') throw refuse(parts);
      const rel = parts.join('/');
      const through = symlinkAncestor(parts, symlinks);
      if (through !== undefined) throw refuse(`it lies under the symlink ${through}`);
      const abs = path.join(dest, ...parts);

      if (h.type === 'directory') {
        await mkdirNoFollow(abs);
        entry.resume();
      } else if (h.type === 'file') {
        bytes += h.size ?? 0;
        if (bytes > o.maxBytes) throw new SlipwayError('E_TOO_LARGE', `the pushed tree is larger than ${o.maxBytes} bytes`);
        await fs.mkdir(path.dirname(abs), { recursive: true });
        const mode = (h.mode ?? 0) & 0o111 ? 0o755 : 0o644;
        // O_EXCL|O_NOFOLLOW: never write through something already there.
        const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
        const fh = await fs.open(abs, flags, mode);
        await pipeline(entry, fh.createWriteStream());
        files++;
      } else if (h.type === 'symlink') {
        const target = h.linkname ?? '';
        if (target === '' || target.includes('\0')) throw refuse('the symlink has no usable target');
        if (symlinkEscapes(rel, target, symlinks)) throw refuse(`the symlink points outside the app (${target.slice(0, 200)})`);
        await fs.mkdir(path.dirname(abs), { recursive: true });
        await fs.symlink(target, abs);
        symlinks.set(rel, target);
        entry.resume();
      } else {
        throw refuse(`unsupported entry type ${h.type ?? 'unknown'}`);
      }
    }
  } catch (err) {
    git.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw err;
  }
  await feeding;
  const code = await exited;
  if (code !== 0) {
    const why = stderr.trim().split('\n')[0] || `exit status ${code}`;
    throw new SlipwayError('E_ARCHIVE', `git archive ${o.rev.slice(0, 12)} failed: ${why}`);
  }
  // A later symlink can change where an earlier one leads (`a -> b/..`, then `b -> .`): check all
  // of them again against the complete set.
  for (const [rel, target] of symlinks) {
    if (symlinkEscapes(rel, target, symlinks)) {
      throw new SlipwayError('E_ARCHIVE', `refusing pushed tree entry ${JSON.stringify(rel)}: the symlink points outside the app (${target.slice(0, 200)})`);
    }
  }
  return { files, bytes };
}

async function mkdirNoFollow(abs: string): Promise<void> {
  try {
    await fs.mkdir(abs, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await fs.lstat(abs);
  if (!st.isDirectory()) throw new SlipwayError('E_ARCHIVE', `refusing pushed tree entry ${JSON.stringify(abs)}: not a directory`);
}
