import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { oneLine } from '../core/errors.js';
import { repoPath } from '../core/paths.js';
import type { RouteBook } from '../router/route-book.js';
import { nextReleaseVersion, type AppStore, type Release } from '../core/store.js';
import { extractRevision } from '../buildpacks/extract.js';
import { header } from '../buildpacks/output.js';
import { readFileUnder } from '../core/safe-read.js';
import { assertAppNameFree } from '../runtime/instance-engine.js';
import { releaseImageRef } from '../runtime/images.js';
import { parseAppSettings, type AppSettings } from '../runtime/healthchecks.js';
import { isolationLabels } from '../runtime/isolation.js';
import { pruneReleaseImages } from '../runtime/release-images.js';
import type { Scheduler } from '../runtime/scheduler.js';
import { chooseBuilder, createBuilders, dirSource } from './builders/index.js';
import type { BuildpacksBuilderDeps } from './builders/buildpacks.js';
import type { DockerfileBuilderDeps } from './builders/dockerfile.js';
import type { BuildHold } from './build-hold.js';
import { PhaseClock, phaseLine } from './phase-clock.js';

/** What a deploy needs: the builders' dependencies, the scheduler for the app's processes, state. */
export interface DeployDeps extends BuildpacksBuilderDeps, DockerfileBuilderDeps {
  scheduler: Scheduler;
  apps: AppStore;
  routes: RouteBook;
  /** Taken for the build, so `slipway prune` never removes what it makes or uses (README "Cleaning up"). */
  hold: BuildHold;
}

export interface DeployRequest {
  app: string;
  rev: string;
  gitEnv: Record<string, string>;
  pusher: string;
}

export interface DeployOutput {
  out(text: string): void;
  signal: AbortSignal;
}

/**
 * Push to live: extract the pushed tree, run the buildpacks offline, bake a release image and
 * switch the app to it. Throws on any failure; the app's running release is only replaced at
 * the very end, after the new containers proved healthy.
 */
export async function deployRevision(deps: DeployDeps, req: DeployRequest, io: DeployOutput): Promise<Release> {
  const { app, rev } = req;
  const started = Date.now();
  const buildId = `${new Date(started).toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${crypto.randomBytes(3).toString('hex')}`;
  const buildLogDir = path.join(deps.paths.buildsDir, app);
  await fs.mkdir(buildLogDir, { recursive: true });
  const logStream = createWriteStream(path.join(buildLogDir, `${buildId}.log`), { mode: 0o600 });
  // A build log that cannot be written (disk full) loses the log, not the daemon.
  logStream.on('error', (err) => deps.logger.warn({ err: err.message, app, buildId }, 'build log not written'));
  // Once the push returned, what is still said (the old containers' drain) goes to the log only.
  let returned = false;
  const say = (text: string) => {
    if (!returned) io.out(text);
    logStream.write(text);
  };
  let retiring: Promise<void> | null = null;
  // The drain's end is recorded after the build's success (which marks it `retiring`), never before.
  let settled: () => void = () => undefined;
  const buildSettled = new Promise<void>((resolve) => (settled = resolve));
  await deps.apps.update(app, (a) => {
    a.builds.push({
      id: buildId,
      commit: rev,
      status: 'running',
      startedAt: new Date(started).toISOString(),
      finishedAt: null,
      durationMs: null,
      buildpacks: [],
      error: null,
      by: req.pusher,
    });
  });
  const workDir = await fs.mkdtemp(path.join(deps.paths.tmpDir, `build-${app}-`));
  let buildpackNames: string[] = [];
  let pendingVersion: number | null = null;
  try {
    say(header(`Building ${app} from ${rev.slice(0, 7)} (build ${buildId})`));
    // Every phase prints its time, so a slow push says where it went (README "Releases, scaling and zero downtime").
    const clock = new PhaseClock((phase, ms) => say(phaseLine(phase, ms)));
    // Another instance on this engine may have taken the name since apps:create.
    await assertAppNameFree(deps.docker, app);
    const appDir = path.join(workDir, 'app');
    await fs.mkdir(appDir);
    const tree = await extractRevision({
      repoDir: repoPath(deps.paths, app),
      rev,
      gitEnv: req.gitEnv,
      dest: appDir,
      maxBytes: deps.config.maxPushBytes,
    });
    say(`       ${tree.files} files, ${formatBytes(tree.bytes)}\n`);
    clock.end('receive');
    // Read before the build so a broken app.json fails the push in seconds, not minutes.
    const settings = await readAppSettings(appDir);
    const healthchecks = settings.healthchecks;

    const record = await deps.apps.get(app);
    const version = nextReleaseVersion(record);
    pendingVersion = version;
    // The release image carries app.json's isolation settings, so rollbacks and restarts keep them.
    const imageLabels = { 'slipway.build': buildId, 'slipway.commit': rev, ...isolationLabels(settings) };
    // The one precedence (docs/buildpacks.md, "Choosing buildpacks"), shared with `slipway buildpacks <app>`.
    const { builder, detection } = await chooseBuilder(createBuilders(deps), record.buildpacks, dirSource(appDir));
    // Under the hold `slipway prune` takes alone: it removes nothing this build is making or using.
    const result = await deps.hold.build(
      () => builder.build({ app, rev, buildId, version, appDir, record, say, phase: (p) => clock.end(p), signal: io.signal, imageLabels, detection }),
      () => say('       waiting for `slipway prune` to finish (it takes seconds)\n'),
    );
    clock.end('release image');
    buildpackNames = result.buildpacks;
    const { processTypes, image } = result;

    // What the scheduler starts: the record's config over the buildpacks' defaults, its limits.
    const next = { version, image, processTypes, defaultConfig: result.configVars, config: record.config, healthchecks };
    const formation = { ...record.formation };
    if (formation.web === undefined && processTypes.web) formation.web = 1;
    if (processTypes.release) {
      say(header(`Running release command: ${processTypes.release}`));
      await deps.scheduler.runReleasePhase({
        app: record,
        release: next,
        timeoutSeconds: deps.config.buildTimeoutSeconds,
        onOutput: (line) => say(`       ${line}\n`),
        signal: io.signal,
      });
      clock.end('release phase');
    }
    say(header(`Releasing v${version}`));
    // The push returns once the new processes are routed; the old ones drain and stop after it,
    // their outcome in this build's log (README "Releases, scaling and zero downtime").
    const { retired } = await deps.scheduler.deploy({
      app: record,
      release: next,
      formation,
      onRoutes: (upstreams: string[]) => deps.routes.setApp(app, upstreams),
      progress: (line: string) => say(`       ${line}\n`),
      phase: (p) => clock.end(p),
      background: true,
    });
    // Live means only the new release gets new requests: the router's kept connections to the
    // replaced containers are let go first (at most half a second, docs/router.md "Stable fronts").
    // A first release replaces nothing.
    if (record.current !== null) {
      await deps.routes.turnover();
      clock.end('router turnover');
    }
    retiring = retired.then(async (r) => {
      await buildSettled;
      if (r.stopped.length > 0) say(header(`Drained and stopped the replaced processes in ${(r.ms / 1000).toFixed(1)} s: ${r.stopped.join(', ')}`));
      for (const f of r.failed) say(` !     could not stop ${f} (the next daemon start removes it)\n`);
      await deps.apps
        .update(app, (a) => {
          const build = a.builds.find((b) => b.id === buildId);
          if (build) delete build.retiring;
        })
        .catch((err: unknown) => deps.logger.warn({ app, buildId, err: oneLine(err) }, 'could not record the end of the drain'));
    });

    const release: Release = {
      version,
      image,
      buildId,
      commit: rev,
      configHash: hashConfig(record.config),
      processTypes,
      defaultConfig: result.configVars,
      createdAt: new Date().toISOString(),
      by: req.pusher,
      description: `deploy ${rev.slice(0, 7)}`,
      config: record.config,
      ...(healthchecks.length > 0 ? { healthchecks } : {}),
    };
    const durationMs = Date.now() - started;
    await deps.apps.update(app, (a) => {
      a.releases.push(release);
      a.current = version;
      a.formation = formation;
      finishBuild(a.builds, buildId, { status: 'succeeded', durationMs, buildpacks: buildpackNames, error: null });
      // `builds:log --follow` goes on until the old processes are gone (cleared above, or by recovery).
      const build = a.builds.find((b) => b.id === buildId);
      if (build) build.retiring = true;
    });
    const { httpPort, domain } = deps.config;
    say(header(`Deployed ${app} v${version} in ${(durationMs / 1000).toFixed(1)} s`));
    if (processTypes.web) say(`       http://${app}.${domain}:${httpPort}/\n`);
    await pruneReleaseImages({ docker: deps.docker, apps: deps.apps, app, keep: deps.config.keepReleases, progress: (line) => say(`       ${line}\n`) }).catch(
      (err: unknown) => deps.logger.warn({ app, err: oneLine(err) }, 'pruning release images failed'),
    );
    return release;
  } catch (err) {
    // The image of a release that never went live only takes space (and would lose its tag to
    // the next build of the same version): remove it; the dependency image stays for the retry.
    if (pendingVersion !== null) {
      await deps.docker
        .getImage(releaseImageRef(app, pendingVersion))
        .remove()
        .catch(() => undefined);
    }
    const message = oneLine(err);
    say(`\n !     ${message}\n`);
    say(' !     The push was refused; the running release is unchanged.\n');
    await deps.apps
      .update(app, (a) => finishBuild(a.builds, buildId, { status: 'failed', durationMs: Date.now() - started, buildpacks: buildpackNames, error: message }))
      .catch(() => undefined);
    throw err;
  } finally {
    returned = true;
    settled();
    const closeLog = () => logStream.end();
    if (retiring) void retiring.finally(closeLog);
    else closeLog();
    await fs.rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** app.json's web health checks and Slipway settings, validated; defaults when the app has no app.json. */
async function readAppSettings(appDir: string): Promise<AppSettings> {
  // Read without following links: a pushed or built tree is not the host (core/safe-read.ts).
  const text = await readFileUnder(appDir, 'app.json', { maxBytes: 1024 * 1024, what: 'app.json' });
  return text === null ? { healthchecks: [], readonly: false } : parseAppSettings(text);
}

function finishBuild(
  builds: { id: string; status: string; finishedAt: string | null; durationMs: number | null; buildpacks: string[]; error: string | null }[],
  id: string,
  result: { status: 'succeeded' | 'failed'; durationMs: number; buildpacks: string[]; error: string | null },
): void {
  const build = builds.find((b) => b.id === id);
  if (!build) return;
  Object.assign(build, result, { finishedAt: new Date().toISOString() });
}

export function hashConfig(config: Record<string, string>): string {
  const sorted = Object.keys(config).sort().map((k) => [k, config[k]]);
  return crypto.createHash('sha256').update(JSON.stringify(sorted)).digest('hex').slice(0, 12);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
