import crypto from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import tarFs from 'tar-fs';
import tar from 'tar-stream';
import { SlipwayError } from '../core/errors.js';
import { parseMemory } from '../core/units.js';
import { readFileUnder } from '../core/safe-read.js';
import { createBuildCgroup } from './build-cgroup.js';
import { followToEnd, type ProgressEntry } from './docker-progress.js';
import { checkDockerfile, checkLocalImages, type DockerfilePlan } from './dockerfile-check.js';
import { parseDockerfileText } from './dockerfile-parse.js';
import { releaseImageRef } from './images.js';

/**
 * Parses and checks a Dockerfile (dockerfile-parse.ts, dockerfile-check.ts) with the build args
 * the build will pass: only config vars the Dockerfile declares with ARG (FROM only ever reads
 * declared ones, so checking with every config var resolves the same images). Pure.
 */
export function planDockerfile(text: string, config: Record<string, string>): { plan: DockerfilePlan; buildArgs: Record<string, string> } {
  const plan = checkDockerfile(parseDockerfileText(text), config);
  return { plan, buildArgs: buildArgsFor(plan, config) };
}

/** The config vars handed to the build: only those the Dockerfile declares with ARG. Pure. */
export function buildArgsFor(info: { args: string[] }, config: Record<string, string>): Record<string, string> {
  return Object.fromEntries(info.args.filter((name) => name in config).map((name) => [name, config[name]!]));
}

/** Quotes argv words for /bin/sh, so the image's exec-form CMD runs as it would without us. Pure. */
export function shellJoin(words: string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The image's ENTRYPOINT and CMD as one shell command, or null when it has neither. Pure. */
export function imageCommand(config: { Entrypoint?: string[] | string | null; Cmd?: string[] | string | null }): string | null {
  const list = (v: string[] | string | null | undefined): string[] => (v === null || v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const words = [...list(config.Entrypoint), ...list(config.Cmd)];
  return words.length === 0 ? null : `exec ${shellJoin(words)}`;
}

/**
 * The entrypoint of a release image built from a Dockerfile: it runs the one command it is given
 * (a Procfile line, or the image's own ENTRYPOINT and CMD, quoted) through /bin/sh so `$PORT`
 * expands, in the image's WORKDIR and as its USER.
 */
export const DOCKER_LAUNCHER = `#!/bin/sh
# slipway-exec (Dockerfile apps): run one process command through sh.
if [ "$#" -eq 0 ]; then exec /bin/sh; fi
exec /bin/sh -c "$1"
`;

export const DOCKER_LAUNCHER_PATH = '/usr/local/bin/slipway-exec';

export interface DockerfileBuildOptions {
  docker: Dockerode;
  appDir: string;
  app: string;
  version: number;
  config: Record<string, string>;
  labels: Record<string, string>;
  timeoutSeconds: number;
  /** `buildMemory` (memory and memory+swap of every step) and `buildPidsLimit` of the config. */
  memory: string;
  pidsLimit: number;
  say: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Builds `slipway/<app>:v<N>` from the app's Dockerfile with the engine, offline
 * (`networkmode: none`, no pulls), then adds the launcher on top. Returns the image reference
 * and the command of the image's own ENTRYPOINT and CMD.
 */
export async function buildDockerfileImage(o: DockerfileBuildOptions): Promise<{ image: string; command: string | null }> {
  const ref = releaseImageRef(o.app, o.version);
  // Never through a link, only a regular file (core/safe-read.ts); the Dockerfile builder saw one.
  const text = (await readFileUnder(o.appDir, 'Dockerfile', { maxBytes: 1024 * 1024, what: 'Dockerfile' })) ?? '';
  const { plan, buildArgs } = planDockerfile(text, o.config);
  await checkLocalImages(o.docker, plan.images, o.app);
  const bases = plan.images.filter((i) => i.use === 'FROM').map((i) => i.image);
  o.say(`-----> Building the Dockerfile (FROM ${bases.join(', ') || 'scratch'}; no network)`);
  if (Object.keys(buildArgs).length > 0) o.say(`       build args from config: ${Object.keys(buildArgs).join(', ')}`);
  const labels = { ...o.labels, 'slipway.app': o.app, 'slipway.release': String(o.version) };

  const cgroup = await createBuildCgroup({ docker: o.docker, name: `slipway-build-${crypto.randomBytes(6).toString('hex')}`, pidsLimit: o.pidsLimit });
  if (cgroup.note) o.say(`       ${cgroup.note}`);
  const memory = parseMemory(o.memory);
  // Every step runs with the buildpack build's limits (README, "Server options").
  const limits = { memory, memswap: memory, ...(cgroup.parent ? { cgroupparent: cgroup.parent } : {}) };
  let userImage: string;
  try {
    userImage = await build(o, appContext(o.appDir), { buildargs: JSON.stringify(buildArgs), labels, ...limits }, (line) => o.say(`       ${line}`));
  } finally {
    await cgroup.release();
  }
  const inspected = await o.docker.getImage(userImage).inspect();
  const command = imageCommand(inspected.Config);

  // A thin layer on top puts the launcher in front, so the runtime starts Dockerfile images the
  // same way as buildpack images: one command string per process type.
  const wrapper = [`FROM ${userImage}`, `COPY slipway-exec ${DOCKER_LAUNCHER_PATH}`, `ENTRYPOINT ["${DOCKER_LAUNCHER_PATH}"]`, 'CMD []', ''].join('\n');
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile', mode: 0o644 }, wrapper);
  pack.entry({ name: 'slipway-exec', mode: 0o755 }, DOCKER_LAUNCHER);
  pack.finalize();
  await build(o, pack as unknown as Readable, { t: ref, labels, memory, memswap: memory }, () => undefined);
  return { image: ref, command };
}

function appContext(appDir: string): Readable {
  // `.git` is history, not the app; sockets and the like are skipped (strict: false).
  return tarFs.pack(appDir, { dereference: false, strict: false, ignore: (name) => path.relative(appDir, name) === '.git' } as tarFs.PackOptions) as unknown as Readable;
}

/**
 * One classic-builder build (`version: '1'`: no BuildKit frontends, nothing fetched for them),
 * offline: RUN steps get `networkmode: none` and base images are never pulled (the stage check
 * has made sure they are local). A failed build's step containers go with `forcerm`; the images
 * its finished steps committed, and the dead ends of earlier stages of a successful one, are
 * removed here: they carry no label, so nothing else would ever find them.
 */
async function build(o: DockerfileBuildOptions, context: Readable, extra: Record<string, unknown>, onLine: (line: string) => void): Promise<string> {
  const before = new Set((await o.docker.listImages({ all: true })).map((i) => shortId(i.Id)));
  const lines: string[] = [];
  let why: string | null = null;
  let stream: NodeJS.ReadableStream | null = null;
  const stop = (reason: string) => {
    why ??= reason;
    (stream as unknown as Readable | null)?.destroy();
  };
  const timer = setTimeout(() => stop(`the Docker build timed out after ${o.timeoutSeconds} s`), o.timeoutSeconds * 1000);
  const onAbort = () => stop('build cancelled');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    stream = await o.docker.buildImage(context, { version: '1', rm: true, forcerm: true, pull: false, networkmode: 'none', ...extra } as Dockerode.ImageBuildOptions);
    if (why) stop(why);
    const entries = await followToEnd(
      o.docker,
      stream,
      (entry: ProgressEntry) => {
        for (const line of (entry.stream ?? '').split('\n')) {
          if (!line.trim()) continue;
          lines.push(line);
          onLine(line.trimEnd());
        }
      },
      'E_BUILD',
    );
    if (why) throw new SlipwayError('E_BUILD', why);
    const id = [...entries].reverse().find((e) => e.aux?.ID)?.aux?.ID;
    if (!id) throw new SlipwayError('E_BUILD', 'the Docker build finished without an image id');
    // Stages other than the last end in images nothing refers to: they go too, or they would
    // outlive the app. The last stage's steps are the image's parents, which the engine keeps.
    const made = buildStepObjects(lines);
    await removeStepObjects(o.docker, { images: made.images.filter((i) => i !== shortId(id)), containers: [] }, before);
    return id;
  } catch (err) {
    await removeStepObjects(o.docker, buildStepObjects(lines), before);
    if (why) throw new SlipwayError('E_BUILD', why);
    throw err;
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}

const shortId = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/**
 * The images and containers a classic build's output names, in order: ` ---> <id>` after each
 * step (the base image for FROM, a cached or a new image otherwise) and ` ---> Running in <id>`.
 * Pure.
 */
export function buildStepObjects(lines: string[]): { images: string[]; containers: string[] } {
  const images: string[] = [];
  const containers: string[] = [];
  for (const line of lines) {
    const running = /^ ---> Running in ([0-9a-f]{12,64})\s*$/.exec(line);
    if (running) {
      containers.push(running[1]!);
      continue;
    }
    const image = /^ ---> ([0-9a-f]{12,64})\s*$/.exec(line);
    if (image && !images.includes(image[1]!)) images.push(image[1]!);
  }
  return { images, containers };
}

/**
 * Removes what a build made and nothing will use: the step containers of a failed build
 * (forcerm covers the engine's own failures, not a build cut short by a timeout) and the images it
 * committed, newest first. Images that existed before the build (bases, cache hits), carry a tag
 * or have children (the engine refuses those: the final image's parents, steps another build
 * reused) are kept: `noprune` so removing one never takes an older untagged parent with it.
 */
async function removeStepObjects(docker: Dockerode, made: { images: string[]; containers: string[] }, before: Set<string>): Promise<void> {
  for (const id of made.containers) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
  for (const id of [...made.images].reverse()) {
    if (before.has(shortId(id))) continue;
    const info = await docker.getImage(id).inspect().catch(() => null);
    if (!info || (info.RepoTags ?? []).length > 0) continue;
    await docker.getImage(id).remove({ noprune: true }).catch(() => undefined);
  }
}
