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

// Layers ordered from least to most often changing, so a warm deploy rebuilds only the app
// layer. Labels are passed to the build API rather than written here: they change every
// release and would otherwise need escaping.
export function releaseDockerfile(stackImage: string): string {
  if (!/^[a-z0-9][a-z0-9._/:@-]*$/.test(stackImage)) {
    throw new SlipwayError('E_DOCKER', `invalid stack image reference ${JSON.stringify(stackImage)}`);
  }
  return [
    `FROM ${stackImage}`,
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
export function buildContext(appDir: string, dockerfile: string): Readable {
  const options: tarFs.PackOptions & { sort: boolean } = {
    pack: tar.pack(),
    dereference: false,
    // Sockets, fifos and devices are not app content: skip them rather than fail the build.
    strict: false,
    // A stable order keeps the context, and so the layer cache, stable across pushes.
    sort: true,
    finalize: false,
    ignore: (name) => path.relative(appDir, name) === '.git',
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

export async function buildReleaseImage(o: {
  docker: Dockerode;
  stackImage: string;
  appDir: string;
  app: string;
  version: number;
  labels: Record<string, string>;
  onProgress: (line: string) => void;
}): Promise<string> {
  const ref = releaseImageRef(o.app, o.version);
  const labels = { ...o.labels, 'slipway.app': o.app, 'slipway.release': String(o.version) };
  const stream = await o.docker.buildImage(buildContext(o.appDir, releaseDockerfile(o.stackImage)), {
    t: ref,
    labels,
    rm: true,
    forcerm: true,
    pull: false,
  } as Dockerode.ImageBuildOptions);
  await followToEnd(o.docker, stream, (entry) => {
    for (const line of (entry.stream ?? '').split('\n')) {
      if (line.trim()) o.onProgress(line.trimEnd());
    }
  });
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
}
