import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  LABELS,
  containerName,
  listAppContainers,
  startProcess,
  stopAndRemove,
  upstreamOf,
  waitHealthy,
  type ContainerSummary,
} from './containers.js';
import type { HealthCheck } from '../core/store.js';
import { runHealthChecks, startupChecks } from './healthchecks.js';
import { processSpec, type SpecApp, type SpecRelease } from './process-spec.js';
import type { DeployPhase, Retired } from './scheduler.js';

export { removeApp } from './containers.js';

export interface FormationOptions {
  docker: Dockerode;
  /** The app (its name, config and `ps:set` limits) and the release to run: `processSpec` makes each container's spec from them. */
  app: SpecApp;
  release: SpecRelease;
  formation: Record<string, number>;
  settleMs: number;
  healthTimeoutMs: number;
  drainMs: number;
  graceSeconds: number;
  onRoutes: (upstreams: string[]) => Promise<void>;
  progress: (line: string) => void;
  logger: Logger;
  /** Added to every container's labels (tests mark theirs). */
  labels?: Record<string, string>;
  /** app.json web checks: new web containers must pass them before they take traffic. */
  healthchecks?: readonly HealthCheck[];
  /** Replace only this process type and leave the others alone (`ps:restart <app> <type>`). */
  only?: string;
  /** Told as each step of the web switch ends (the push log times them). */
  phase?: (phase: DeployPhase) => void;
  /** Told each new container's id before it starts (the scheduler marks it `starting`). */
  onCreated?: (id: string) => void;
}

const TYPE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/**
 * How many containers of each type the release runs. `release` is a one-off run by the deploy
 * before this point, never a long-running process. Web defaults to one when the formation does
 * not say; other types to zero (Heroku's and Dokku's default).
 */
export function desiredCounts(processTypes: Record<string, string>, formation: Record<string, number>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of Object.keys(processTypes).sort()) {
    if (type === 'release') continue;
    if (!TYPE_NAME.test(type)) throw new SlipwayError('E_PROCFILE', `invalid process type name ${JSON.stringify(type)}`);
    const n = formation[type] ?? (type === 'web' ? 1 : 0);
    if (!Number.isInteger(n) || n < 0) throw new SlipwayError('E_DEPLOY', `invalid scale ${type}=${n}`);
    if (n > 0) counts.set(type, n);
  }
  return counts;
}

interface Old {
  id: string;
  /** The canonical name it had before being moved aside, or null if it had none. */
  canonical: string | null;
}

const nameOf = (c: ContainerSummary): string => (c.Names[0] ?? '').replace(/^\//, '');

/** Old containers a deploy replaced: moved aside, no longer routed, still to drain and stop. */
interface Retiring {
  type: string;
  containers: ContainerSummary[];
}

/**
 * Replaces the app's containers with the release's. Web goes first and without downtime: the
 * old containers are renamed aside (so the canonical names are free) but keep serving until
 * the new ones are healthy and routed; any failure before the switch restores them and throws.
 * Returns once every new process runs and web is routed; `retired` settles when the replaced
 * containers have drained (`drainMs`, web only) and stopped, and never rejects: the caller
 * decides whether to wait for it (a push does not: README "Releases, scaling and zero downtime").
 */
export async function deployFormation(o: FormationOptions): Promise<{ upstreams: string[]; retired: Promise<Retired> }> {
  const counts = desiredCounts(o.release.processTypes, o.formation);
  const byType = new Map<string, ContainerSummary[]>();
  for (const c of await listAppContainers(o.docker, o.app.name)) {
    const type = c.Labels[LABELS.type] ?? '';
    byType.set(type, [...(byType.get(type) ?? []), c]);
  }

  const retiring: Retiring[] = [];
  if (o.only !== undefined) {
    const type = o.only;
    const upstreams = await replaceType(o, type, counts.get(type) ?? 0, byType.get(type) ?? []);
    retiring.push({ type, containers: byType.get(type) ?? [] });
    return { upstreams, retired: retire(o, retiring) };
  }
  const upstreams = await replaceType(o, 'web', counts.get('web') ?? 0, byType.get('web') ?? []);
  retiring.push({ type: 'web', containers: byType.get('web') ?? [] });

  const failures: string[] = [];
  for (const [type, n] of counts) {
    if (type === 'web') continue;
    try {
      await replaceType(o, type, n, byType.get(type) ?? []);
      retiring.push({ type, containers: byType.get(type) ?? [] });
    } catch (err) {
      failures.push(`${type}: ${(err as Error).message}`);
    }
  }
  for (const [type, containers] of byType) {
    if (type === 'web' || counts.has(type)) continue;
    o.progress(`Stopping ${type} (no longer in the formation)`);
    retiring.push({ type, containers });
  }
  const retired = retire(o, retiring);
  if (failures.length > 0) {
    // A failed deploy is not in a hurry: what it replaced is gone before it reports.
    await retired;
    throw new SlipwayError('E_DEPLOY', `v${o.release.version} is live for web, but some processes did not start: ${failures.join('; ')}`);
  }
  return { upstreams, retired };
}

/**
 * Drains and stops the containers a deploy replaced: old web containers keep serving the requests
 * already sent to them for `drainMs` after the switch, then every replaced container gets SIGTERM
 * (SIGKILL after `graceSeconds`). Never rejects: what could not be stopped is in the outcome (and
 * the next daemon start removes it: runtime/reconcile.ts).
 */
async function retire(o: FormationOptions, retiring: Retiring[]): Promise<Retired> {
  const started = performance.now();
  const stopped: string[] = [];
  const failed: string[] = [];
  const all = retiring.flatMap((r) => r.containers.map((c) => ({ type: r.type, c })));
  const web = all.some((x) => x.type === 'web');
  if (web && o.drainMs > 0) await sleep(o.drainMs);
  await Promise.all(
    all.map(async ({ c }) => {
      const name = `${nameOf(c)} (v${c.Labels[LABELS.release] ?? '?'})`;
      try {
        await stopAndRemove(o.docker, c.Id, o.graceSeconds);
        stopped.push(name);
      } catch (err) {
        o.logger.error({ app: o.app.name, id: c.Id, err: (err as Error).message }, 'could not stop a replaced container');
        failed.push(`${name}: ${(err as Error).message}`);
      }
    }),
  );
  if (web) o.phase?.('old drained');
  o.logger.info({ app: o.app.name, release: o.release.version, stopped: stopped.length, failed: failed.length }, 'replaced processes retired');
  return { stopped: stopped.sort(), failed, ms: Math.round(performance.now() - started) };
}

async function replaceType(o: FormationOptions, type: string, n: number, old: ContainerSummary[]): Promise<string[]> {
  const web = type === 'web';
  const app = o.app.name;
  const version = o.release.version;
  const aside = await moveAside(o, old);
  const fresh: { id: string; name: string; hostPort: number | null }[] = [];
  let upstreams: string[] = [];
  try {
    for (let index = 1; index <= n; index++) {
      fresh.push(await startProcess(o.docker, processSpec(o.app, o.release, type, index, o.labels), o.onCreated ? { onCreated: o.onCreated } : {}));
      o.progress(`Started ${containerName(app, type, index)}`);
    }
    if (web) {
      o.phase?.('start');
      await webReady(o, fresh);
      o.phase?.('healthy');
      upstreams = fresh.map((f) => upstreamOf(f.hostPort!));
      await o.onRoutes(upstreams);
      o.phase?.('routed');
    }
  } catch (err) {
    o.logger.warn({ app, type, release: version, err: (err as Error).message }, 'rolling back process type');
    await Promise.all(fresh.map((f) => stopAndRemove(o.docker, f.id, 0).catch(() => {})));
    await restore(o, aside);
    if (web && old.length > 0) o.progress(`v${version} did not go live; the previous release keeps serving`);
    throw err;
  }
  o.logger.info({ app, type, release: version, count: n, replaced: old.length }, 'process type deployed');
  return upstreams;
}

/** Frees the canonical names; containers left aside by an interrupted deploy stay as they are. */
async function moveAside(o: FormationOptions, old: ContainerSummary[]): Promise<Old[]> {
  const moved: Old[] = [];
  try {
    for (const c of old) {
      const name = nameOf(c);
      if (name.includes('.old-')) {
        moved.push({ id: c.Id, canonical: null });
        continue;
      }
      await o.docker.getContainer(c.Id).rename({ name: `${name}.old-${c.Id.slice(0, 12)}` });
      moved.push({ id: c.Id, canonical: name });
    }
  } catch (err) {
    await restore(o, moved);
    throw new SlipwayError('E_DOCKER', `renaming old containers of ${o.app.name} failed: ${(err as Error).message}`, { cause: err });
  }
  return moved;
}

async function restore(o: FormationOptions, moved: Old[]): Promise<void> {
  for (const m of moved) {
    if (m.canonical === null) continue;
    try {
      await o.docker.getContainer(m.id).rename({ name: m.canonical });
    } catch (err) {
      // It keeps running under its aside name; the next deploy picks it up by label.
      o.logger.error({ app: o.app.name, id: m.id, name: m.canonical, err: (err as Error).message }, 'could not restore container name');
    }
  }
}

/**
 * Waits for every new web container: its port answers and it stays up, until app.json's startup
 * checks pass when it has some (the app says when it is ready), else for the settle time. The
 * first failure cancels the other waits.
 */
export async function webReady(
  o: Pick<FormationOptions, 'docker' | 'settleMs' | 'healthTimeoutMs' | 'healthchecks' | 'progress'>,
  fresh: { id: string; name?: string; hostPort: number | null }[],
): Promise<void> {
  const stop = new AbortController();
  const checks = startupChecks(o.healthchecks ?? []);
  try {
    await Promise.all(
      fresh.map((f) => {
        const hostPort = f.hostPort;
        const ready =
          checks.length === 0 || hostPort === null
            ? {}
            : { ready: (signal: AbortSignal) => runHealthChecks({ hostPort, container: f.name ?? f.id.slice(0, 12), checks, progress: o.progress, signal }) };
        return waitHealthy({ docker: o.docker, id: f.id, hostPort, settleMs: o.settleMs, timeoutMs: o.healthTimeoutMs, signal: stop.signal, ...ready }).catch(
          (err: unknown) => {
            stop.abort();
            throw err;
          },
        );
      }),
    );
  } finally {
    stop.abort();
  }
}
