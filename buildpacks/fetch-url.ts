import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { copyTree, extractTarball, MAX_BUILDPACK_BYTES, swapInto, tarballRoot, validateBuildpack } from './plugins.js';
import type { BuildpackRef } from './runner.js';
import type { UrlGuard, VettedAddress } from './url-guard.js';

/** Redirects followed for a tarball download; each hop is vetted again (docs/security.md). */
export const MAX_REDIRECTS = 5;

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
  /** Vets every address a fetch connects to (loopback, private, the platform's own: refused). */
  guard: UrlGuard;
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
      const url = new URL(bp.url);
      const pinned = await o.guard.vet(url);
      const { args, cloneUrl } = gitCloneArgs(url, pinned);
      await runGit(o.git ?? 'git', [...args, 'clone', '--quiet', '--depth', '1', ...(bp.ref ? ['--branch', bp.ref] : []), '--', cloneUrl, raw], timeoutMs, bp.display);
    } else {
      await fs.mkdir(raw);
      await extractTarball(await download(bp, timeoutMs, o.guard), raw);
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

/**
 * The git options that make a clone go only where the guard said: the vetted address pinned for
 * http(s) (`http.curloptResolve`, so curl never resolves the name again), no redirects, no proxy
 * (a proxy would connect on our behalf to wherever it resolves; the environment drops proxies and
 * the host's git config, whose `insteadOf` could rewrite the URL after vetting), and only network transports
 * (no file://, ext:: or submodule tricks). git:// does not go through curl: its URL names the
 * vetted address itself. Pure.
 */
export function gitCloneArgs(url: URL, pinned: VettedAddress): { args: string[]; cloneUrl: string } {
  const args = ['-c', 'protocol.allow=never', '-c', 'protocol.https.allow=always', '-c', 'protocol.http.allow=always', '-c', 'protocol.git.allow=always'];
  args.push('-c', 'http.followRedirects=false', '-c', 'http.proxy=');
  const addr = pinned.family === 6 ? `[${pinned.address}]` : pinned.address;
  if (url.protocol === 'git:') {
    const direct = new URL(url.toString());
    direct.hostname = addr;
    return { args, cloneUrl: direct.toString() };
  }
  // An address literal needs no resolving (and would not parse as curl's host:port:addr).
  if (net.isIP(pinned.host) === 0) args.push('-c', `http.curloptResolve=${pinned.host}:${pinned.port}:${addr}`);
  return { args, cloneUrl: url.toString() };
}

/** A lookup that answers only with the vetted address, whatever name it is asked for. */
function pinnedLookup(pinned: VettedAddress): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  }) as unknown as LookupFunction;
}

/** One GET to the vetted address; resolves with the response (the caller reads or discards it). */
function getPinned(url: URL, pinned: VettedAddress, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    // agent: false: no pooled socket (from an earlier, differently vetted hop) is reused.
    const req = mod.get(url, { lookup: pinnedLookup(pinned), agent: false, signal, headers: { 'user-agent': 'slipway' } }, resolve);
    req.on('error', reject);
  });
}

async function download(bp: BuildpackUrl, timeoutMs: number, guard: UrlGuard): Promise<Buffer> {
  const unreachable = (why: string) =>
    new SlipwayError('E_BUILDPACK', `cannot fetch buildpack ${bp.display}: ${why}; on an offline platform install it first with \`slipway buildpacks:install <tarball>\` and name it in .buildpacks`);
  const signal = AbortSignal.timeout(timeoutMs);
  let url = new URL(bp.url);
  let res: http.IncomingMessage;
  for (let hop = 0; ; hop++) {
    // Vetting errors (a refused address) surface as they are: one line naming the host.
    const pinned = await guard.vet(url);
    try {
      res = await getPinned(url, pinned, signal);
    } catch (err) {
      throw unreachable((err as Error).message);
    }
    const status = res.statusCode ?? 0;
    if (status < 300 || status >= 400 || status === 304) break;
    res.resume();
    const location = res.headers.location;
    if (!location) throw unreachable(`HTTP ${status} without a Location`);
    if (hop >= MAX_REDIRECTS) throw unreachable(`more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      throw unreachable('a redirect to an invalid URL');
    }
    if (next.protocol !== 'https:' && next.protocol !== 'http:') throw unreachable(`a redirect to the ${next.protocol.slice(0, 20)} scheme`);
    if (url.protocol === 'https:' && next.protocol === 'http:') throw unreachable('a redirect from https to plain http');
    url = next;
  }
  if (res.statusCode !== 200) {
    res.resume();
    throw unreachable(`HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BUILDPACK_BYTES) {
        res.destroy();
        throw new SlipwayError('E_TOO_LARGE', `buildpack ${bp.display} is larger than ${MAX_BUILDPACK_BYTES / 1024 / 1024} MiB`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    throw unreachable((err as Error).message);
  }
  return Buffer.concat(chunks);
}

function runGit(git: string, args: string[], timeoutMs: number, display: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // No prompts: a URL that wants credentials fails at once instead of hanging the push.
    const child = spawn(git, args, {
      env: { ...withoutProxies(process.env), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', SSH_ASKPASS: '/bin/false' },
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

/** The environment minus proxy settings: curl would hand the connection to a proxy, which resolves the name itself. */
function withoutProxies(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of Object.keys(out)) {
    if (/^(https?|all|ftp|no)_proxy$/i.test(k) || k === 'GIT_PROXY_COMMAND') delete out[k];
  }
  return out;
}
