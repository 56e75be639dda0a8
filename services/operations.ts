import type Dockerode from 'dockerode';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { RouteBook } from '../router/route-book.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentRelease, nextReleaseVersion, type AppRecord, type AppStore, type Limits, type Release, type SchedulerName } from '../core/store.js';
import { desiredCounts } from '../runtime/formation.js';
import { imageExists, pruneReleaseImages, removeReleaseTag, tagReleaseImage } from '../runtime/release-images.js';
import type { Scheduler } from '../runtime/scheduler.js';
import { schedulerOf } from '../runtime/schedulers.js';
import { header } from '../buildpacks/output.js';
import { hashConfig } from '../hooks/deploy.js';
import type { AppQueues } from '../hooks/push.js';

export interface OperationsDeps {
  /** Release images only (tag, prune); app processes go through `scheduler`. */
  docker: Dockerode;
  scheduler: Scheduler;
  /** One scheduler by name, for moving an app between them (`scheduler:set`). */
  schedulerNamed: (name: SchedulerName) => Scheduler;
  config: Config;
  apps: AppStore;
  routes: RouteBook;
  queues: AppQueues;
  logger: Logger;
  /** The config a rollback gets: the old release's, with the app's current service links (services/service-manager.ts). */
  keepLinks?: (app: string, config: Readonly<Record<string, string>>) => Record<string, string>;
}

export type Progress = (line: string) => void;

/** What a config change did: the release it made (null before the first deploy) and whether it restarted. */
export interface ConfigOutcome {
  release: number | null;
  restarted: boolean;
  changed: string[];
}


/**
 * Config, formation, restarts and releases of deployed apps. Every operation runs in the app's
 * queue, the same one pushes use, so a scale during a deploy waits its turn; state is written
 * only after the containers did what was asked, so a failure leaves the app as it was.
 */
export class Operations {
  readonly #d: OperationsDeps;

  constructor(deps: OperationsDeps) {
    this.#d = deps;
  }

  async setConfig(app: string, change: { set: Record<string, string>; unset: string[] }, o: { restart: boolean; actor: string; progress: Progress }): Promise<ConfigOutcome> {
    return this.#queued(app, o.progress, async () => {
      const record = await this.#d.apps.get(app);
      const config = { ...record.config, ...change.set };
      for (const k of change.unset) delete config[k];
      const changed = [...Object.keys(change.set).filter((k) => record.config[k] !== change.set[k]), ...change.unset.filter((k) => k in record.config)];
      if (changed.length === 0) return { release: record.current, restarted: false, changed };
      const current = currentRelease(record);
      if (!current) {
        await this.#d.apps.update(app, (a) => {
          a.config = config;
        });
        o.progress(header('Config stored; it applies at the first deploy'));
        return { release: null, restarted: false, changed };
      }
      const what = Object.keys(change.set).length > 0 ? `config set ${Object.keys(change.set).join(', ')}` : `config unset ${change.unset.join(', ')}`;
      const release = await this.#newRelease(record, current, { config, actor: o.actor, description: what });
      const restarted = o.restart && (await this.#d.scheduler.hasProcesses(app));
      if (restarted) await this.#roll(record, release, o.progress, {}, () => removeReleaseTag(this.#d.docker, release.image));
      await this.#record(app, release, { config });
      o.progress(header(`Released v${release.version} (${what})${restarted ? '' : o.restart ? '; no containers run: it applies at `ps:start`' : '; it applies at the next restart or deploy'}`));
      await this.#prune(app, o.progress);
      return { release: release.version, restarted, changed };
    });
  }

  async scale(app: string, wanted: Record<string, number>, progress: Progress): Promise<void> {
    await this.#queued(app, progress, async () => {
      const record = await this.#d.apps.get(app);
      const current = this.#deployed(record);
      const known = Object.keys(current.processTypes).filter((t) => t !== 'release');
      for (const type of Object.keys(wanted)) {
        if (!known.includes(type)) {
          throw new SlipwayError('E_SCALE', `${app} has no process type "${type}": its release v${current.version} has ${known.join(', ')}`);
        }
      }
      await this.#converge(record, current, new Map(Object.entries(wanted)), progress);
      await this.#d.apps.update(app, (a) => {
        a.formation = { ...a.formation, ...wanted };
      });
    });
  }

  async restart(app: string, type: string | undefined, progress: Progress): Promise<void> {
    await this.#queued(app, progress, async () => {
      const record = await this.#d.apps.get(app);
      const current = this.#deployed(record);
      if (type !== undefined && (type === 'release' || !(type in current.processTypes))) {
        throw new SlipwayError('E_SCALE', `${app} has no process type "${type}": its release v${current.version} has ${Object.keys(current.processTypes).filter((t) => t !== 'release').join(', ')}`);
      }
      progress(header(`Restarting ${type === undefined ? app : `${app} ${type}`} (v${current.version})`));
      await this.#roll(record, current, progress, type === undefined ? {} : { only: type });
    });
  }

  /** Stops every container; the formation stays, so `ps:start` brings the same scale back. */
  async stop(app: string, progress: Progress): Promise<void> {
    await this.#queued(app, progress, async () => {
      await this.#d.apps.get(app);
      await this.#d.routes.setApp(app, []);
      const count = (await this.#d.scheduler.processes(app)).length;
      progress(header(`Stopping ${count} container${count === 1 ? '' : 's'} of ${app}`));
      await this.#d.scheduler.stop(app);
    });
  }

  /** Starts what the formation wants and does not run; running containers are left alone. */
  async start(app: string, progress: Progress): Promise<void> {
    await this.#queued(app, progress, async () => {
      const record = await this.#d.apps.get(app);
      const current = this.#deployed(record);
      progress(header(`Starting ${app} (v${current.version})`));
      await this.#converge(record, current, desiredCounts(current.processTypes, record.formation), progress);
    });
  }

  async setLimits(app: string, change: { memory?: string | null; cpus?: number | null }, o: { restart: boolean; progress: Progress }): Promise<Limits> {
    if (change.cpus) {
      const available = await this.#d.scheduler.maxCpus();
      if (change.cpus > available) throw new SlipwayError('E_SCALE', `cpus=${change.cpus} is more than the ${available} CPUs Docker has: use at most ${available}`);
    }
    return this.#queued(app, o.progress, async () => {
      const record = await this.#d.apps.get(app);
      const limits: Limits = { ...record.limits };
      for (const key of ['memory', 'cpus'] as const) {
        if (change[key] === null) delete limits[key];
        else if (change[key] !== undefined) (limits as Record<string, unknown>)[key] = change[key];
      }
      const current = currentRelease(record);
      // Restart first, store after: limits that stop the app from starting are never kept.
      if (o.restart && current && (await this.#d.scheduler.hasProcesses(app))) {
        o.progress(header(`Restarting ${app} with the new limits`));
        await this.#roll({ ...record, limits }, current, o.progress);
      }
      await this.#d.apps.update(app, (a) => {
        a.limits = limits;
      });
      return limits;
    });
  }

  /**
   * Moves an app to another scheduler without downtime: the current release is deployed on the
   * new one and routed once healthy, then the old processes drain and go (README "Schedulers").
   * Stored only once the new scheduler serves, so a failed move leaves the app where it was.
   */
  async setScheduler(app: string, target: SchedulerName, progress: Progress): Promise<boolean> {
    const next = this.#d.schedulerNamed(target);
    return this.#queued(app, progress, async () => {
      const record = await this.#d.apps.get(app);
      const from = schedulerOf(record);
      if (from === target) {
        progress(header(`${app} already runs on ${target}`));
        return false;
      }
      const old = this.#d.schedulerNamed(from);
      const current = currentRelease(record);
      if (current && (await old.hasProcesses(app))) {
        progress(header(`Moving ${app} from ${from} to ${target} (v${current.version})`));
        await next.deploy({
          app: record,
          release: current,
          formation: record.formation,
          onRoutes: (upstreams) => this.#d.routes.setApp(app, upstreams),
          progress: (line) => progress(`       ${line}\n`),
        });
        await this.#d.apps.update(app, (a) => {
          a.scheduler = target;
        });
        // Requests already sent to the old processes finish before they go.
        await sleep(this.#d.config.drainMs);
        progress(header(`Removing ${app}'s processes from ${from}`));
        await old.removeApp(app);
      } else {
        await this.#d.apps.update(app, (a) => {
          a.scheduler = target;
        });
      }
      progress(header(`${app} runs on ${target}`));
      return true;
    });
  }

  async rollback(app: string, version: number, o: { actor: string; progress: Progress }): Promise<Release> {
    return this.#queued(app, o.progress, async () => {
      const record = await this.#d.apps.get(app);
      const target = record.releases.find((r) => r.version === version);
      if (!target) {
        throw new SlipwayError('E_RELEASE', `${app} has no release v${version}: see \`slipway releases ${app}\``);
      }
      if (target.imagePruned || !(await imageExists(this.#d.docker, target.image))) {
        const how = target.commit ? `push commit ${target.commit.slice(0, 7)} again` : 'deploy it again';
        throw new SlipwayError('E_RELEASE', `the image of ${app} v${version} was pruned (only the last ${this.#d.config.keepReleases} are kept): ${how}`);
      }
      // A rollback changes code and config, never links: those stay as they are now.
      const old = target.config ?? record.config;
      const config = this.#d.keepLinks ? this.#d.keepLinks(app, old) : old;
      o.progress(header(`Rolling back ${app} to v${version}`));
      const release = await this.#newRelease(record, target, { config, actor: o.actor, description: `rollback to v${version}` });
      await this.#roll({ ...record, config }, release, o.progress, {}, () => removeReleaseTag(this.#d.docker, release.image));
      await this.#record(app, release, { config });
      o.progress(header(`Released v${release.version} (rollback to v${version})`));
      await this.#prune(app, o.progress);
      return release;
    });
  }

  /** A new release from an existing one: same image (tagged anew), same types, the given config. */
  async #newRelease(record: AppRecord, from: Release, o: { config: Record<string, string>; actor: string; description: string }): Promise<Release> {
    const version = nextReleaseVersion(record);
    const image = await tagReleaseImage(this.#d.docker, from.image, record.name, version);
    const { imagePruned: _pruned, ...rest } = from;
    return {
      ...rest,
      version,
      image,
      config: o.config,
      configHash: hashConfig(o.config),
      createdAt: new Date().toISOString(),
      by: o.actor,
      description: o.description,
    };
  }

  async #record(app: string, release: Release, o: { config: Record<string, string> }): Promise<void> {
    await this.#d.apps.update(app, (a) => {
      a.releases.push(release);
      a.current = release.version;
      a.config = o.config;
    });
  }

  /** Replaces the app's containers with `release`'s, web without downtime (the scheduler's `deploy`). */
  async #roll(record: AppRecord, release: Release, progress: Progress, extra: { only?: string } = {}, undo?: () => Promise<unknown>): Promise<void> {
    try {
      await this.#d.scheduler.deploy({
        app: record,
        release,
        formation: record.formation,
        onRoutes: (upstreams) => this.#d.routes.setApp(record.name, upstreams),
        progress: (line) => progress(`       ${line}\n`),
        ...extra,
      });
    } catch (err) {
      await undo?.().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Starts and stops only the difference between what runs and `wanted` (numbered 1..n per
   * type). New web containers take traffic once healthy; removed ones leave the routes first.
   */
  async #converge(record: AppRecord, release: Release, wanted: ReadonlyMap<string, number>, progress: Progress): Promise<void> {
    const app = record.name;
    const done = await this.#d.scheduler.scale({
      app: record,
      release,
      wanted,
      onRoutes: (upstreams) => this.#d.routes.setApp(app, upstreams),
      progress: (line) => progress(`       ${line}\n`),
    });
    const counts = [...wanted].map(([t, n]) => `${t}=${n}`).join(' ');
    progress(header(`${app} now runs ${counts || 'nothing'} (${done.started} started, ${done.stopped} stopped, ${done.untouched} untouched)`));
  }

  #deployed(record: AppRecord): Release {
    const current = currentRelease(record);
    if (!current) throw new SlipwayError('E_STATE', `${record.name} has not been deployed yet: git push it first`);
    return current;
  }

  async #prune(app: string, progress: Progress): Promise<void> {
    try {
      await pruneReleaseImages({ docker: this.#d.docker, apps: this.#d.apps, app, keep: this.#d.config.keepReleases, progress: (l) => progress(`       ${l}\n`) });
    } catch (err) {
      // Pruning saves disk; failing at it must not fail the change that already went live.
      this.#d.logger.warn({ app, err: (err as Error).message }, 'pruning release images failed');
    }
  }

  /** Runs in the app's queue; says so when an earlier deploy or operation holds it. */
  #queued<T>(app: string, progress: Progress, task: () => Promise<T>): Promise<T> {
    const waiting = setTimeout(() => progress(header(`Waiting for an earlier deploy or change of ${app} to finish`)), 500);
    return this.#d.queues.run(app, async () => {
      clearTimeout(waiting);
      return task();
    });
  }
}
