import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import { flagNames, flagValues, type DockerfileInstruction, type ParsedDockerfile } from './dockerfile-parse.js';

/**
 * What a Dockerfile may use, checked before the engine sees it (docs/buildpacks.md, "Apps with a
 * Dockerfile"): a build reaches nothing outside the machine. The engine pulls any image a stage
 * names that it does not have (`FROM`, `COPY --from`), fetches `ADD` URLs itself, and hands
 * `# syntax=` to a frontend image, none of which the build's `networkmode: none` stops, so each
 * is refused here. Every refusal is one line naming the Dockerfile line and what to do.
 */

/** An image a stage reads, to be found on the engine before the build starts. */
export interface ImageReference {
  image: string;
  /** 1-based Dockerfile line. */
  line: number;
  /** How it is used: `FROM`, `COPY --from`, `RUN --mount from=`. */
  use: string;
}

export interface DockerfilePlan {
  /** Local images the build reads, in order of first use; stages and `scratch` left out. */
  images: ImageReference[];
  /** Every name an `ARG` declares, in any stage. */
  args: string[];
}

const KNOWN = new Set(['from', 'run', 'cmd', 'label', 'maintainer', 'expose', 'env', 'add', 'copy', 'entrypoint', 'volume', 'user', 'workdir', 'arg', 'stopsignal', 'healthcheck', 'shell', 'onbuild']);
const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
/** What an image reference may contain: nothing the engine would expand, unquote or unescape. */
const IMAGE_REF = /^[a-z0-9][A-Za-z0-9._/:@-]*$/;
/** A heredoc opener as BuildKit reads one (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`). */
const HEREDOC = /(?:^|[\s[,"'])\d*<<-?(?!<)[^\s<]/;
const REMOTE_SOURCE = /:\/\/|(?:^|[\s["'])git@|(?:^|[\s["'])github\.com\//i;

export const refusal = (line: number, what: string): SlipwayError => new SlipwayError('E_BUILD', `Dockerfile line ${line}: ${what}`);

interface MetaArg {
  /** The default, or undefined when the ARG has none. */
  value: string | undefined;
  /** False when the engine could read the declaration differently (quotes, escapes, repeats). */
  clean: boolean;
}

/**
 * Checks a parsed Dockerfile against what a Slipway build allows and lists the local images it
 * reads. `buildArgs` are the values the build will pass (config vars the Dockerfile declares).
 * Pure.
 */
export function checkDockerfile(parsed: ParsedDockerfile, buildArgs: Record<string, string> = {}): DockerfilePlan {
  for (const d of parsed.directives) {
    if (d.name === 'syntax') {
      throw refusal(d.line, `the "# syntax=" directive asks for a BuildKit frontend image, which builds cannot fetch: remove the line (the engine's built-in Dockerfile syntax is used)`);
    }
  }
  const esc = parsed.escape;
  const meta = new Map<string, MetaArg>();
  const args = new Set<string>();
  const stages: (string | null)[] = [];
  const images: ImageReference[] = [];
  const addImage = (image: string, line: number, use: string) => {
    if (!images.some((i) => i.image === image)) images.push({ image, line, use });
  };

  for (const ins of parsed.instructions) {
    const { keyword, line } = ins;
    const word = keyword.toUpperCase();
    if (!KNOWN.has(keyword)) throw refusal(line, `unknown instruction ${JSON.stringify(word.slice(0, 40))}: fix the spelling or the line continuation before it`);
    if (keyword === 'onbuild') throw refusal(line, 'ONBUILD is not supported: write the instructions in the Dockerfile that uses them');
    if (stages.length === 0 && keyword !== 'from' && keyword !== 'arg') throw refusal(line, `${word} before the first FROM: start the Dockerfile with FROM <a local image>`);

    if (keyword === 'arg') {
      declareArgs(ins, esc, stages.length === 0 ? meta : null, args);
    } else if (keyword === 'from') {
      if (ins.flags.length > 0) {
        throw refusal(line, `FROM ${flagNames(ins.flags).map((f) => `--${f}`).join(' ')} is not supported (it can make the engine pull): build for this machine's platform and remove the flag`);
      }
      const words = ins.args.split(/[\t\v\f\r ]+/).filter((w) => w !== '');
      let stage: string | null = null;
      if (words.length === 3 && words[1]!.toLowerCase() === 'as') {
        stage = words[2]!.toLowerCase();
        if (!STAGE_NAME.test(stage)) throw refusal(line, `invalid stage name ${JSON.stringify(words[2]!.slice(0, 60))}: use lower-case letters, digits, "-", "_" and "."`);
      } else if (words.length !== 1) {
        throw refusal(line, 'FROM takes an image and optionally "AS <name>": FROM <image> [AS <name>]');
      }
      const image = resolveFromImage(words[0]!, line, esc, meta, buildArgs);
      // A stage is found by name only here (the engine reads `FROM 0` as an image named "0").
      if (image !== 'scratch' && !stages.includes(image.toLowerCase())) {
        checkImageWord(image, line, 'FROM');
        addImage(image, line, 'FROM');
      }
      stages.push(stage);
    } else if (keyword === 'copy' || keyword === 'add') {
      const allowed = keyword === 'copy' ? ['from', 'chown', 'chmod'] : ['chown', 'chmod'];
      const other = flagNames(ins.flags).find((f) => !allowed.includes(f));
      if (other !== undefined) throw refusal(line, `${word} --${other.slice(0, 40)} is not supported: use only ${allowed.map((f) => `--${f}`).join(', ')}`);
      if (HEREDOC.test(ins.args)) throw refusal(line, `${word} with a heredoc (<<) is not supported: put the file in the repository and COPY it`);
      for (const from of flagValues(ins.flags, 'from')) {
        const image = stageOrImage(from, stages.slice(0, -1), line, 'COPY --from');
        if (image !== null) addImage(image, line, 'COPY --from');
      }
      if (keyword === 'add') {
        if (REMOTE_SOURCE.test(ins.args)) throw refusal(line, 'ADD from a URL or a git repository needs the network, which builds do not have: commit the file to the repository and COPY it');
        if (ins.args.includes('$')) throw refusal(line, 'ADD with a variable in its sources is not supported (it could name a URL): write the sources literally or use COPY');
      }
    } else if (keyword === 'run') {
      const other = flagNames(ins.flags).find((f) => f !== 'mount');
      if (other !== undefined) throw refusal(line, `RUN --${other.slice(0, 40)} is not supported: RUN steps always build without network and with default security`);
      if (HEREDOC.test(ins.args)) throw refusal(line, 'RUN with a heredoc (<<) is not supported: put the script in the repository, COPY it and RUN it');
      for (const mount of flagValues(ins.flags, 'mount')) {
        const image = checkMount(mount, stages.slice(0, -1), line);
        if (image !== null) addImage(image, line, 'RUN --mount from=');
      }
    }
  }
  if (stages.length === 0) throw new SlipwayError('E_BUILD', 'Dockerfile: no FROM line: start it with FROM <a local image>');
  return { images, args: [...args].sort() };
}

/**
 * ARG declarations. Before the first FROM they are the "meta" ARGs that FROM can use; a
 * declaration is only trusted for that when it is a plain `NAME` or `NAME=value` without quotes
 * or escapes (the engine splits and unquotes those with shell rules) and declared once.
 */
function declareArgs(ins: DockerfileInstruction, esc: string, meta: Map<string, MetaArg> | null, args: Set<string>): void {
  const tokens = ins.args.split(/[\t\v\f\r ]+/).filter((t) => t !== '');
  if (tokens.length === 0) throw refusal(ins.line, 'ARG needs a name: ARG NAME or ARG NAME=default');
  // With quotes or escapes the engine splits the line differently: names are only guessed at.
  const quoted = /["']/.test(ins.args) || ins.args.includes(esc);
  const tricky = quoted || ins.args.includes('$');
  for (const token of tokens) {
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    if (!ARG_NAME.test(name)) {
      if (quoted) continue;
      throw refusal(ins.line, `ARG ${JSON.stringify(token.slice(0, 60))} is not a valid build argument name: use letters, digits and _`);
    }
    args.add(name);
    if (meta) {
      const clean = !tricky && !meta.has(name);
      meta.set(name, { value: eq === -1 ? undefined : token.slice(eq + 1), clean });
    }
  }
}

/** The image a FROM names, with `$NAME` / `${NAME}` replaced from the meta ARGs and build args. */
function resolveFromImage(word: string, line: number, esc: string, meta: Map<string, MetaArg>, buildArgs: Record<string, string>): string {
  if (/["']/.test(word) || word.includes(esc)) throw refusal(line, `FROM ${word.slice(0, 80)}: quotes and escapes are not supported in FROM: write the image name plainly`);
  const resolved = word.replace(/\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$/g, (_whole: string, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare;
    if (name === undefined || !ARG_NAME.test(name)) {
      throw refusal(line, `FROM ${word.slice(0, 80)}: only $NAME and \${NAME} are supported in FROM: write the image name, or ARG NAME=<image> before the first FROM`);
    }
    const arg = meta.get(name);
    if (!arg) throw refusal(line, `FROM ${word.slice(0, 80)} uses $${name}, which no ARG before the first FROM declares: add ARG ${name}=<image> before the first FROM`);
    if (!arg.clean) throw refusal(line, `FROM ${word.slice(0, 80)} uses $${name}, whose ARG has quotes, escapes or variables, or is declared twice: declare it once as ARG ${name}=<image>`);
    const value = buildArgs[name] ?? arg.value;
    if (value === undefined || value === '') throw refusal(line, `FROM ${word.slice(0, 80)} uses $${name}, which has no value: give the ARG a default (ARG ${name}=<image>) or set the config var ${name}`);
    return value;
  });
  if (resolved === '') throw refusal(line, 'FROM names no image: FROM <a local image>');
  return resolved;
}

function checkImageWord(image: string, line: number, use: string): void {
  if (image.includes('$')) throw refusal(line, `${use} ${image.slice(0, 80)}: variables are not supported here: write the stage or image name`);
  if (!IMAGE_REF.test(image)) throw refusal(line, `${use} ${JSON.stringify(image.slice(0, 80))} is not a plain image reference: name an earlier stage or a local image`);
}

/**
 * `--from=` of COPY or a mount: one of the `earlier` stages (by name or index; the current stage
 * is not one, and the engine would look a name it does not know up as an image), else a local
 * image (returned).
 */
function stageOrImage(value: string, earlier: (string | null)[], line: number, use: string): string | null {
  if (value === '') throw refusal(line, `${use} names nothing: name an earlier stage or a local image`);
  if (earlier.includes(value.toLowerCase())) return null;
  if (/^\d+$/.test(value)) {
    if (Number(value) < earlier.length) return null;
    throw refusal(line, `${use}=${value} is not an earlier stage (stages are numbered from 0): name an earlier stage`);
  }
  checkImageWord(value, line, use);
  return value;
}

/** A `RUN --mount=` value: no secrets or SSH agents (nothing to give them), `from=` as a stage reference. */
function checkMount(value: string, stages: (string | null)[], line: number): string | null {
  if (/["'$]/.test(value)) throw refusal(line, 'RUN --mount with quotes or variables is not supported: write the options plainly');
  let type = 'bind';
  let from: string | null = null;
  for (const field of value.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq === -1 ? field : field.slice(0, eq)).trim().toLowerCase();
    const val = eq === -1 ? '' : field.slice(eq + 1).trim();
    if (key === 'type') type = val.toLowerCase();
    if (key === 'from') from = val;
  }
  if (type === 'secret' || type === 'ssh') throw refusal(line, `RUN --mount=type=${type} is not supported: builds get no secrets or SSH agents (config vars reach the build only as declared ARGs)`);
  return from === null ? null : stageOrImage(from, stages, line, 'RUN --mount from');
}

/** Labels an image may carry that tie it to one app. */
const APP_LABEL = 'slipway.app';

/**
 * Every image the build reads must already be on the engine (nothing is pulled), must not be
 * another app's (its files are that app's), and must have no ONBUILD triggers (they would run
 * instructions this check never saw).
 */
export async function checkLocalImages(docker: Dockerode, images: ImageReference[], app: string): Promise<void> {
  for (const ref of images) {
    let info: Dockerode.ImageInspectInfo;
    try {
      info = await docker.getImage(ref.image).inspect();
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== 404 && status !== 400) throw new SlipwayError('E_DOCKER', `inspecting image ${ref.image} failed: ${(err as Error).message}`);
      throw refusal(
        ref.line,
        `${ref.use} ${ref.image}: not on this machine, and builds cannot pull: on a connected machine run \`docker save ${ref.image} -o image.tar\`, copy image.tar here and run \`docker load -i image.tar\``,
      );
    }
    // The engine falls back to an image-ID prefix when no tag matches (`FROM 3f`), which would
    // reach untagged images: other apps' build steps among them.
    if (!foundByName(ref.image, info)) throw refusal(ref.line, `${ref.use} ${ref.image}: name the image by repository and tag, not by image ID`);
    const owner = info.Config?.Labels?.[APP_LABEL];
    if (owner !== undefined && owner !== app) throw refusal(ref.line, `${ref.use} ${ref.image}: that image belongs to another app: build from a base image, not from an app's image`);
    if ((info.Config?.OnBuild ?? []).length > 0) throw refusal(ref.line, `${ref.use} ${ref.image}: that image has ONBUILD triggers, which are not supported: use an image without them`);
  }
}

/** Whether `image` names `info` by a tag or digest it carries (not by an ID prefix). Pure. */
export function foundByName(image: string, info: { RepoTags?: string[] | null; RepoDigests?: string[] | null }): boolean {
  const at = image.indexOf('@');
  let name = at === -1 ? image : image.slice(0, at);
  const digest = at === -1 ? null : image.slice(at + 1);
  let tag: string | null = null;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  // The engine shows Docker Hub names short: `debian:12` for `docker.io/library/debian:12`.
  name = name.replace(/^(?:docker\.io|index\.docker\.io)\//, '');
  if (/^library\/[^/]+$/.test(name)) name = name.slice('library/'.length);
  if (digest !== null) return (info.RepoDigests ?? []).includes(`${name}@${digest}`);
  return (info.RepoTags ?? []).includes(`${name}:${tag ?? 'latest'}`);
}
