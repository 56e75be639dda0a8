import path from 'node:path';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import tarFs from 'tar-fs';
import tar from 'tar-stream';
import { SlipwayError } from '../platform/errors.js';
import { readFileUnder } from '../platform/safe-read.js';
import { followToEnd } from './docker-progress.js';
import { releaseImageRef } from './images.js';

/** What the platform needs to know of a Dockerfile before building it. */
export interface DockerfileInfo {
  /** Images the stages start from, in order, after ARG substitution; stage names and `scratch` left out. */
  baseImages: string[];
  /** Every name an `ARG` declares, in any stage. */
  args: string[];
}

const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Joins continuation lines and drops comments and blank lines; returns one instruction per entry. Pure. */
export function dockerfileInstructions(text: string): string[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const directive = /^#\s*escape\s*=\s*(\S)\s*$/i.exec(lines[0] ?? '');
  const escape = directive?.[1] === '`' ? '`' : '\\';
  const out: string[] = [];
  let current: string | null = null;
  for (const raw of lines) {
    const line = raw.trim();
    // Comment lines are dropped even inside a continued instruction, as Docker does.
    if (line.startsWith('#')) continue;
    if (current === null && line === '') continue;
    const continued = line.endsWith(escape);
    const piece = (continued ? line.slice(0, -1) : line).trim();
    current = current === null ? piece : `${current} ${piece}`;
    if (!continued) {
      if (current.trim() !== '') out.push(current.trim());
      current = null;
    }
  }
  if (current !== null && current.trim() !== '') out.push(current.trim());
  return out;
}

function unquote(value: string): string {
  const m = /^(["'])(.*)\1$/.exec(value);
  return m ? m[2]! : value;
}

/**
 * Reads FROM and ARG out of a Dockerfile. `FROM ${BASE}` is resolved from the ARGs declared
 * before the first FROM, overridden by `buildArgs` (as Docker does). Pure.
 */
export function parseDockerfile(text: string, buildArgs: Record<string, string> = {}): DockerfileInfo {
  const globals: Record<string, string | undefined> = {};
  const args = new Set<string>();
  const stages = new Set<string>();
  const baseImages: string[] = [];
  let seenFrom = false;
  for (const instruction of dockerfileInstructions(text)) {
    const [keyword = '', ...rest] = instruction.split(/\s+/);
    const word = keyword.toUpperCase();
    if (word === 'ARG') {
      for (const token of rest) {
        const [name = '', ...value] = token.split('=');
        if (!ARG_NAME.test(name)) throw new SlipwayError('E_BUILD', `Dockerfile: ARG ${JSON.stringify(token.slice(0, 60))} is not a valid build argument name`);
        args.add(name);
        if (!seenFrom) globals[name] = value.length > 0 ? unquote(value.join('=')) : undefined;
      }
    } else if (word === 'FROM') {
      seenFrom = true;
      const words = rest.filter((w) => !w.startsWith('--'));
      const raw = words[0];
      if (raw === undefined) throw new SlipwayError('E_BUILD', 'Dockerfile: a FROM line names no image');
      const image = raw.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => {
        const name = (a ?? b)!;
        const value = buildArgs[name] ?? globals[name];
        if (value === undefined || !(name in globals)) {
          throw new SlipwayError('E_BUILD', `Dockerfile: FROM ${raw} uses $${name}, which no ARG before the first FROM gives a value`);
        }
        return value;
      });
      if (words[1]?.toUpperCase() === 'AS' && words[2]) stages.add(words[2].toLowerCase());
      if (image.toLowerCase() !== 'scratch' && !stages.has(image.toLowerCase()) && !baseImages.includes(image)) baseImages.push(image);
    }
  }
  if (!seenFrom) throw new SlipwayError('E_BUILD', 'Dockerfile: no FROM line: start it with FROM <a local image>');
  return { baseImages, args: [...args].sort() };
}

/** The config vars handed to the build: only those the Dockerfile declares with ARG. Pure. */
export function buildArgsFor(info: DockerfileInfo, config: Record<string, string>): Record<string, string> {
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

/** Which base images are not in the local engine. Nothing can be pulled, so they must be loaded. */
export async function missingImages(docker: Dockerode, images: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const image of images) {
    try {
      await docker.getImage(image).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw new SlipwayError('E_DOCKER', `inspecting image ${image} failed: ${(err as Error).message}`);
      missing.push(image);
    }
  }
  return missing;
}

export interface DockerfileBuildOptions {
  docker: Dockerode;
  appDir: string;
  app: string;
  version: number;
  config: Record<string, string>;
  labels: Record<string, string>;
  timeoutSeconds: number;
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
  // Never through a link, only a regular file (platform/safe-read.ts); usesDockerfile saw one.
  const text = (await readFileUnder(o.appDir, 'Dockerfile', { maxBytes: 1024 * 1024, what: 'Dockerfile' })) ?? '';
  // Which ARGs exist does not depend on their values: the first pass only lists them.
  const buildArgs = buildArgsFor(parseDockerfile(text, o.config), o.config);
  const info = parseDockerfile(text, buildArgs);
  const missing = await missingImages(o.docker, info.baseImages);
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new SlipwayError(
      'E_BUILD',
      `Dockerfile: FROM ${missing.join(', ')}: not on this machine, and builds cannot pull: on a connected machine run \`docker save ${first} -o image.tar\`, copy image.tar here and run \`docker load -i image.tar\``,
    );
  }
  o.say(`-----> Building the Dockerfile (FROM ${info.baseImages.join(', ') || 'scratch'}; no network)`);
  if (Object.keys(buildArgs).length > 0) o.say(`       build args from config: ${Object.keys(buildArgs).join(', ')}`);
  const labels = { ...o.labels, 'slipway.app': o.app, 'slipway.release': String(o.version) };

  const userImage = await build(o, appContext(o.appDir), { buildargs: JSON.stringify(buildArgs), labels }, (line) => o.say(`       ${line}`));
  const inspected = await o.docker.getImage(userImage).inspect();
  const command = imageCommand(inspected.Config);

  // A thin layer on top puts the launcher in front, so the runtime starts Dockerfile images the
  // same way as buildpack images: one command string per process type.
  const wrapper = [`FROM ${userImage}`, `COPY slipway-exec ${DOCKER_LAUNCHER_PATH}`, `ENTRYPOINT ["${DOCKER_LAUNCHER_PATH}"]`, 'CMD []', ''].join('\n');
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile', mode: 0o644 }, wrapper);
  pack.entry({ name: 'slipway-exec', mode: 0o755 }, DOCKER_LAUNCHER);
  pack.finalize();
  await build(o, pack as unknown as Readable, { t: ref, labels }, () => undefined);
  return { image: ref, command };
}

function appContext(appDir: string): Readable {
  // `.git` is history, not the app; sockets and the like are skipped (strict: false).
  return tarFs.pack(appDir, { dereference: false, strict: false, ignore: (name) => path.relative(appDir, name) === '.git' } as tarFs.PackOptions) as unknown as Readable;
}

async function build(o: DockerfileBuildOptions, context: Readable, extra: Record<string, unknown>, onLine: (line: string) => void): Promise<string> {
  const stream = await o.docker.buildImage(context, { rm: true, forcerm: true, pull: false, networkmode: 'none', ...extra } as Dockerode.ImageBuildOptions);
  let why: string | null = null;
  const stop = (reason: string) => {
    why ??= reason;
    (stream as unknown as Readable).destroy();
  };
  const timer = setTimeout(() => stop(`the Docker build timed out after ${o.timeoutSeconds} s`), o.timeoutSeconds * 1000);
  const onAbort = () => stop('build cancelled');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const entries = await followToEnd(
      o.docker,
      stream,
      (entry) => {
        for (const line of (entry.stream ?? '').split('\n')) if (line.trim()) onLine(line.trimEnd());
      },
      'E_BUILD',
    );
    if (why) throw new SlipwayError('E_BUILD', why);
    const id = [...entries].reverse().find((e) => e.aux?.ID)?.aux?.ID;
    if (!id) throw new SlipwayError('E_BUILD', 'the Docker build finished without an image id');
    return id;
  } catch (err) {
    if (why) throw new SlipwayError('E_BUILD', why);
    throw err;
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
}
