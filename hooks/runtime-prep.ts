import path from 'node:path';
import type Dockerode from 'dockerode';
import { BUILTIN_DECLARATIONS, runtimePackages } from '../buildpacks/builtins.js';
import { RUNTIMES_MOUNT, runtimeKey, type RuntimeDir, type RuntimePackage, type RuntimeUnpacks } from '../buildpacks/runtimes.js';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { ensurePreparedRuntime, preparedRuntimeRef, type MountedDir } from '../runtime/images.js';
import { engineInstance } from '../runtime/instance-engine.js';
import type { BuildHold } from './build-hold.js';
import { mirrorNodeHints } from './prepare-mirror.js';
import type { KeptForPushes } from './prune.js';

/** What a build gets: the unpacked runtimes to mount, and the shared image holding them (maybe still being made). */
export interface PreparedRuntimes {
  dirs: RuntimeDir[];
  /** The prepared image of `dirs`; null when there are none. Rejects when making it failed. */
  image: Promise<string> | null;
}

/** Makes the shared image of some mounted folders (runtime/images.ts `ensurePreparedRuntime`). */
export type MakePreparedImage = (o: { stackImage: string; mounted: readonly MountedDir[]; onProgress: (line: string) => void }) => Promise<string>;

export interface RuntimePreparerDeps {
  docker: Dockerode;
  unpacks: RuntimeUnpacks;
  stackImage: () => string;
  mirrorDir: string;
  logger: Logger;
  /** By default made in this process; the daemon has another process write it (hooks/runtime-prep-process.ts). */
  makeImage?: MakePreparedImage;
  /** A preparation is work `slipway prune` must not remove from under it, as a build's is. */
  hold: BuildHold;
}

/** The folders a build mounts and the release image carries, at their path under RUNTIMES_MOUNT. Pure. */
export function mountedOf(dirs: readonly RuntimeDir[]): MountedDir[] {
  return dirs.map((r) => ({ hostDir: r.hostDir, imagePath: path.posix.join(RUNTIMES_MOUNT, r.key) }));
}

const seconds = (since: number): string => `${((performance.now() - since) / 1000).toFixed(1)} s`;

/**
 * Language runtimes made ready before the first push that needs them (issue 15, README "Server
 * options" `prepareRuntimes`): each runtime unpacked on the host (buildpacks/runtimes.ts) and the
 * shared image holding them (runtime/images.ts `ensurePreparedRuntime`). The daemon makes one and
 * hands it to pushes and to what prepares ahead of them (daemon start, `mirror:add node`), so a
 * push that needs a runtime still being prepared waits for that preparation: one in-flight
 * promise per image, never a second copy of the work.
 */
export class RuntimePreparer {
  readonly #d: RuntimePreparerDeps;
  readonly #images = new Map<string, Promise<string>>();

  constructor(deps: RuntimePreparerDeps) {
    this.#d = deps;
  }

  /**
   * For a build: the runtimes unpacked (awaited: the build mounts them), and their image started
   * now, so it is made while the build compiles; the release image waits for it.
   */
  async forBuild(pkgs: readonly RuntimePackage[]): Promise<PreparedRuntimes> {
    const dirs: RuntimeDir[] = [];
    for (const pkg of pkgs) {
      const dir = await this.#d.unpacks.ensure(pkg);
      if (dir) dirs.push(dir);
    }
    return { dirs, image: dirs.length === 0 ? null : this.#image(dirs) };
  }

  /** The shared image of `dirs`, one making of it at a time; a failed one is tried again by the next caller. */
  #image(dirs: readonly RuntimeDir[]): Promise<string> {
    const key = dirs.map((d) => d.key).sort().join('\n');
    const running = this.#images.get(key);
    if (running) return running;
    const make: MakePreparedImage = this.#d.makeImage ?? ((o) => ensurePreparedRuntime({ docker: this.#d.docker, ...o }));
    const work = make({
      stackImage: this.#d.stackImage(),
      mounted: mountedOf(dirs),
      onProgress: (line) => this.#d.logger.debug({ line }, 'runtime image'),
    }).finally(() => this.#images.delete(key));
    this.#images.set(key, work);
    // Nobody may be waiting yet (a build still compiling): a failure is logged here, and reaches
    // the release image of whoever waits.
    work.catch((err: unknown) => this.#d.logger.warn({ runtimes: key.split('\n'), err: oneLine(err) }, 'preparing a runtime image failed'));
    return work;
  }

  /**
   * Prepares what the built-in buildpacks run from for the versions `hints` name (as a push's
   * mirror preparation resolves them), reporting each step with its duration. Resolves to the
   * image, or null when the buildpacks declare no runtime for these hints or the mirror lacks them.
   */
  async prepare(hints: Record<string, string>, report: (line: string) => void): Promise<string | null> {
    const pkgs = runtimePackages(BUILTIN_DECLARATIONS, hints);
    if (pkgs.length === 0) return null;
    return this.#d.hold.build(() => this.#prepare(pkgs, report));
  }

  async #prepare(pkgs: readonly RuntimePackage[], report: (line: string) => void): Promise<string | null> {
    const names = pkgs.map((p) => `${p.name}@${p.version}`).join(', ');
    let t = performance.now();
    report(`preparing runtimes ${names}: unpacking`);
    const { dirs, image } = await this.forBuild(pkgs);
    if (image === null) {
      report(`preparing runtimes ${names}: not in the mirror`);
      return null;
    }
    report(`preparing runtimes ${names}: unpacked in ${seconds(t)}; making the shared image`);
    t = performance.now();
    const ref = await image;
    report(`preparing runtimes ${names}: ready as ${ref} (${seconds(t)}; ${dirs.length} folders)`);
    return ref;
  }

  /**
   * What prepareDefault prepares for `range`, as `slipway prune` keeps it for pushes still to
   * come: the prepared image's tag and the runtime folders' keys. Null when the mirror has no
   * Node.js for the range. Nothing is unpacked or made.
   */
  async keptForPushes(range: string): Promise<KeptForPushes | null> {
    const hints = await mirrorNodeHints(this.#d.mirrorDir, range);
    const keys = hints === null ? [] : runtimePackages(BUILTIN_DECLARATIONS, hints).map(runtimeKey);
    if (keys.length === 0) return null;
    const image = preparedRuntimeRef(this.#d.stackImage(), mountedOf(keys.map((key) => ({ key, hostDir: '' }))), engineInstance(this.#d.docker));
    return { image, keys };
  }

  /**
   * At daemon start: the Node.js version a push without `engines.node` gets from the mirror as it
   * is (`defaultNodeRange`, no upstream asked). Never throws: a failure is logged, and the first
   * push that needs the runtime prepares it itself.
   */
  async prepareDefault(range: string): Promise<void> {
    const log = (line: string) => this.#d.logger.info({ line }, 'runtimes');
    try {
      const hints = await mirrorNodeHints(this.#d.mirrorDir, range);
      if (hints === null) {
        log(`no Node.js ${range} in the mirror: nothing to prepare (slipway mirror:add node ${range} adds and prepares one)`);
        return;
      }
      await this.prepare(hints, log);
    } catch (err) {
      this.#d.logger.warn({ err: oneLine(err) }, 'preparing the default runtime failed; the first push that needs it prepares it');
    }
  }
}
