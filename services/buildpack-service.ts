import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { isValidAppName } from '../core/app-name.js';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import { repoPath, type Paths } from '../core/paths.js';
import type { AppStore } from '../core/store.js';
import { copyTree, validateBuildpack, type BuildpackInfo, type BuildpackPlugins } from '../buildpacks/plugins.js';
import { readProcfile } from '../buildpacks/procfile.js';
import { runBuild } from '../buildpacks/runner.js';
import { checkBuildpackEntry } from '../hooks/choose-buildpacks.js';
import { chooseBuilderName, type AppSource, type ChoiceMode } from '../hooks/builders/index.js';
import { deployBranchOf } from '../hooks/deploy-branch.js';
import { scaffoldFiles } from '../buildpacks/skeleton.js';

const execFileP = promisify(execFile);

/** What `buildpacks <app>` reports. */
export interface AppBuildpacks {
  app: string;
  /** How the next deploy chooses: pinned by the app, by `.buildpacks`, a Dockerfile, or detection. */
  mode: ChoiceMode;
  /** The pinned list, or the buildpacks detection tries, in order. */
  buildpacks: string[];
  /** The commit `.buildpacks` or the Dockerfile was read from, if any. */
  commit: string | null;
}

export interface TestReport {
  buildpacks: string[];
  processTypes: Record<string, string>;
  fromProcfile: boolean;
  configVars: Record<string, string>;
  seconds: number;
}

export interface BuildpackServiceDeps {
  plugins: BuildpackPlugins;
  apps: AppStore;
  docker: Dockerode;
  config: Config;
  paths: Paths;
  stackImage: () => string;
}

/** Before anything was pushed there are no files: detection. */
const EMPTY_SOURCE: AppSource = { readFile: async () => null, isFile: async () => false };

/** The `buildpacks:*` commands' view of the platform: installed buildpacks, app pins, authoring tools. */
export class BuildpackService {
  readonly #d: BuildpackServiceDeps;

  constructor(deps: BuildpackServiceDeps) {
    this.#d = deps;
  }

  list(): Promise<BuildpackInfo[]> {
    return this.#d.plugins.describe();
  }

  install(o: Parameters<BuildpackPlugins['install']>[0]): ReturnType<BuildpackPlugins['install']> {
    return this.#d.plugins.install(o);
  }

  /** Pins the app's buildpacks; names must be known now, URLs are fetched at the next deploy. */
  async set(app: string, entries: string[]): Promise<string[]> {
    const known = (await this.#d.plugins.list()).map((b) => b.name);
    for (const entry of entries) {
      const checked = checkBuildpackEntry(entry, 'buildpacks:set');
      if (typeof checked === 'string' && !known.includes(checked)) {
        throw new SlipwayError('E_BUILDPACK', `buildpack "${checked}" is not installed (known: ${known.join(', ')}): install it with \`slipway buildpacks:install <dir|tarball>\``);
      }
    }
    await this.#d.apps.update(app, (a) => {
      a.buildpacks = [...entries];
    });
    return entries;
  }

  async clear(app: string): Promise<void> {
    await this.#d.apps.update(app, (a) => {
      a.buildpacks = [];
    });
  }

  /**
   * What the next deploy of `app` will use, judged from the last deployed (or pushed) commit by
   * the deploy's own precedence (hooks/builders/choose.ts).
   */
  async forApp(app: string): Promise<AppBuildpacks> {
    const record = await this.#d.apps.get(app);
    const commit =
      record.buildpacks.length > 0 ? null : await this.#latestCommit(app, record.releases.find((r) => r.version === record.current)?.commit ?? null, deployBranchOf(record));
    const { detection } = await chooseBuilderName(record.buildpacks, commit ? this.#commitSource(app, commit) : EMPTY_SOURCE);
    if (detection.mode === 'detect') return { app, mode: 'detect', buildpacks: (await this.#d.plugins.list()).map((b) => b.name), commit };
    return { app, mode: detection.mode, buildpacks: detection.entries, commit: detection.mode === 'buildpacks:set' ? null : commit };
  }

  /** Writes a working buildpack skeleton into an empty or new folder. */
  async scaffold(name: string, dir: string): Promise<string[]> {
    if (!isValidAppName(name)) throw new SlipwayError('E_BUILDPACK', `invalid buildpack name ${JSON.stringify(name.slice(0, 60))}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter`);
    const existing = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
    if (existing.length > 0) throw new SlipwayError('E_BUILDPACK', `${dir} is not empty: pick a new folder`);
    const written: string[] = [];
    for (const file of scaffoldFiles(name)) {
      const abs = path.join(dir, file.path);
      await fs.mkdir(path.dirname(abs), { recursive: true });
      await fs.writeFile(abs, file.text, { mode: file.executable ? 0o755 : 0o644, flag: 'wx' });
      written.push(file.path);
    }
    return written;
  }

  /**
   * Runs a buildpack over an app folder the way a deploy does (detect, compile, release in the
   * stack image, offline, as the build user), then reports the process types. Nothing is kept:
   * the app copy, the cache and the build container are thrown away.
   */
  async test(o: { buildpackDir: string; appDir: string; out: (text: string) => void; signal: AbortSignal }): Promise<TestReport> {
    const started = Date.now();
    for (const dir of [o.buildpackDir, o.appDir]) {
      if (!(await fs.stat(dir).then((s) => s.isDirectory(), () => false))) throw new SlipwayError('E_BUILDPACK', `no such folder: ${dir}`);
    }
    await validateBuildpack(o.buildpackDir);
    await fs.mkdir(this.#d.paths.tmpDir, { recursive: true });
    const work = await fs.mkdtemp(path.join(this.#d.paths.tmpDir, 'bp-test-'));
    try {
      // Copies, as install and extract would make them: modes normalized, `.git` left out.
      const bpName = path.basename(o.buildpackDir).replace(/[^a-z0-9-]/g, '-') || 'buildpack';
      await copyTree(o.buildpackDir, path.join(work, 'bp'));
      await copyTree(o.appDir, path.join(work, 'app'));
      o.out(`-----> Testing buildpack ${bpName} on ${o.appDir} (stack ${this.#d.stackImage()}, no network)\n`);
      const result = await runBuild({
        docker: this.#d.docker,
        stackImage: this.#d.stackImage(),
        appDir: path.join(work, 'app'),
        cacheDir: path.join(work, 'cache'),
        envVars: {},
        candidates: [{ name: bpName, dir: path.join(work, 'bp') }],
        pinned: false,
        mirrorDir: this.#d.paths.mirrorDir,
        buildEnv: { SLIPWAY_PHASE_TIMES: '1' },
        memory: this.#d.config.buildMemory,
        pidsLimit: this.#d.config.buildPidsLimit,
        timeoutSeconds: this.#d.config.buildTimeoutSeconds,
        onOutput: o.out,
        signal: o.signal,
        scratchParent: this.#d.paths.tmpDir,
      });
      const procfile = await readProcfile(path.join(work, 'app'));
      const processTypes = procfile ?? result.processTypes;
      return { buildpacks: result.buildpacks, processTypes, fromProcfile: procfile !== null, configVars: result.configVars, seconds: (Date.now() - started) / 1000 };
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  async #latestCommit(app: string, deployed: string | null, branch: string): Promise<string | null> {
    if (deployed && /^[0-9a-f]{40}$/.test(deployed)) return deployed;
    for (const ref of [`refs/heads/${branch}`]) {
      const out = await this.#git(app, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]);
      if (out !== null && /^[0-9a-f]{40}$/.test(out.trim())) return out.trim();
    }
    return null;
  }

  /** The files of a commit as a deploy of it would see them: regular files only (git mode 100644 or 100755). */
  #commitSource(app: string, commit: string): AppSource {
    const blob = async (name: string): Promise<string | null> => {
      const entry = await this.#git(app, ['ls-tree', '--end-of-options', commit, '--', name]);
      const m = /^100(?:644|755) blob ([0-9a-f]{40,64})\t/.exec(entry ?? '');
      return m ? m[1]! : null;
    };
    return {
      readFile: async (name, maxBytes) => {
        const oid = await blob(name);
        return oid === null ? null : this.#git(app, ['cat-file', 'blob', oid], maxBytes);
      },
      isFile: async (name) => (await blob(name)) !== null,
    };
  }

  async #git(app: string, args: string[], maxBytes = 1024 * 1024): Promise<string | null> {
    try {
      const { stdout } = await execFileP('git', ['--git-dir', repoPath(this.#d.paths, app), ...args], { maxBuffer: maxBytes });
      return stdout;
    } catch {
      return null;
    }
  }
}
