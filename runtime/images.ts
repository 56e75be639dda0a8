import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import tarFs from 'tar-fs';
import tar from 'tar-stream';
import { isValidAppName } from '../platform/app-name.js';
import { SlipwayError } from '../platform/errors.js';
import { followToEnd } from './docker-progress.js';

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
 * Top-level folders where buildpacks put runtimes and installed dependencies: large (the Node.js
 * binary alone is 120 MB) and unchanged by most pushes. They go into a dependency image of their
 * own, keyed by their content, so a code-only push sends and stores only the code.
 */
export const DEPENDENCY_DIRS = ['.slipway', '.heroku', '.venv', 'node_modules', 'vendor'] as const;

const checkImageRef = (ref: string): string => {
  if (!/^[a-z0-9][a-z0-9._/:@-]*$/.test(ref)) {
    throw new SlipwayError('E_DOCKER', `invalid image reference ${JSON.stringify(ref)}`);
  }
  return ref;
};

// Labels are passed to the build API rather than written here: they change every release and
// would otherwise need escaping.
export function releaseDockerfile(baseImage: string): string {
  return [
    `FROM ${checkImageRef(baseImage)}`,
    `COPY slipway-exec ${LAUNCHER_PATH}`,
    'COPY --chown=1000:1000 app/ /app/',
    'WORKDIR /app',
    'ENV HOME=/app',
    'USER 1000:1000',
    `ENTRYPOINT ["${LAUNCHER_PATH}"]`,
    '',
  ].join('\n');
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
  const options: tarFs.PackOptions & { sort: boolean } = {
    pack: tar.pack(),
    dereference: false,
    // Sockets, fifos and devices are not app content: skip them rather than fail the build.
    strict: false,
    // A stable order keeps the context, and so the layer cache, stable across pushes.
    sort: true,
    finalize: false,
    ignore: (name) => {
      const top = path.relative(appDir, name).split(path.sep)[0]!;
      return top === '.git' || (top !== '' && !include(top));
    },
    map: (header) => {
      header.name = header.name === '.' ? 'app/' : `app/${header.name}`;
      return header;
    },
    finish: (p) => {
      p.entry({ name: 'Dockerfile', mode: 0o644 }, dockerfile);
      p.entry({ name: 'slipway-exec', mode: 0o755 }, LAUNCHER_SCRIPT);
      p.finalize();
    },
  };
  return tarFs.pack(appDir, options) as unknown as Readable;
}

const DEPENDENCY_DOCKERFILE = (stackImage: string): string =>
  [`FROM ${checkImageRef(stackImage)}`, 'COPY --chown=1000:1000 app/ /app/', ''].join('\n');

/** Files up to this size are hashed by content; larger ones (runtimes, native binaries) by size and mtime. */
const CONTENT_HASH_LIMIT = 1024 * 1024;

/**
 * A digest of the dependency folders (paths, modes, link targets, and the bytes of every file up
 * to 1 MiB), so the same dependencies map to the same image. Large files count by size and mtime,
 * like rsync's quick check: hashing the 120 MB Node binary on every push would cost seconds, and
 * any version change also changes a small file beside it (package.json, node_version.h).
 * Null when there are no dependency folders.
 */
export async function dependencyDigest(appDir: string, stackImage: string): Promise<string | null> {
  const present: string[] = [];
  for (const dir of DEPENDENCY_DIRS) {
    const stat = await fs.lstat(path.join(appDir, dir)).catch(() => null);
    if (stat?.isDirectory()) present.push(dir);
  }
  if (present.length === 0) return null;
  const hash = crypto.createHash('sha256').update(`${stackImage}\n`);
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
      else if (e.isFile()) hash.update(await fs.readFile(full));
    }
  };
  for (const dir of present) await walk(dir);
  return hash.digest('hex').slice(0, 16);
}

async function imageExists(docker: Dockerode, ref: string): Promise<boolean> {
  return docker
    .getImage(ref)
    .inspect()
    .then(() => true)
    .catch(() => false);
}

async function build(docker: Dockerode, context: Readable, tag: string, labels: Record<string, string>, onProgress: (line: string) => void): Promise<void> {
  const stream = await docker.buildImage(context, { t: tag, labels, rm: true, forcerm: true, pull: false } as Dockerode.ImageBuildOptions);
  await followToEnd(docker, stream, (entry) => {
    for (const line of (entry.stream ?? '').split('\n')) {
      if (line.trim()) onProgress(line.trimEnd());
    }
  });
}

/**
 * Bakes `slipway/<app>:v<N>` in two steps: a dependency image (`slipway/<app>:deps-<digest>`,
 * built only when the dependency folders changed) and, on top, the app's own files. A warm,
 * code-only deploy therefore sends megabytes of code instead of the runtime and node_modules.
 */
export async function buildReleaseImage(o: {
  docker: Dockerode;
  stackImage: string;
  appDir: string;
  app: string;
  version: number;
  labels: Record<string, string>;
  /** Docker's build output, line by line. */
  onProgress: (line: string) => void;
  /** What a pusher wants to see: whether the dependency layer was reused. */
  onStep?: (line: string) => void;
}): Promise<string> {
  const ref = releaseImageRef(o.app, o.version);
  const step = o.onStep ?? o.onProgress;
  const isDependency = (top: string) => (DEPENDENCY_DIRS as readonly string[]).includes(top);
  let base = o.stackImage;
  const digest = await dependencyDigest(o.appDir, o.stackImage);
  if (digest !== null) {
    base = `slipway/${o.app}:deps-${digest}`;
    if (!(await imageExists(o.docker, base))) {
      step(`dependency layer changed: building ${base}`);
      await build(o.docker, buildContext(o.appDir, DEPENDENCY_DOCKERFILE(o.stackImage), isDependency), base, { 'slipway.app': o.app, 'slipway.deps': digest }, o.onProgress);
    } else {
      step(`dependency layer unchanged: reusing ${base}`);
    }
  }
  const labels = { ...o.labels, 'slipway.app': o.app, 'slipway.release': String(o.version) };
  await build(o.docker, buildContext(o.appDir, releaseDockerfile(base), (top) => !isDependency(top)), ref, labels, o.onProgress);
  return ref;
}

/** Removes every `slipway/<app>:*` tag (and so the images no other tag keeps). */
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
