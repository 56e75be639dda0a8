import fs from 'node:fs/promises';
import type Dockerode from 'dockerode';
import type PQueue from 'p-queue';
import type { Config } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { appCachePath, type Paths } from '../../core/paths.js';
import { releaseLayers, runtimePackages } from '../../buildpacks/builtins.js';
import type { PackumentCache } from '../../buildpacks/mirror/fetch.js';
import { header } from '../../buildpacks/output.js';
import { readProcfile } from '../../buildpacks/procfile.js';
import { runBuild } from '../../buildpacks/runner.js';
import { buildReleaseImage } from '../../runtime/images.js';
import { BUILD_APP_LABEL } from '../../runtime/labels.js';
import { resolveBuildpacks, type BuildpackCatalog } from '../choose-buildpacks.js';
import { prepareMirror } from '../prepare-mirror.js';
import { mountedOf, type RuntimePreparer } from '../runtime-prep.js';
import { detectBuildpacks, pinOf } from './buildpacks-detect.js';
import { processTypesFrom } from './process-types.js';
import type { Builder, BuildContext, Built } from './types.js';

export interface BuildpacksBuilderDeps {
  /** Builds and release images; the app's processes go through the scheduler, not here. */
  docker: Dockerode;
  config: Config;
  paths: Paths;
  logger: Logger;
  stackImage: () => string;
  buildpacks: BuildpackCatalog;
  packuments: PackumentCache;
  /** Limits builds across apps; a deploy of one app is already serialized by its own queue. */
  buildQueue: PQueue;
  /** The npm/pypi upstream in force now (`mirror:upstream` may change it while the daemon runs). */
  mirrorUpstream: (kind: 'npm' | 'pypi') => Promise<string | null>;
  /** Unpacks runtimes and makes their shared image, once, shared with the preparation ahead of pushes. */
  runtimes: RuntimePreparer;
}

/** Buildpacks in the stack image, offline, then the launcher image around the built app. */
export function buildpacksBuilder(deps: BuildpacksBuilderDeps): Builder {
  return { name: 'buildpacks', detects: detectBuildpacks, build: (ctx) => buildWithBuildpacks(deps, ctx) };
}

async function buildWithBuildpacks(deps: BuildpacksBuilderDeps, { app, version, appDir, record, say, phase, signal, imageLabels, detection }: BuildContext): Promise<Built> {
  const choice = await resolveBuildpacks(deps.buildpacks, pinOf(detection), (line) => say(`${line}\n`));
  if (choice.pinnedBy) say(header(`Using buildpacks pinned by ${choice.pinnedBy}: ${choice.candidates.map((c) => c.name).join(', ')}`));
  const buildEnv = await prepareMirror({
    appDir,
    config: deps.config,
    paths: deps.paths,
    candidates: choice.candidates,
    say,
    packuments: deps.packuments,
    npmUpstream: await deps.mirrorUpstream('npm'),
  });

  // The runtimes the candidates declare, unpacked once per version and mounted read-only rather
  // than copied into every build (issue 15); one missing from the mirror is the buildpack's to report.
  // Usually prepared before this push (README `prepareRuntimes`); if not, or still being prepared,
  // this waits for the unpack, and the shared image is made while the build compiles.
  const prepared = await deps.runtimes.forBuild(runtimePackages(choice.candidates, buildEnv));
  const runtimes = prepared.dirs;
  const preparedImage = prepared.image;

  phase('detect');
  const cacheDir = appCachePath(deps.paths, app);
  await fs.mkdir(cacheDir, { recursive: true });
  const result = await deps.buildQueue.add(
    () =>
      runBuild({
        docker: deps.docker,
        stackImage: deps.stackImage(),
        appDir,
        cacheDir,
        envVars: record.config,
        candidates: choice.candidates,
        pinned: choice.pinnedBy !== null,
        mirrorDir: deps.paths.mirrorDir,
        buildEnv,
        runtimes,
        memory: deps.config.buildMemory,
        pidsLimit: deps.config.buildPidsLimit,
        timeoutSeconds: deps.config.buildTimeoutSeconds,
        onOutput: say,
        signal,
        // A restarted daemon finds and removes the build containers of its own apps by this label.
        labels: { [BUILD_APP_LABEL]: app },
        // Root-only and emptied at every daemon start (platform/recover.ts), unlike /tmp.
        scratchParent: deps.paths.tmpDir,
      }),
  );

  phase('compile');
  const processTypes = processTypesFrom(await readProcfile(appDir), result.processTypes);
  say(header(`Process types: ${Object.keys(processTypes).join(', ')}`));

  say(header(`Building release image slipway/${app}:v${version}`));
  const image = await buildReleaseImage({
    docker: deps.docker,
    stackImage: deps.stackImage(),
    appDir,
    app,
    version,
    labels: imageLabels,
    // The folders the buildpacks declare as runtime and dependency layers (docs/buildpacks.md).
    layers: releaseLayers(),
    mounted: mountedOf(runtimes),
    ...(preparedImage ? { preparedRuntime: () => preparedImage } : {}),
    onProgress: (line) => deps.logger.debug({ app, line }, 'image build'),
    onStep: (line) => say(`       ${line}\n`),
  });
  return { buildpacks: result.buildpacks, processTypes, configVars: result.configVars, image };
}
