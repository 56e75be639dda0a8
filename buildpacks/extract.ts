import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { SlipwayError } from '../core/errors.js';
import { extractSafely } from './safe-tar.js';

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

/** Writes the tree of one commit into `dest`, with the rules of buildpacks/safe-tar.ts. */
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

  const extract = tar.extract();
  const feeding = pipeline(git.stdout, extract).catch(() => {
    // The consumer below reports the error that matters; a broken feed follows from it.
  });
  let result: { files: number; bytes: number };
  try {
    result = await extractSafely(extract, {
      dest,
      maxBytes: o.maxBytes,
      entryLabel: 'pushed tree',
      treeLabel: 'the app',
      tooLarge: `the pushed tree is larger than ${o.maxBytes} bytes`,
    });
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
  return result;
}
