import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from '../platform/errors.js';
import { copyTree, extractTarball, MAX_BUILDPACK_BYTES, swapInto, tarballRoot, validateBuildpack } from './plugins.js';
import type { BuildpackRef } from './runner.js';

/** A `.buildpacks` line that names a buildpack by URL. */
export interface BuildpackUrl {
  kind: 'git' | 'tgz';
  /** What is fetched: the URL without its `#ref`. */
  url: string;
  /** A git branch or tag from the `#fragment`, Heroku-style. */
  ref: string | null;
  /** Safe to print: no user name or password. */
  display: string;
  /** A short name for build output, from the last path segment. */
  name: string;
  /** The cache folder name: a hash of URL and ref. */
  key: string;
}

const GIT_REF = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/;

/**
 * Whether a `.buildpacks` line is a URL, and which kind. Only https, http and git URLs are
 * fetched: `file:`, `ssh:` and scp-like `host:path` would reach the server's own files or keys.
 * Returns null for a line that is not a URL (a buildpack name). Pure.
 */
export function parseBuildpackUrl(line: string): BuildpackUrl | null {
  if (!line.includes('://')) return null;
  const refuse = (why: string) => new SlipwayError('E_BUILDPACK', `buildpack URL ${JSON.stringify(line.slice(0, 200))} ${why}`);
  if (/[\s\0-\x1f\x7f]/.test(line)) throw refuse('contains whitespace or control characters');
  let u: URL;
  try {
    u = new URL(line);
  } catch {
    throw refuse('is not a valid URL');
  }
  if (!['https:', 'http:', 'git:'].includes(u.protocol)) throw refuse(`uses the ${u.protocol.slice(0, 20)} scheme: only https, http and git URLs are fetched`);
  const fragment = decodeURIComponent(u.hash.slice(1));
  u.hash = '';
  const isTgz = /\.(tgz|tar\.gz)$/.test(u.pathname);
  if (isTgz && u.protocol === 'git:') throw refuse('names a tarball over git:; use https');
  let ref: string | null = null;
  if (fragment !== '') {
    if (isTgz) throw refuse('has a #fragment; a tarball URL names one version already');
    if (!GIT_REF.test(fragment) || fragment.includes('..')) throw refuse('has a #ref that is not a branch or tag name');
    ref = fragment;
  }
  const url = u.toString();
  const shown = new URL(url);
  shown.username = '';
  shown.password = '';
  const last = u.pathname.split('/').filter(Boolean).pop() ?? u.hostname;
  const name = last.replace(/\.(git|tgz|tar\.gz)$/, '').replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60) || 'buildpack';
  const key = crypto.createHash('sha256').update(`${url}#${ref ?? ''}`).digest('hex').slice(0, 16);
  return { kind: isTgz ? 'tgz' : 'git', url, ref, display: `${shown.toString()}${ref ? `#${ref}` : ''}`, name, key };
}

export interface FetchOptions {
  cacheDir: string;
  say: (line: string) => void;
  timeoutMs?: number;
  /** For tests: the git program. */
  git?: string;
}

/**
 * Returns the buildpack a URL names, from the cache when it was fetched before (so an airgapped
 * platform keeps building with what it has), else fetched now: `git clone --depth 1` or an https
 * tarball download, unpacked with the same rules as pushed trees.
 */
export async function fetchBuildpack(bp: BuildpackUrl, o: FetchOptions): Promise<BuildpackRef> {
  const target = path.join(o.cacheDir, bp.key);
  if (await fs.stat(path.join(target, 'bin')).then((s) => s.isDirectory(), () => false)) {
    o.say(`       ${bp.display} (cached)`);
    return { name: bp.name, dir: target };
  }
  await fs.mkdir(o.cacheDir, { recursive: true, mode: 0o700 });
  const work = await fs.mkdtemp(path.join(o.cacheDir, '.fetch-'));
  const timeoutMs = o.timeoutMs ?? 120_000;
  try {
    const raw = path.join(work, 'raw');
    o.say(`-----> Fetching buildpack ${bp.display}`);
    if (bp.kind === 'git') {
      // Only network transports, whatever git's defaults: no file://, ext:: or submodule tricks.
      const allow = ['-c', 'protocol.allow=never', '-c', 'protocol.https.allow=always', '-c', 'protocol.http.allow=always', '-c', 'protocol.git.allow=always'];
      const args = [...allow, 'clone', '--quiet', '--depth', '1', ...(bp.ref ? ['--branch', bp.ref] : []), '--', bp.url, raw];
      await runGit(o.git ?? 'git', args, timeoutMs, bp.display);
    } else {
      await fs.mkdir(raw);
      await extractTarball(await download(bp, timeoutMs), raw);
    }
    const staged = path.join(work, 'bp');
    await copyTree(await tarballRoot(raw), staged);
    await validateBuildpack(staged);
    await swapInto(staged, target, work);
    return { name: bp.name, dir: target };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function download(bp: BuildpackUrl, timeoutMs: number): Promise<Buffer> {
  const unreachable = (why: string) =>
    new SlipwayError('E_BUILDPACK', `cannot fetch buildpack ${bp.display}: ${why}; on an offline platform install it first with \`slipway buildpacks:install <tarball>\` and name it in .buildpacks`);
  let res: Response;
  try {
    res = await fetch(bp.url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (err) {
    throw unreachable((err as Error).message);
  }
  if (!res.ok || !res.body) throw unreachable(`HTTP ${res.status}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > MAX_BUILDPACK_BYTES) throw new SlipwayError('E_TOO_LARGE', `buildpack ${bp.display} is larger than ${MAX_BUILDPACK_BYTES / 1024 / 1024} MiB`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function runGit(git: string, args: string[], timeoutMs: number, display: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // No prompts: a URL that wants credentials fails at once instead of hanging the push.
    const child = spawn(git, args, {
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', SSH_ASKPASS: '/bin/false' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new SlipwayError('E_BUILDPACK', `cannot run git: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = signal ? `timed out after ${Math.round(timeoutMs / 1000)} s` : (stderr.trim().split('\n').pop() ?? `exit status ${code}`);
      reject(
        new SlipwayError(
          'E_BUILDPACK',
          `cannot fetch buildpack ${display}: git clone failed (${why.replace(/https?:\/\/[^@\s/]*@/g, 'https://')}); on an offline platform install it first with \`slipway buildpacks:install <dir>\` and name it in .buildpacks`,
        ),
      );
    });
  });
}
