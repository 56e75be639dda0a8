import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { aptInstall, findProgram, type Progress } from './host-setup.js';
import { followToEnd } from './docker-progress.js';

/** Under the platform's own namespace (runtime/images.ts): no app image is `slipway-platform/*`. */
export const STACK_REPO = 'slipway-platform/stack';
/** Where Slipway kept the stack before; an app named `stack` shared that repository. */
const LEGACY_STACK_REPO = 'slipway/stack';
export const STACK_LABEL = 'slipway.stack';

/** Everything that decides an mmdebstrap-built image's content; its hash names the image. */
export interface DebianRecipe {
  suite: string;
  variant: 'minbase';
  packages: string[];
  /** mmdebstrap --essential-hook scripts: after the essential packages, before `packages`. */
  essentialHooks?: string[];
  /** mmdebstrap --customize-hook scripts, run by mmdebstrap with the chroot as "$1". */
  customizeHooks: string[];
  /** Image config applied at import (`docker import --change`). */
  changes: string[];
}

export interface StackRecipe extends DebianRecipe {
  user: { name: 'slipway'; uid: 1000; gid: 1000; home: '/home/slipway' };
}

/** Debian's codename from /etc/os-release text, or null. */
export function parseOsCodename(osRelease: string): string | null {
  const m = /^VERSION_CODENAME=["']?([a-z0-9]+)["']?\s*$/m.exec(osRelease);
  return m?.[1] ?? null;
}

export function hostSuite(): string {
  try {
    const codename = parseOsCodename(fs.readFileSync('/etc/os-release', 'utf8'));
    if (codename) return codename;
  } catch {
    // fall through
  }
  // The platform targets Debian 12; a host without a codename gets that stack.
  return 'bookworm';
}

const USER = { name: 'slipway', uid: 1000, gid: 1000, home: '/home/slipway' } as const;

/**
 * Everything that decides the stack's content. Its hash names the image, so any change here
 * (a package, the suite, a hook's text) yields a new tag and a rebuild, never a stale image.
 */
export const STACK_RECIPE: StackRecipe = {
  suite: hostSuite(),
  variant: 'minbase',
  packages: ['python3', 'python3-venv', 'python3-pip', 'ca-certificates', 'tar', 'gzip', 'xz-utils', 'git', 'procps', 'bash'],
  user: USER,
  customizeHooks: [
    `chroot "$1" groupadd --gid ${USER.gid} ${USER.name}`,
    `chroot "$1" useradd --uid ${USER.uid} --gid ${USER.gid} --create-home --home-dir ${USER.home} --shell /bin/bash ${USER.name}`,
    // Package indexes are dead weight in an image that never runs apt.
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
  ],
  changes: ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'ENV LANG=C.UTF-8', 'CMD ["/bin/bash"]'],
};

export function stackHash(recipe: DebianRecipe = STACK_RECIPE): string {
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 12);
}

export function stackImageRef(recipe: StackRecipe = STACK_RECIPE): string {
  return `${STACK_REPO}:${stackHash(recipe)}`;
}

export async function imageId(docker: Dockerode, ref: string): Promise<string | null> {
  try {
    return (await docker.getImage(ref).inspect()).Id;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/** Returns the stack image's ref, building it first when absent (or when `force`). */
export async function ensureStackImage(
  docker: Dockerode,
  o: { progress: Progress; force?: boolean; logger: Logger; /** Room for the ~300 MB root fs tar; default os.tmpdir(). */ tmpDir?: string },
): Promise<string> {
  const ref = stackImageRef();
  if (!o.force && (await imageId(docker, ref)) === null) await adoptLegacyStack(docker, o.progress);
  const previous = await imageId(docker, ref);
  if (!o.force && previous !== null) return ref;

  await buildRecipeImage(docker, { recipe: STACK_RECIPE, repo: STACK_REPO, tag: stackHash(), label: STACK_LABEL, what: 'stack image', previous }, o);
  o.progress(`-----> Stack image ${ref} ready`);
  return ref;
}

/** What names and labels an image built from a recipe. */
export interface RecipeImage {
  recipe: DebianRecipe;
  repo: string;
  tag: string;
  /** Set to the tag on the image, so an imported archive proves what it holds. */
  label: string;
  /** For progress lines: `stack image`, `postgres image`. */
  what: string;
  /** The image the tag named before a forced rebuild, removed once replaced. */
  previous?: string | null;
}

/**
 * Builds `repo:tag` from Debian packages: mmdebstrap from this machine's apt sources into a root
 * file system tarball, imported into Docker with the recipe's image config. Nothing is pulled
 * from a registry (README, "Offline builds").
 */
export async function buildRecipeImage(
  docker: Dockerode,
  image: RecipeImage,
  o: { progress: Progress; logger: Logger; tmpDir?: string },
): Promise<void> {
  const { recipe } = image;
  const ref = `${image.repo}:${image.tag}`;
  if (!(await findProgram('mmdebstrap'))) {
    o.progress('-----> Installing mmdebstrap');
    await aptInstall(['mmdebstrap'], o.logger, 'E_STACK');
  }
  const started = Date.now();
  const tmpRoot = o.tmpDir ?? os.tmpdir();
  await fsp.mkdir(tmpRoot, { recursive: true });
  const dir = await fsp.mkdtemp(path.join(tmpRoot, 'slipway-stack-'));
  try {
    const tarball = path.join(dir, 'rootfs.tar');
    o.progress(`-----> Building ${image.what} (mmdebstrap ${recipe.suite}, ${recipe.variant}); this takes a minute or two`);
    await runMmdebstrap(recipe, tarball, await aptSourceFiles(), o);
    o.progress('-----> Importing the root file system into Docker');
    const stream = await docker.importImage(tarball, {
      repo: image.repo,
      tag: image.tag,
      changes: [...recipe.changes, `LABEL ${image.label}=${image.tag}`],
      message: `slipway ${image.what} (mmdebstrap)`,
    });
    await followToEnd(docker, stream, () => {}, 'E_STACK');
    const current = await imageId(docker, ref);
    if (current === null) throw new SlipwayError('E_STACK', `import finished but ${ref} is missing`);
    // A forced rebuild moves the tag; drop the image it left untagged unless release images
    // still build on it (the engine refuses then, which is what we want).
    if (image.previous && image.previous !== current) await docker.getImage(image.previous).remove().catch(() => {});
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
  o.logger.info({ ref, ms: Date.now() - started }, `${image.what} built`);
}

/**
 * An upgrade finds the same stack under its old name: tag it into the new repository rather than
 * rebuild it. Only an image carrying this recipe's stack label counts (an app's image never has
 * the hash tag and label together).
 */
async function adoptLegacyStack(docker: Dockerode, progress: Progress): Promise<void> {
  const hash = stackHash();
  const legacy = `${LEGACY_STACK_REPO}:${hash}`;
  const info = await docker
    .getImage(legacy)
    .inspect()
    .catch(() => null);
  if (info?.Config?.Labels?.[STACK_LABEL] !== hash) return;
  await docker.getImage(info.Id).tag({ repo: STACK_REPO, tag: hash });
  progress(`-----> Stack image ${legacy} is now ${STACK_REPO}:${hash}`);
}

/**
 * The machine's own enabled apt sources, passed to mmdebstrap as MIRROR arguments: it pastes
 * an existing file's content into the chroot, so the stack uses whatever mirror (or local
 * snapshot, or proxy) this host already trusts, and slipway never names one.
 */
export async function aptSourceFiles(root = '/etc/apt'): Promise<string[]> {
  const files: string[] = [];
  const main = path.join(root, 'sources.list');
  try {
    const text = await fsp.readFile(main, 'utf8');
    if (/^\s*deb(-src)?\s/m.test(text)) files.push(main);
  } catch {
    // no sources.list: deb822 files only
  }
  const dir = path.join(root, 'sources.list.d');
  let names: string[] = [];
  try {
    names = (await fsp.readdir(dir)).sort();
  } catch {
    // no sources.list.d
  }
  for (const name of names) {
    if (name.endsWith('.list') || name.endsWith('.sources')) files.push(path.join(dir, name));
  }
  if (files.length === 0) throw new SlipwayError('E_STACK', `no apt sources found under ${root}: configure apt before building the stack`);
  return files;
}

/** mmdebstrap's argv for a recipe; pure, so the exact command is testable. */
export function mmdebstrapArgs(recipe: DebianRecipe, tarball: string, sources: string[]): string[] {
  return [
    `--variant=${recipe.variant}`,
    `--include=${recipe.packages.join(',')}`,
    ...(recipe.essentialHooks ?? []).map((hook) => `--essential-hook=${hook}`),
    ...recipe.customizeHooks.map((hook) => `--customize-hook=${hook}`),
    '--format=tar',
    recipe.suite,
    tarball,
    ...sources,
  ];
}

async function runMmdebstrap(
  recipe: DebianRecipe,
  tarball: string,
  sources: string[],
  o: { progress: Progress; logger: Logger },
): Promise<void> {
  const child = spawn('mmdebstrap', mmdebstrapArgs(recipe, tarball, sources), { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const started = Date.now();
  let lastShown = started;
  let lastLine = '';
  // A line every few seconds shows life without flooding the terminal with apt output; when
  // mmdebstrap is quiet for long (installing packages inside the chroot), say how long so far.
  const show = (): void => {
    lastShown = Date.now();
    o.progress(`       ${lastLine.slice(0, 160)} (${Math.round((lastShown - started) / 1000)} s)`);
  };
  const onLine = (line: string): void => {
    o.logger.debug({ line }, 'mmdebstrap');
    if (!line.trim()) return;
    lastLine = line.trim();
    tail.push(lastLine);
    if (tail.length > 20) tail.shift();
    if (Date.now() - lastShown >= 5000) show();
  };
  readline.createInterface({ input: child.stdout }).on('line', onLine);
  readline.createInterface({ input: child.stderr }).on('line', onLine);
  const heartbeat = setInterval(() => {
    if (Date.now() - lastShown >= 10_000) show();
  }, 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c));
  }).finally(() => clearInterval(heartbeat));
  if (code !== 0) {
    throw new SlipwayError('E_STACK', `mmdebstrap failed (exit ${code}): ${tail.slice(-5).join(' / ')}`);
  }
}

/** `docker save` of the current stack image to `file`, atomically (temp file, then rename). */
export async function exportStack(docker: Dockerode, file: string, progress: Progress): Promise<void> {
  const ref = stackImageRef();
  if ((await imageId(docker, ref)) === null) {
    throw new SlipwayError('E_STACK', `stack image ${ref} is not present: build it with 'slipway stack:build' first`);
  }
  const target = path.resolve(file);
  const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  progress(`-----> Exporting ${ref} to ${target}`);
  try {
    const stream = await docker.getImage(ref).get();
    await pipeline(stream, fs.createWriteStream(temp, { mode: 0o644 }));
    const fd = await fsp.open(temp, 'r');
    await fd.sync();
    await fd.close();
    await fsp.rename(temp, target);
  } catch (err) {
    await fsp.rm(temp, { force: true });
    if (err instanceof SlipwayError) throw err;
    throw new SlipwayError('E_STACK', `exporting ${ref} to ${target} failed: ${(err as Error).message}`, { cause: err });
  }
  const { size } = await fsp.stat(target);
  progress(`-----> Wrote ${(size / 1024 / 1024).toFixed(1)} MB`);
}

interface SavedImage {
  tags: string[];
  labels: Record<string, string>;
}

/**
 * Reads what a `docker save` archive holds (tags and labels of each image) without loading it,
 * so a wrong file is refused before it touches the engine.
 */
export async function inspectSavedArchive(file: string): Promise<SavedImage[]> {
  const jsonFiles = new Map<string, string>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    // manifest.json and image configs sit at the top level; layers are skipped unread.
    const wanted = header.type === 'file' && !header.name.includes('/') && header.name.endsWith('.json') && (header.size ?? 0) < 4 * 1024 * 1024;
    if (!wanted) {
      stream.on('end', next).resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    stream.on('end', () => {
      jsonFiles.set(header.name, Buffer.concat(chunks).toString('utf8'));
      next();
    });
  });
  try {
    await pipeline(fs.createReadStream(file), extract);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SlipwayError('E_STACK', `no such file: ${file}`);
    throw new SlipwayError('E_STACK', `${file} is not a Docker image archive (docker save tar): ${(err as Error).message}`);
  }
  const manifest = jsonFiles.get('manifest.json');
  if (!manifest) throw new SlipwayError('E_STACK', `${file} is not a Docker image archive (no manifest.json)`);
  try {
    const entries = JSON.parse(manifest) as Array<{ Config: string; RepoTags: string[] | null }>;
    return entries.map((e) => {
      const config = JSON.parse(jsonFiles.get(e.Config) ?? '{}') as { config?: { Labels?: Record<string, string> | null } };
      return { tags: e.RepoTags ?? [], labels: config.config?.Labels ?? {} };
    });
  } catch (err) {
    throw new SlipwayError('E_STACK', `${file} has an unreadable manifest: ${(err as Error).message}`, { cause: err });
  }
}

/** `docker load` of a stack archive made by exportStack; refuses any other image. */
export async function importStack(docker: Dockerode, file: string, progress: Progress): Promise<string> {
  const ref = stackImageRef();
  const hash = stackHash();
  const images = await inspectSavedArchive(file);
  const match = images.find((i) => i.tags.includes(ref) && i.labels[STACK_LABEL] === hash);
  if (!match) {
    const held = images.flatMap((i) => i.tags).join(', ') || 'untagged images';
    throw new SlipwayError(
      'E_STACK',
      `${file} holds ${held}, but this slipway needs ${ref}: export the stack from a slipway of the same version`,
    );
  }
  progress(`-----> Loading ${ref} from ${file}`);
  const stream = await docker.loadImage(file, { quiet: true });
  await followToEnd(docker, stream, () => {}, 'E_STACK');
  const loaded = await docker.getImage(ref).inspect().catch(() => null);
  if (loaded?.Config?.Labels?.[STACK_LABEL] !== hash) {
    throw new SlipwayError('E_STACK', `loading ${file} did not produce ${ref} labelled ${STACK_LABEL}=${hash}`);
  }
  progress(`-----> Stack image ${ref} ready`);
  return ref;
}
