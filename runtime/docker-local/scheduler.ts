import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { oneLine } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { formatMemory } from '../../core/units.js';
import { currentRelease, type AppRecord } from '../../core/store.js';
import { streamAppLogs } from '../app-logs.js';
import {
  LABELS,
  containerName,
  hostPortOf,
  listAppContainers,
  probePort,
  removeApp,
  startProcess,
  stopAndRemove,
  upstreamOf,
  type ContainerSummary,
} from '../containers.js';
import { ContainerEvents } from '../events.js';
import { deployFormation, desiredCounts, webReady } from '../formation.js';
import { removeAppNetwork } from '../networks.js';
import { runReleaseCommand } from '../oneoff.js';
import { processSpec } from '../process-spec.js';
import { currentUpstreams, liveContainer, planReconcile, type ReconcileAction } from '../reconcile.js';
import { planScale, type Running } from '../scale-plan.js';
import type { Deployed, DeployRequest, LogsRequest, OneOffRequest, ProcessEvents, ProcessInfo, ScaleOutcome, ScaleRequest, Scheduler } from '../scheduler.js';

export interface DockerLocalOptions {
  /** This instance's view of the engine (runtime/instance-engine.ts). */
  docker: Dockerode;
  logger: Logger;
  /** How long a new process must stay up after it answers. */
  settleMs: number;
  healthTimeoutMs: number;
  /** How long a removed web container keeps serving requests already sent to it. */
  drainMs: number;
  /** SIGTERM to SIGKILL. */
  graceSeconds: number;
}

const nameOf = (c: ContainerSummary): string => (c.Names[0] ?? '').replace(/^\//, '');
/** Containers an interrupted or running deploy moved aside are not part of the formation. */
const isAside = (name: string): boolean => name.includes('.old-');

/** The upstream of a listed web container: its loopback host port. */
function upstreamOfSummary(c: ContainerSummary): string | null {
  const port = liveContainer(c).hostPort;
  return port === null ? null : upstreamOf(port);
}

/** A listed container as the Scheduler reports it. Pure. */
export function processInfo(c: ContainerSummary): ProcessInfo {
  const live = liveContainer(c);
  return {
    id: live.id,
    name: live.name,
    app: c.Labels[LABELS.app] ?? '',
    type: c.Labels[LABELS.type] ?? '?',
    index: live.index,
    state: live.state,
    release: c.Labels[LABELS.release] ? Number(c.Labels[LABELS.release]) : null,
    upstream: upstreamOfSummary(c),
    retiring: isAside(live.name),
  };
}

/**
 * Today's behaviour behind the Scheduler seam: `<app>.<type>.<n>` containers on this machine's
 * engine, web ports on loopback (runtime/containers.ts), zero-downtime replacement by renaming
 * aside (runtime/formation.ts).
 */
export class DockerLocalScheduler implements Scheduler {
  readonly name = 'docker-local';
  readonly #o: DockerLocalOptions;
  /** Per app, the retirement (drain and stop) of what its last deploy replaced, while it runs. */
  readonly #retiring = new Map<string, Promise<unknown>>();
  /** Containers a running deploy or scale started and will route itself (ProcessInfo.starting). */
  readonly #starting = new Set<string>();

  constructor(o: DockerLocalOptions) {
    this.#o = o;
  }

  /**
   * A deploy or scale of an app waits until the containers its previous deploy replaced are
   * gone: they are aside (`.old-`), so the new work would not count them, but stopping them
   * twice at once, or a drain cut short, is what this rules out. Usually it is over long before
   * (a build takes longer than `drainMs`).
   */
  async #afterRetiring(app: string, progress: (line: string) => void): Promise<void> {
    const pending = this.#retiring.get(app);
    if (!pending) return;
    progress('Waiting for the containers of the previous deploy to drain');
    await pending;
  }

  async deploy(r: DeployRequest): Promise<Deployed> {
    const o = this.#o;
    const app = r.app.name;
    await this.#afterRetiring(app, r.progress);
    const started: string[] = [];
    const deployed = await deployFormation({
      docker: o.docker,
      app: r.app,
      release: r.release,
      formation: r.formation,
      settleMs: o.settleMs,
      healthTimeoutMs: o.healthTimeoutMs,
      drainMs: o.drainMs,
      graceSeconds: o.graceSeconds,
      onRoutes: r.onRoutes,
      progress: r.progress,
      ...(r.phase ? { phase: r.phase } : {}),
      logger: o.logger,
      ...(r.release.healthchecks && r.release.healthchecks.length > 0 ? { healthchecks: r.release.healthchecks } : {}),
      ...(r.only !== undefined ? { only: r.only } : {}),
      onCreated: (id) => this.#claim(started, id),
    }).finally(() => this.#release(started));
    const retired = deployed.retired;
    const tracked = retired.finally(() => {
      if (this.#retiring.get(app) === tracked) this.#retiring.delete(app);
    });
    this.#retiring.set(app, tracked);
    if (!r.background) await retired;
    return { upstreams: deployed.upstreams, retired };
  }

  #claim(claimed: string[], id: string): void {
    claimed.push(id);
    this.#starting.add(id);
  }

  #release(claimed: readonly string[]): void {
    for (const id of claimed) this.#starting.delete(id);
  }

  async scale(r: ScaleRequest): Promise<ScaleOutcome> {
    const { docker, settleMs, healthTimeoutMs, drainMs, graceSeconds } = this.#o;
    const app = r.app.name;
    await this.#afterRetiring(app, r.progress);
    const containers = (await listAppContainers(docker, app)).filter((c) => !isAside(nameOf(c)));
    const running: Running[] = containers.map((c) => ({ id: c.Id, type: c.Labels[LABELS.type] ?? '', index: Number(c.Labels[LABELS.index] ?? 0) }));
    const plan = planScale(running, r.wanted);
    const stoppingWeb = plan.stop.some((c) => c.type === 'web');
    const claimed: string[] = [];
    try {
      const fresh: { id: string; name: string; type: string; hostPort: number | null }[] = [];
      try {
        // Started side by side: scaling web 1 -> 10 should cost one container start, not ten.
        const results = await Promise.allSettled(
          plan.start.map(async (s) => {
            const started = await startProcess(docker, processSpec(r.app, r.release, s.type, s.index), { onCreated: (id) => this.#claim(claimed, id) });
            r.progress(`Started ${containerName(app, s.type, s.index)}`);
            return { ...started, type: s.type };
          }),
        );
        for (const x of results) if (x.status === 'fulfilled') fresh.push(x.value);
        const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
        if (failed) throw failed.reason;
        await webReady(
          { docker, settleMs, healthTimeoutMs, progress: r.progress, ...(r.release.healthchecks ? { healthchecks: r.release.healthchecks } : {}) },
          fresh.filter((f) => f.type === 'web'),
        );
      } catch (err) {
        await Promise.all(fresh.map((f) => stopAndRemove(docker, f.id, 0).catch(() => {})));
        throw err;
      }
      if (r.wanted.has('web') || fresh.some((f) => f.type === 'web')) {
        const keptIds = new Set(plan.keep.map((k) => k.id));
        const kept = containers
          .filter((c) => keptIds.has(c.Id) && c.Labels[LABELS.type] === 'web' && c.State === 'running')
          .map(upstreamOfSummary)
          .filter((u): u is string => u !== null);
        const added = fresh.filter((f) => f.type === 'web' && f.hostPort !== null).map((f) => upstreamOf(f.hostPort!));
        await r.onRoutes([...new Set([...kept, ...added])]);
      }
    } finally {
      this.#release(claimed);
    }
    // Let requests already sent to a removed web container finish before it goes.
    if (stoppingWeb && drainMs > 0) await sleep(drainMs);
    for (const c of plan.stop) r.progress(`Stopping ${containerName(app, c.type, c.index)}`);
    await Promise.all(plan.stop.map((c) => stopAndRemove(docker, c.id, graceSeconds)));
    return { started: plan.start.length, stopped: plan.stop.length, untouched: plan.keep.length };
  }

  async stop(app: string): Promise<void> {
    const { docker, graceSeconds } = this.#o;
    const containers = await listAppContainers(docker, app);
    await Promise.all(containers.map((c) => stopAndRemove(docker, c.Id, graceSeconds)));
  }

  async processes(app?: string, o: { limits?: boolean } = {}): Promise<ProcessInfo[]> {
    const { docker } = this.#o;
    const list = await listAppContainers(docker, app);
    const host = o.limits ? await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect().then((i) => i.HostConfig, () => null))) : [];
    return list
      .map((c, i) => ({
        ...processInfo(c),
        ...(o.limits
          ? { memory: host[i]?.Memory ? formatMemory(host[i].Memory) : null, cpus: host[i]?.NanoCpus ? host[i].NanoCpus / 1e9 : null }
          : {}),
      }))
      .sort((a, b) => a.type.localeCompare(b.type) || a.index - b.index);
  }

  async process(id: string): Promise<ProcessInfo | null> {
    const info = await this.#o.docker
      .getContainer(id)
      .inspect()
      .catch(() => null);
    if (!info) return null;
    const labels = info.Config.Labels ?? {};
    const name = info.Name.replace(/^\//, '');
    const port = await hostPortOf(this.#o.docker, id).catch(() => null);
    const release = Number(labels[LABELS.release]);
    return {
      id,
      name,
      app: labels[LABELS.app] ?? '',
      type: labels[LABELS.type] ?? '?',
      index: Number(labels[LABELS.index] ?? 0),
      state: info.State.Status,
      release: Number.isInteger(release) && release > 0 ? release : null,
      upstream: port === null ? null : upstreamOf(port),
      retiring: isAside(name),
      starting: this.#starting.has(id),
    };
  }

  async hasProcesses(app: string): Promise<boolean> {
    return (await listAppContainers(this.#o.docker, app)).some((c) => !isAside(nameOf(c)));
  }

  async answers(upstream: string): Promise<boolean> {
    return probePort(Number(upstream.slice(upstream.lastIndexOf(':') + 1)));
  }

  async runReleasePhase(r: OneOffRequest): Promise<void> {
    await runReleaseCommand({ docker: this.#o.docker, ...r });
  }

  async logs(r: LogsRequest): Promise<void> {
    await streamAppLogs({ docker: this.#o.docker, ...r });
  }

  events(o: { onConnect: () => void }): ProcessEvents {
    return new ContainerEvents({ docker: this.#o.docker, logger: this.#o.logger, onConnect: o.onConnect });
  }

  async reconcile(apps: readonly AppRecord[], o: { onAdopted: (table: Record<string, string[]>) => Promise<void>; progress: (line: string) => void }): Promise<void> {
    const { docker, logger, graceSeconds } = this.#o;
    const starts: { app: AppRecord; action: Extract<ReconcileAction, { kind: 'start' }> }[] = [];
    for (const app of apps) {
      const release = currentRelease(app);
      const counts = release ? desiredCounts(release.processTypes, app.formation) : new Map<string, number>();
      const plan = planReconcile({ app: app.name, current: app.current, counts, containers: (await listAppContainers(docker, app.name)).map(liveContainer) });
      for (const action of plan) {
        try {
          if (action.kind === 'remove') {
            o.progress(`-----> ${app.name}: removing ${action.name} (${action.why})`);
            await stopAndRemove(docker, action.id, graceSeconds);
          } else if (action.kind === 'rename') {
            o.progress(`-----> ${app.name}: ${action.from} serves again as ${action.to}`);
            await docker.getContainer(action.id).rename({ name: action.to });
          } else {
            starts.push({ app, action });
          }
        } catch (err) {
          logger.error({ app: app.name, action, err: oneLine(err) }, 'reconcile step failed');
        }
      }
    }

    // Route what runs now; containers started below join once they answer (the route keeper).
    const table: Record<string, string[]> = {};
    for (const app of apps) table[app.name] = currentUpstreams(app.name, app.current, (await listAppContainers(docker, app.name)).map(liveContainer));
    await o.onAdopted(table);

    for (const { app, action } of starts) {
      o.progress(`-----> ${app.name}: starting missing ${action.name}`);
      try {
        // The same spec as a deploy would give it (limits included): a restart must not lift them.
        await startProcess(docker, processSpec(app, currentRelease(app)!, action.type, action.index));
      } catch (err) {
        logger.error({ app: app.name, container: action.name, err: oneLine(err) }, 'could not start a missing container');
        o.progress(` !     ${app.name}: could not start ${action.name}: ${oneLine(err)}`);
      }
    }
  }

  async removeApp(app: string): Promise<void> {
    await removeApp(this.#o.docker, app);
    await removeAppNetwork(this.#o.docker, app);
  }

  async maxCpus(): Promise<number> {
    return this.#o.docker.info().then((i: { NCPU?: number }) => i.NCPU ?? os.cpus().length);
  }
}
