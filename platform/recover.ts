import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import type { RouteBook } from '../router/route-book.js';
import { currentRelease, type AppStore, type AppRecord } from '../core/store.js';
import { buildLogPath } from '../core/build-logs.js';
import { BUILD_APP_LABEL } from '../runtime/labels.js';
import { listAppContainers, startProcess, stopAndRemove } from '../runtime/containers.js';
import { desiredCounts } from '../runtime/formation.js';
import { currentUpstreams, liveContainer, planReconcile, type ReconcileAction } from '../runtime/reconcile.js';

export const INTERRUPTED = 'interrupted: the daemon stopped during this build; push again';

export interface RecoverDeps {
  docker: Dockerode;
  apps: AppStore;
  routes: RouteBook;
  paths: Paths;
  logger: Logger;
  graceSeconds: number;
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
  await clearTmp(d);
  const starts: { app: AppRecord; action: Extract<ReconcileAction, { kind: 'start' }> }[] = [];
  for (const app of apps) {
    if (app.builds.some((b) => b.status === 'running')) await markInterrupted(d, app.name);
    const release = currentRelease(app);
    const counts = release ? desiredCounts(release.processTypes, app.formation) : new Map<string, number>();
    const plan = planReconcile({ app: app.name, current: app.current, counts, containers: (await listAppContainers(d.docker, app.name)).map(liveContainer) });
    for (const action of plan) {
      try {
        if (action.kind === 'remove') {
          d.progress(`-----> ${app.name}: removing ${action.name} (${action.why})`);
          await stopAndRemove(d.docker, action.id, d.graceSeconds);
        } else if (action.kind === 'rename') {
          d.progress(`-----> ${app.name}: ${action.from} serves again as ${action.to}`);
          await d.docker.getContainer(action.id).rename({ name: action.to });
        } else {
          starts.push({ app, action });
        }
      } catch (err) {
        d.logger.error({ app: app.name, action, err: oneLine(err) }, 'reconcile step failed');
      }
    }
  }

  // Route what runs now; containers started below join once they answer (the route keeper).
  const table: Record<string, string[]> = {};
  for (const app of apps) table[app.name] = currentUpstreams(app.name, app.current, (await listAppContainers(d.docker, app.name)).map(liveContainer));
  await d.routes.replace(table, d.routes.table.git);
  d.logger.info({ apps: apps.length, routed: Object.values(table).filter((u) => u.length > 0).length }, 'adopted running apps');

  for (const { app, action } of starts) {
    const release = currentRelease(app)!;
    d.progress(`-----> ${app.name}: starting missing ${action.name}`);
    try {
      await startProcess(d.docker, {
        app: app.name,
        type: action.type,
        index: action.index,
        image: release.image,
        release: release.version,
        command: release.processTypes[action.type] ?? '',
        env: { ...release.defaultConfig, ...app.config },
        web: action.type === 'web',
        // The same limits as a deploy would give it: a restart must not lift them.
        ...(app.limits?.memory ? { memory: app.limits.memory } : {}),
        ...(app.limits?.cpus ? { cpus: app.limits.cpus } : {}),
      });
    } catch (err) {
      d.logger.error({ app: app.name, container: action.name, err: oneLine(err) }, 'could not start a missing container');
      d.progress(` !     ${app.name}: could not start ${action.name}: ${oneLine(err)}`);
    }
  }
}

/** Build work dirs of a dead daemon: nothing can use them any more. Left over is not fatal. */
async function clearTmp(d: RecoverDeps): Promise<void> {
  for (const entry of await fs.readdir(d.paths.tmpDir).catch(() => [] as string[])) {
    d.progress(`-----> removing ${entry} left in ${d.paths.tmpDir}`);
    await fs
      .rm(path.join(d.paths.tmpDir, entry), { recursive: true, force: true, maxRetries: 3 })
      .catch((err: unknown) => d.logger.warn({ entry, err: oneLine(err) }, 'could not clear a temp dir; remove it by hand'));
  }
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
