import crypto from 'node:crypto';
import fsCallback from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import tarFs from 'tar-fs';
import tar from 'tar-stream';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { openNoFollow, readOpened } from '../core/safe-read.js';
import { followToEnd } from './docker-progress.js';
import { engineInstance } from './instance-engine.js';
import { ownedBy } from './labels.js';

export const LAUNCHER_PATH = '/usr/local/bin/slipway-exec';

/**
 * The entrypoint of every release image. Sources `.profile.d` (Heroku convention: buildpacks
 * put PATH and similar setup there), then runs the Procfile command through bash so `$PORT`
 * and other variables expand. `exec` keeps the command as the process tini signals.
 */
export const LAUNCHER_SCRIPT = `#!/bin/bash
# slipway-exec: run a Procfile command inside a release image.
cd /app || exit 1
if [ -d /app/.profile.d ]; then
  for profile in /app/.profile.d/*.sh; do
    if [ -r "$profile" ]; then . "$profile"; fi
  done
  unset profile
fi
if [ "$#" -eq 0 ]; then exec bash; fi
exec bash -c "$1"
`;

/**
 * Top-level folders of a built app that get layers of their own (the buildpacks declare them,
 * docs/buildpacks.md "Built-in buildpacks"). `runtime` folders hold language runtimes (the Node.js binary alone is
 * 120 MB): they become a runtime image shared by every app of an instance with the same runtime,
 * keyed by content, `slipway-platform/runtime:<digest>-<instance>`. `dependency` folders hold
 * installed dependencies, unchanged by most pushes: an image of their own per app,
 * `slipway/<app>:deps-<digest>`, on top of the runtime image.
 */
export interface LayerDirs {
  runtime: readonly string[];
  dependency: readonly string[];
}
/**
 * The platform's own images live under `slipway-platform/`, a repository no app maps to (app
 * images are `slipway/<app>`), so no app name can reach, or destroy, them.
 */
export const PLATFORM_REPO_PREFIX = 'slipway-platform';
export const RUNTIME_REPO = `${PLATFORM_REPO_PREFIX}/runtime`;
export const BASE_REPO = `${PLATFORM_REPO_PREFIX}/base`;

/**
 * A runtime image's tag. Instances on one engine each keep their own tags (the layers are still
 * shared by the engine's build cache), so one instance's pruning never untags another's.
 */
export function runtimeImageRef(digest: string, instanceId: string | null): string {
  return `${RUNTIME_REPO}:${digest}${instanceId ? `-${instanceId}` : ''}`;
}

const checkImageRef = (ref: string): string => {
  if (!/^[a-z0-9][a-z0-9._/:@-]*$/.test(ref)) {
    throw new SlipwayError('E_DOCKER', `invalid image reference ${JSON.stringify(ref)}`);
  }
  return ref;
};

/** Clears the setuid and setgid bits of every file on the image's own filesystem. */
export const STRIP_SETUID = 'find / -xdev -type f -perm /6000 -exec chmod ug-s {} +';

/**
 * What every release runs on: the stack, the launcher and the process settings. Built once per
 * stack and launcher, so a release build is a single COPY (the classic builder commits a layer
 * for each instruction, metadata ones included).
 */
export function launchBaseDockerfile(stackImage: string): string {
  return [
    `FROM ${checkImageRef(stackImage)}`,
    `COPY slipway-exec ${LAUNCHER_PATH}`,
    // No setuid/setgid programs (su, passwd, mount, ...) in what apps run: together with
    // no-new-privileges (runtime/isolation.ts) nothing in the container can become root.
    `RUN ${STRIP_SETUID}`,
    'WORKDIR /app',
    'ENV HOME=/app',
    'USER 1000:1000',
    `ENTRYPOINT ["${LAUNCHER_PATH}"]`,
    '',
  ].join('\n');
}

export function launchBaseRef(stackImage: string): string {
  const digest = crypto.createHash('sha256').update(launchBaseDockerfile(stackImage)).update(LAUNCHER_SCRIPT).digest('hex').slice(0, 12);
  return `${BASE_REPO}:${digest}`;
}

export function releaseImageRef(app: string, version: number): string {
  if (!isValidAppName(app)) throw new SlipwayError('E_APP_NAME', `invalid app name ${JSON.stringify(app)}`);
  if (!Number.isSafeInteger(version) || version < 1) throw new SlipwayError('E_RELEASE', `invalid release version ${version}`);
  return `slipway/${app}:v${version}`;
}

/**
 * The build context: the app dir under `app/` (modes kept, symlinks kept as symlinks, never
 * followed out of the tree), then the Dockerfile and the launcher. `.git` stays out: it is
 * history, not the app, and would bust the layer cache on every push.
 */
export function buildContext(appDir: string, dockerfile: string, include: (topLevel: string) => boolean = () => true): Readable {
  return packApp(appDir, include, {
    addFiles: (p) => {
      p.entry({ name: 'Dockerfile', mode: 0o644 }, dockerfile);
      p.entry({ name: 'slipway-exec', mode: 0o755 }, LAUNCHER_SCRIPT);
    },
  });
}

/**
 * What `COPY --chown=1000:1000 app/ /app/` wrote, to unpack at `/`: the app dir's entries under
 * `app/`, owned by uid and gid 1000. `/app` itself is left out, as COPY leaves an existing
 * destination folder alone (it stays root's, made by the launch base's WORKDIR).
 */
export async function appLayerTar(appDir: string, include: (topLevel: string) => boolean): Promise<Readable> {
  const entries = (await fs.readdir(appDir)).filter((name) => name !== '.git' && include(name));
  return packApp(appDir, include, { entries, own: (header) => Object.assign(header, { uid: 1000, gid: 1000 }) });
}

function packApp(
  appDir: string,
  include: (topLevel: string) => boolean,
  o: { addFiles?: (p: tar.Pack) => void; own?: (header: tarFs.Headers) => tarFs.Headers; entries?: string[]; pack?: tar.Pack },
): Readable {
  const own = o.own ?? ((h: tarFs.Headers) => h);
  const options: tarFs.PackOptions & { sort: boolean; fs: typeof fsCallback } = {
    pack: o.pack ?? tar.pack(),
    // The tree was written by the build (uid 1000): files are opened with O_NOFOLLOW, so a link
    // swapped in after tar-fs lstat'ed it fails the build instead of packing a host file.
    fs: noFollowFs,
    dereference: false,
    // Sockets, fifos and devices are not app content: skip them rather than fail the build.
    strict: false,
    // A stable order keeps the context, and so the layer cache, stable across pushes.
    sort: true,
    finalize: false,
    // Top-level entries only when given: the app dir itself is then not one of them.
    ...(o.entries ? { entries: o.entries } : {}),
    ignore: (name) => {
      const top = path.relative(appDir, name).split(path.sep)[0]!;
      return top === '.git' || (top !== '' && !include(top));
    },
    map: (header) => {
      header.name = header.name === '.' ? 'app/' : `app/${header.name}`;
      return own(header);
    },
    finish: (p) => {
      o.addFiles?.(p);
      p.finalize();
    },
  };
  return tarFs.pack(appDir, options) as unknown as Readable;
}



/** node:fs for tar-fs, but files are read with O_NOFOLLOW|O_NONBLOCK (core/safe-read.ts). */
const noFollowFs = {
  ...fsCallback,
  createReadStream: (file: string, o: { start?: number; end?: number } = {}) =>
    // Node's fs.open takes numeric flags; the typings only list strings.
    fsCallback.createReadStream(file, { ...o, flags: (fsCallback.constants.O_RDONLY | fsCallback.constants.O_NOFOLLOW | fsCallback.constants.O_NONBLOCK) as unknown as string }),
} as unknown as typeof fsCallback;

/** Files up to this size are hashed by content; larger ones (runtimes, native binaries) by size and mtime. */
const CONTENT_HASH_LIMIT = 1024 * 1024;

/**
 * A digest of some top-level folders (paths, modes, link targets, and the bytes of every file up
 * to 1 MiB) on a given base image, so the same content maps to the same image. Large files count
 * by size and mtime, like rsync's quick check: hashing the 120 MB Node binary on every push would
 * cost seconds, and any version change also changes a small file beside it (package.json,
 * node_version.h). Null when none of the folders is there.
 */
export async function folderDigest(appDir: string, dirs: readonly string[], base: string): Promise<string | null> {
  const present: string[] = [];
  for (const dir of dirs) {
    const stat = await fs.lstat(path.join(appDir, dir)).catch(() => null);
    if (stat?.isDirectory()) present.push(dir);
  }
  if (present.length === 0) return null;
  const hash = crypto.createHash('sha256').update(`${base}\n`);
  const walk = async (rel: string): Promise<void> => {
    const entries = (await fs.readdir(path.join(appDir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const child = path.join(rel, e.name);
      const full = path.join(appDir, child);
      const stat = await fs.lstat(full);
      hash.update(`${child}\0${stat.mode}\0${stat.size}\0`);
      if (e.isDirectory()) await walk(child);
      else if (e.isSymbolicLink()) hash.update(await fs.readlink(full));
      else if (e.isFile() && stat.size > CONTENT_HASH_LIMIT) hash.update(`mtime ${stat.mtimeMs}`);
      else if (e.isFile()) hash.update(await readNoFollow(full, child, stat.size));
    }
  };
  for (const dir of present) await walk(dir);
  return hash.digest('hex').slice(0, 16);
}

/** A file of the built tree the walk above lstat'ed as regular: opened without following a link. */
async function readNoFollow(full: string, rel: string, size: number): Promise<Buffer> {
  const file = await openNoFollow(full).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ELOOP') throw new SlipwayError('E_UNSAFE_FILE', `${rel} is a symlink; builds may not link files out of the app: replace it with a regular file`);
    throw err;
  });
  try {
    return await readOpened(file, rel, size);
  } finally {
    await file.close();
  }
}

async function imageExists(docker: Dockerode, ref: string): Promise<boolean> {
  return docker
    .getImage(ref)
    .inspect()
    .then(() => true)
    .catch(() => false);
}

async function build(docker: Dockerode, context: Readable, tag: string, labels: Record<string, string>, onProgress: (line: string) => void): Promise<void> {
  // The launch base has a RUN step; nothing here needs the network.
  const stream = await docker.buildImage(context, { t: tag, labels, rm: true, forcerm: true, pull: false, networkmode: 'none' } as Dockerode.ImageBuildOptions);
  await followToEnd(docker, stream, (entry) => {
    for (const line of (entry.stream ?? '').split('\n')) {
      if (line.trim()) onProgress(line.trimEnd());
    }
  });
}

/**
 * Bakes `slipway/<app>:v<N>` in up to three steps, each reused while its content is unchanged:
 * the runtime image (`slipway-platform/runtime:<digest>-<instance>`, shared by apps), the app's dependency image
 * (`slipway/<app>:deps-<digest>`), and on top the app's own files. A code-only deploy sends
 * megabytes of code; a new app on a known runtime skips the runtime's 120 MB.
 */
export async function buildReleaseImage(o: {
  docker: Dockerode;
  stackImage: string;
  appDir: string;
  app: string;
  version: number;
  labels: Record<string, string>;
  /** The folders layered apart from the app's own files. */
  layers: LayerDirs;
  /**
   * Read-only host folders the build had mounted (runtimes unpacked once per version,
   * buildpacks/runtimes.ts): the runtime layer holds them at the same `imagePath`, owned by root,
   * so the links the build made to them resolve in the release too.
   */
  mounted?: readonly MountedDir[];
  /**
   * The shared image of the mounted folders on the launch base (ensurePreparedRuntime), when the
   * caller prepares it itself (hooks/runtime-prep.ts shares one in-flight preparation between
   * pushes and the preparation at daemon start); else it is made here when missing.
   */
  preparedRuntime?: () => Promise<string>;
  /** Docker's build output, line by line. */
  onProgress: (line: string) => void;
  /** What a pusher wants to see: whether the runtime and dependency layers were reused. */
  onStep?: (line: string) => void;
}): Promise<string> {
  const ref = releaseImageRef(o.app, o.version);
  const step = o.onStep ?? o.onProgress;
  const layered = new Set<string>([...o.layers.runtime, ...o.layers.dependency]);
  let base = await ensureLaunchBase(o.docker, o.stackImage, o.onProgress, step);
  const mounted = [...(o.mounted ?? [])].sort((a, b) => (a.imagePath < b.imagePath ? -1 : 1));
  const layer = async (what: string, dirs: readonly string[], tagFor: (digest: string) => string, labels: (digest: string) => Record<string, string>, withMounted = false) => {
    // A mounted folder is immutable under its path (a new version is a new path): its path stands for its content.
    const keyed = withMounted && mounted.length > 0 ? `${base}\n${mounted.map((m) => m.imagePath).join('\n')}` : base;
    const digest = (await folderDigest(o.appDir, dirs, keyed)) ?? (keyed === base ? null : crypto.createHash('sha256').update(keyed).digest('hex').slice(0, 16));
    if (digest === null) return;
    const tag = tagFor(digest);
    if (await imageExists(o.docker, tag)) {
      step(`${what} layer unchanged: reusing ${tag}`);
    } else {
      // Written and committed like the app's own files, not built: a `docker build` of the COPY
      // cost seconds more on a first deploy (issue 15). With mounted runtimes it goes on their one
      // shared image, usually prepared before the first push that needs them
      // (hooks/runtime-prep.ts): this app's runtime folders (links into them) on top.
      const on = keyed === base ? base : await (o.preparedRuntime?.() ?? ensurePreparedRuntime({ docker: o.docker, stackImage: o.stackImage, mounted, onProgress: o.onProgress }));
      const l = labels(digest);
      step(`${what} layer changed: writing ${tag}${on === base ? '' : ` on ${on}`}`);
      await commitLayer(o.docker, { base: on, ref: tag, labels: l, archives: [() => appLayerTar(o.appDir, (top) => dirs.includes(top))], hideFromApp: 'slipway.app' in l });
    }
    base = tag;
  };
  await layer('runtime', o.layers.runtime, (d) => runtimeImageRef(d, engineInstance(o.docker)), (d) => ({ 'slipway.runtime': d }), true);
  await layer('dependency', o.layers.dependency, (d) => `slipway/${o.app}:deps-${d}`, (d) => ({ 'slipway.app': o.app, 'slipway.deps': d }));
  const labels = { ...o.labels, 'slipway.app': o.app, 'slipway.release': String(o.version) };
  await commitLayer(o.docker, { base, ref, labels, archives: [() => appLayerTar(o.appDir, (top) => !layered.has(top))] });
  return ref;
}

/** A read-only host folder the release image carries at `imagePath` (absolute). */
export interface MountedDir {
  hostDir: string;
  imagePath: string;
}

const IMAGE_PATH = /^\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

const checkImagePath = (p: string): string => {
  if (!IMAGE_PATH.test(p) || p.split('/').includes('..')) throw new SlipwayError('E_INTERNAL', `invalid image path ${JSON.stringify(p)}`);
  return p;
};

/**
 * The tag of the shared image holding the mounted folders (unpacked runtimes) on the launch base
 * and nothing else: what preparing a runtime makes ahead of the first push that needs it. A
 * mounted folder is immutable under its path (a new version is a new path), so the paths stand
 * for the content. Per instance, like runtime images. Pure.
 */
export function preparedRuntimeRef(stackImage: string, mounted: readonly MountedDir[], instanceId: string | null): string {
  const paths = mounted.map((m) => checkImagePath(m.imagePath)).sort();
  const digest = crypto.createHash('sha256').update(`prepared\n${launchBaseRef(stackImage)}\n${paths.join('\n')}`).digest('hex').slice(0, 16);
  return `${RUNTIME_REPO}:prepared-${digest}${instanceId ? `-${instanceId}` : ''}`;
}

/** The build context of the launch base: its Dockerfile and the launcher, nothing of an app. */
function launchBaseContext(stackImage: string): Readable {
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile', mode: 0o644 }, launchBaseDockerfile(stackImage));
  pack.entry({ name: 'slipway-exec', mode: 0o755 }, LAUNCHER_SCRIPT);
  pack.finalize();
  return pack as unknown as Readable;
}

/** The launch base of a stack, built once (it has a RUN step, so `docker build`). */
export async function ensureLaunchBase(docker: Dockerode, stackImage: string, onProgress: (line: string) => void, step: (line: string) => void = onProgress): Promise<string> {
  const base = launchBaseRef(stackImage);
  if (!(await imageExists(docker, base))) {
    step(`building the launch base ${base}`);
    await build(docker, launchBaseContext(stackImage), base, { 'slipway.base': base.split(':')[1]! }, onProgress);
  }
  return base;
}

/**
 * The mounted folders as one tar stream to unpack at `/`: each at its `imagePath`, owned by root,
 * without write bits (everyone reads a runtime, nobody changes it), parents made 0755, as `COPY`
 * made them.
 */
export function mountedTar(mounted: readonly MountedDir[]): Readable {
  const sorted = [...mounted].sort((a, b) => (a.imagePath < b.imagePath ? -1 : 1));
  const pack = tar.pack();
  const parents = new Set<string>();
  for (const m of sorted) {
    const parts = checkImagePath(m.imagePath).split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  for (const dir of [...parents].sort()) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  const next = (i: number): void => {
    if (i === sorted.length) {
      pack.finalize();
      return;
    }
    const rel = sorted[i]!.imagePath.slice(1);
    const options: tarFs.PackOptions & { sort: boolean } = {
      pack,
      dereference: false,
      sort: true,
      finalize: false,
      finish: () => next(i + 1),
      map: (header) =>
        Object.assign(header, {
          name: header.name === '.' ? `${rel}/` : `${rel}/${header.name}`,
          mode: header.type === 'directory' ? 0o755 : header.type === 'file' ? ((header.mode ?? 0) & 0o111 ? 0o555 : 0o444) : header.mode,
          uid: 0,
          gid: 0,
        }),
    };
    tarFs.pack(sorted[i]!.hostDir, options);
  };
  next(0);
  return pack as unknown as Readable;
}

/** The shared image of some mounted folders when it exists already, else null. */
export async function existingPreparedRuntime(docker: Dockerode, stackImage: string, mounted: readonly MountedDir[]): Promise<string | null> {
  const ref = preparedRuntimeRef(stackImage, mounted, engineInstance(docker));
  return (await imageExists(docker, ref)) ? ref : null;
}

/**
 * The shared image of some mounted folders (preparedRuntimeRef), made when missing: a container of
 * the launch base, the folders written in as one tar stream, committed. Measured against
 * `docker build` with a COPY per folder for Node.js 24 and npm 11 (141 MB), alternating in one run:
 * 6.9-11.0 s against 12.5-18.8 s in five rounds over two runs of bench/runtime-image.mjs.
 */
export async function ensurePreparedRuntime(o: { docker: Dockerode; stackImage: string; mounted: readonly MountedDir[]; onProgress: (line: string) => void }): Promise<string> {
  const ref = preparedRuntimeRef(o.stackImage, o.mounted, engineInstance(o.docker));
  if (await imageExists(o.docker, ref)) return ref;
  const base = await ensureLaunchBase(o.docker, o.stackImage, o.onProgress);
  const digest = ref.slice(ref.indexOf(':prepared-') + ':prepared-'.length).slice(0, 16);
  // Images built on it inherit both labels: `slipway prune` keeps what some image is built on,
  // and the unpacked runtime folders such images were made from (README "Cleaning up").
  const labels = { [PREPARED_LABEL]: digest, [RUNTIME_KEYS_LABEL]: o.mounted.map((m) => path.posix.basename(m.imagePath)).sort().join(',') };
  await commitLayer(o.docker, { base, ref, labels, archives: [async () => mountedTar(o.mounted)], hideFromApp: false });
  return ref;
}

/** On a prepared runtime image, and inherited by every image built on it: its digest (preparedRuntimeRef). */
export const PREPARED_LABEL = 'slipway.runtime-prepared';
/** On a prepared runtime image, and inherited: the unpacked runtime folders it holds (buildpacks/runtimes.ts keys), comma-separated. */
export const RUNTIME_KEYS_LABEL = 'slipway.runtime-keys';

/** Label keys and values a LABEL instruction carries as they are: no quoting or `$` expansion to get wrong. */
const PLAIN_LABEL_KEY = /^[a-z0-9][a-z0-9._-]*$/;
const PLAIN_LABEL_VALUE = /^[A-Za-z0-9._:/@+=,-]*$/;

/** The LABEL instruction of a commit's changes. Throws on anything that would need quoting. Pure. */
export function labelChange(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => {
    if (!PLAIN_LABEL_KEY.test(k) || !PLAIN_LABEL_VALUE.test(v)) throw new SlipwayError('E_DOCKER', `image label ${JSON.stringify(k)}=${JSON.stringify(v)} has characters a release image label may not carry`);
    return `"${k}"="${v}"`;
  });
  return `LABEL ${pairs.join(' ')}`;
}

/**
 * One layer on `base`, without `docker build` (issue 15: the build of the app's COPY was the
 * slowest step of a warm push): a container of `base` is created, never started, the archives
 * are written into it in order as tar streams (the app's files owned by uid 1000, what `COPY
 * --chown=1000:1000` did), and it is committed with the labels. The image keeps the
 * base's USER, WORKDIR, ENTRYPOINT and ENV: the container sets none of its own. `slipway.app` is
 * blanked on the container while it exists so nothing that lists the app's processes sees it;
 * the commit sets it back.
 */
async function commitLayer(
  docker: Dockerode,
  o: { base: string; ref: string; labels: Record<string, string>; archives: readonly (() => Promise<Readable>)[]; hideFromApp?: boolean },
): Promise<void> {
  const change = labelChange(o.labels);
  const [repo, tag] = [o.ref.slice(0, o.ref.lastIndexOf(':')), o.ref.slice(o.ref.lastIndexOf(':') + 1)];
  // Shared images (runtimes) are no app's: they get no `slipway.app` label at all.
  // Named so a daemon killed mid-commit can find it again (removeLeftoverLayerContainers): a name,
  // unlike a label, does not pass into the committed image and the containers run from it.
  const container = await docker.createContainer({
    name: layerContainerName(engineInstance(docker)),
    Image: o.base,
    Labels: o.hideFromApp === false ? {} : { 'slipway.app': '' },
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    for (const archive of o.archives) await container.putArchive(await archive(), { path: '/' });
    await container.commit({ repo, tag, changes: change, pause: false });
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `writing the layer ${o.ref} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/**
 * The name of a commitLayer container: `_` is in no app name, so it is never an app's
 * `<app>.<type>.<n>`, and the instance id says whose it is.
 */
function layerContainerName(instanceId: string | null): string {
  return `${LAYER_CONTAINER_PREFIX}${instanceId ?? 'none'}.${crypto.randomBytes(6).toString('hex')}`;
}
const LAYER_CONTAINER_PREFIX = 'slipway_layer.';

/**
 * Whether a listed container is a commitLayer container of `instanceId`: it carries the
 * instance's label, was never started, and its name says so, or (made before commit containers
 * were named) its `slipway.app` label is blank, which only commitLayer sets. Pure.
 */
export function isLayerContainer(c: Pick<Dockerode.ContainerInfo, 'Names' | 'Labels' | 'State'>, instanceId: string): boolean {
  const prefix = `/${LAYER_CONTAINER_PREFIX}${instanceId}.`;
  const named = (c.Names ?? []).some((n) => n.startsWith(prefix));
  return c.State === 'created' && ownedBy(c.Labels, instanceId) && (named || c.Labels?.['slipway.app'] === '');
}

/**
 * Removes the commitLayer containers of this instance that nothing is committing any more: a
 * daemon killed mid-commit leaves one behind. Only on an instance-scoped engine (nothing else
 * proves whose a container is), and only while nothing of this instance commits: at daemon
 * start, or under `slipway prune`'s hold on builds. Resolves to the names removed.
 */
export async function removeLeftoverLayerContainers(docker: Dockerode): Promise<string[]> {
  const instance = engineInstance(docker);
  if (instance === null) return [];
  const listed = await docker.listContainers({ all: true, filters: { status: ['created'] } });
  const removed: string[] = [];
  for (const c of listed.filter((x) => isLayerContainer(x, instance))) {
    const gone = await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .then(
        () => true,
        (err: { statusCode?: number }) => {
          if (err.statusCode === 404) return false;
          throw err;
        },
      );
    if (gone) removed.push(c.Names[0]?.slice(1) ?? c.Id.slice(0, 12));
  }
  return removed;
}

/**
 * Untags this instance's runtime images no other image is built on. Images built on one inherit
 * its `slipway.runtime` label, so a runtime image alone under its label serves nobody. Only tags
 * of this instance are touched (a scoped engine lists only its own images; the tag suffix says
 * the same).
 */
export async function removeUnusedRuntimeImages(docker: Dockerode): Promise<string[]> {
  const instance = engineInstance(docker);
  const runtimes = await docker.listImages({ filters: { reference: [RUNTIME_REPO] } });
  const removed: string[] = [];
  for (const image of runtimes) {
    const digest = image.Labels?.['slipway.runtime'];
    if (!digest) continue;
    const users = await docker.listImages({ filters: { label: [`slipway.runtime=${digest}`] } });
    if (users.some((u) => u.Id !== image.Id)) continue;
    const mine = (image.RepoTags ?? []).filter((t) => t.startsWith(`${RUNTIME_REPO}:`) && (instance === null || t.endsWith(`-${instance}`)));
    for (const tag of mine) {
      if (await docker.getImage(tag).remove().then(() => true, () => false)) removed.push(tag);
    }
  }
  return removed;
}

/** What unusedPreparedImages looks at of a listed image. */
export type ListedImage = Pick<Dockerode.ImageInfo, 'Id' | 'RepoTags' | 'Labels'>;

/**
 * The tags of this instance's prepared runtime images (preparedRuntimeRef) that no other listed
 * image is built on (those inherit PREPARED_LABEL) and that are not in `keep`. `images` must be
 * every image of the instance: one missing from it could be a user. Pure.
 */
export function unusedPreparedImages(images: readonly ListedImage[], o: { instanceId: string; keep: ReadonlySet<string> }): string[] {
  const prepared = new RegExp(`^${RUNTIME_REPO}:prepared-([0-9a-f]{16})-${o.instanceId}$`);
  const unused: string[] = [];
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      const digest = prepared.exec(tag)?.[1];
      if (digest === undefined || o.keep.has(tag) || image.Labels?.[PREPARED_LABEL] !== digest) continue;
      if (!images.some((u) => u.Id !== image.Id && u.Labels?.[PREPARED_LABEL] === digest)) unused.push(tag);
    }
  }
  return unused.sort();
}

/**
 * Removes every `slipway/<app>:*` tag (and so the images no other tag keeps). The runtime images
 * it leaves unused are removeUnusedRuntimeImages's: a runtime image another app's build has just
 * committed has no user yet, so a daemon removes them only while no build runs.
 */
export async function removeAppImages(docker: Dockerode, app: string): Promise<void> {
  const prefix = `slipway/${app}:`;
  const images = await docker.listImages({ filters: { reference: [`slipway/${app}`] } });
  const tags = images.flatMap((i) => i.RepoTags ?? []).filter((t) => t.startsWith(prefix));
  for (const tag of tags) {
    try {
      await docker.getImage(tag).remove();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) {
        throw new SlipwayError('E_DOCKER', `removing image ${tag} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }
  // Images that lost their tag (a failed deploy's image replaced by a later build of the same
  // version) still carry the app's label: they go too.
  const untagged = await docker.listImages({ filters: { label: [`slipway.app=${app}`], dangling: ['true'] } });
  for (const image of untagged) await docker.getImage(image.Id).remove().catch(() => undefined);
}
