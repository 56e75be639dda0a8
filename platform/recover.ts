import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import type { RouteBook } from '../router/route-book.js';
import type { AppStore } from '../core/store.js';
import { buildLogPath } from '../core/build-logs.js';
import { removeStaleUnpacks } from '../buildpacks/runtimes.js';
import { removeLeftoverLayerContainers } from '../runtime/images.js';
import { BUILD_APP_LABEL } from '../runtime/labels.js';
import { stopAndRemove } from '../runtime/containers.js';
import type { Scheduler } from '../runtime/scheduler.js';

export const INTERRUPTED = 'interrupted: the daemon stopped during this build; push again';
export const DRAIN_INTERRUPTED = 'the daemon stopped while the replaced processes drained; its next start removed what was left of them';

export interface RecoverDeps {
  /** Build containers only (a builder's); app processes are the scheduler's. */
  docker: Dockerode;
  scheduler: Scheduler;
  apps: AppStore;
  routes: RouteBook;
  paths: Paths;
  logger: Logger;
  progress: (line: string) => void;
}

/**
 * What a daemon does when it starts, whatever stopped the last one (SIGTERM, kill -9, a power
 * cut): forget half-done builds, then bring every app's containers back to its stored state
 * without restarting what already serves, and route what runs. Nothing here trusts memory of
 * the previous process; it all comes from the state files and Docker's labels.
 */
export async function recover(d: RecoverDeps): Promise<void> {
  const apps = await d.apps.list();
  // Build containers first: one still running keeps writing into its work dir under tmp.
  await removeOrphanBuilds(d, new Set(apps.map((a) => a.name)));
  // A daemon killed while committing a layer leaves its never-started container (runtime/images.ts).
  const layers = await removeLeftoverLayerContainers(d.docker).catch((err: unknown) => {
    d.logger.warn({ err: oneLine(err) }, 'could not remove the containers of interrupted image commits');
    return [];
  });
  for (const name of layers) d.progress(`-----> removed ${name}, left by an interrupted image commit`);
  await clearTmp(d);
  for (const app of apps) {
    if (app.builds.some((b) => b.status === 'running')) await markInterrupted(d, app.name);
    if (app.builds.some((b) => b.retiring)) await markDrainInterrupted(d, app.name);
  }
  await d.scheduler.reconcile(apps, {
    progress: d.progress,
    onAdopted: async (table) => {
      await d.routes.replace(table);
      d.logger.info({ apps: apps.length, routed: Object.values(table).filter((u) => u.length > 0).length }, 'adopted running apps');
    },
  });
}

/** Build work dirs of a dead daemon: nothing can use them any more. Left over is not fatal. */
async function clearTmp(d: RecoverDeps): Promise<void> {
  for (const entry of await fs.readdir(d.paths.tmpDir).catch(() => [] as string[])) {
    d.progress(`-----> removing ${entry} left in ${d.paths.tmpDir}`);
    await fs
      .rm(path.join(d.paths.tmpDir, entry), { recursive: true, force: true, maxRetries: 3 })
      .catch((err: unknown) => d.logger.warn({ entry, err: oneLine(err) }, 'could not clear a temp dir; remove it by hand'));
  }
  // Runtimes unpack beside their final folder (one rename away); a crash mid-unpack leaves this.
  await removeStaleUnpacks(d.paths.runtimesDir).catch((err: unknown) => d.logger.warn({ err: oneLine(err) }, 'could not clear unfinished runtime unpacks'));
}

async function removeOrphanBuilds(d: RecoverDeps, apps: Set<string>): Promise<void> {
  const builds = await d.docker.listContainers({ all: true, filters: { label: [BUILD_APP_LABEL] } });
  for (const c of builds) {
    const app = c.Labels[BUILD_APP_LABEL] ?? '';
    if (!apps.has(app)) continue; // another platform's, on a shared engine
    d.progress(`-----> ${app}: removing the container of an interrupted build`);
    await stopAndRemove(d.docker, c.Id, 0).catch((err: unknown) => d.logger.warn({ app, err: oneLine(err) }, 'could not remove a build container'));
  }
}

async function markInterrupted(d: RecoverDeps, app: string): Promise<void> {
  const ids: string[] = [];
  await d.apps.update(app, (a) => {
    for (const b of a.builds) {
      if (b.status !== 'running') continue;
      Object.assign(b, { status: 'failed', finishedAt: new Date().toISOString(), error: INTERRUPTED });
      ids.push(b.id);
    }
  });
  for (const id of ids) {
    d.progress(`-----> ${app}: build ${id} was interrupted`);
    await fs.appendFile(buildLogPath(d.paths, app, id), `\n !     ${INTERRUPTED}\n`).catch(() => undefined);
  }
}

/**
 * A deploy whose old processes were still draining when the daemon stopped: they are aside
 * (`.old-`), and the scheduler's reconcile below removes them; the build's log says so.
 */
async function markDrainInterrupted(d: RecoverDeps, app: string): Promise<void> {
  const ids: string[] = [];
  await d.apps.update(app, (a) => {
    for (const b of a.builds) {
      if (!b.retiring) continue;
      delete b.retiring;
      ids.push(b.id);
    }
  });
  for (const id of ids) await fs.appendFile(buildLogPath(d.paths, app, id), `\n       ${DRAIN_INTERRUPTED}\n`).catch(() => undefined);
}
