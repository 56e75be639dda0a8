import os from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { SlipwayError, oneLine } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { formatMemory } from '../../core/units.js';
import { currentRelease, type AppRecord, type HealthCheck } from '../../core/store.js';
import { LABELS, demuxBuffer, probePort, upstreamOf } from '../containers.js';
import { desiredCounts } from '../formation.js';
import { inspectImageIsolation } from '../isolation.js';
import { engineInstance } from '../instance-engine.js';
import { instanceLabels } from '../labels.js';
import { LineSplitter, formatLine, mergeTail, type LogLine } from '../log-lines.js';
import { removeAppNetwork } from '../networks.js';
import { runReleaseCommand } from '../oneoff.js';
import { processSpec, type SpecApp, type SpecRelease } from '../process-spec.js';
import { NOTHING_RETIRED, type Deployed, type DeployRequest, type LogsRequest, type OneOffRequest, type ProcessEvents, type ProcessInfo, type ScaleOutcome, type ScaleRequest, type Scheduler } from '../scheduler.js';
import { pushToRegistry } from './registry.js';
import { parseServiceLine } from './service-logs.js';
import { TaskPoller } from './task-events.js';
import { TASK_LABELS, rolloutConfig, rolloutWaitMs, serviceName, serviceSpec } from './service-spec.js';

export interface DockerSwarmOptions {
  /** This instance's view of the engine, a swarm manager (runtime/instance-engine.ts). */
  docker: Dockerode;
  logger: Logger;
  /** The platform registry's address, started on first use (runtime/docker-swarm/registry.ts). */
  registry: () => Promise<string>;
  settleMs: number;
  healthTimeoutMs: number;
  graceSeconds: number;
}

interface Service {
  ID: string;
  Version: { Index: number };
  Spec: { Name: string; Labels?: Record<string, string>; Mode?: { Replicated?: { Replicas?: number } }; TaskTemplate?: { ForceUpdate?: number; Resources?: { Limits?: { MemoryBytes?: number; NanoCPUs?: number } } } } & Record<string, unknown>;
  UpdateStatus?: { State?: string; StartedAt?: string; Message?: string };
}

interface Task {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  DesiredState: string;
  CreatedAt?: string;
  Status: { State: string; Err?: string; Timestamp?: string; ContainerStatus?: { ContainerID?: string }; PortStatus?: { Ports?: { PublishedPort?: number }[] } };
  Spec: { ForceUpdate?: number; ContainerSpec?: { Labels?: Record<string, string> } };
}

/** The per-app overlay network the app's services share (like docker-local's bridge). */
export const overlayName = (app: string): string => `slipway-swarm-${app}`;

/** Node id -> the address its published ports are reached on. */
type Addrs = ReadonlyMap<string, string>;

/** Where the router reaches a web task: its node's address and the port published there. Pure. */
export function taskUpstream(t: Pick<Task, 'NodeID' | 'Status'>, addrs: Addrs): string | null {
  const port = t.Status.PortStatus?.Ports?.[0]?.PublishedPort;
  if (!port) return null;
  const addr = t.NodeID ? addrs.get(t.NodeID) : undefined;
  // This node (or one advertising no usable address): its ports are bound on every interface.
  return !addr || addr === '0.0.0.0' || addr === '127.0.0.1' ? upstreamOf(port) : `${addr}:${port}`;
}
const typeOf = (s: Service): string => s.Spec.Labels?.[LABELS.type] ?? '';
const replicasOf = (s: Service): number => s.Spec.Mode?.Replicated?.Replicas ?? 0;
const releaseOfTask = (t: Task): number | null => {
  const n = Number(t.Spec.ContainerSpec?.Labels?.[TASK_LABELS.release]);
  return Number.isInteger(n) && n > 0 ? n : null;
};
/** How often `logs --follow` looks for services created after it began. */
const FOLLOW_RELIST_MS = 2000;
const FAILED = new Set(['failed', 'rejected']);
/** Tasks that count in `ps`: wanted running, or still running while an update retires them. */
const shown = (t: Task): boolean => t.DesiredState === 'running' || t.Status.State === 'running';
const message = (err: unknown): string => (err as { json?: { message?: string } }).json?.message ?? (err as Error).message;

/**
 * The docker-swarm scheduler (README "Schedulers"): each process type is a swarm service
 * `<app>_<type>` of the release's registry image, replicas = scale, rolling updates that start
 * new tasks first and roll back when they fail their health checks. Each web task publishes
 * $PORT on its node and the router dials every running task, on any node.
 */
export class DockerSwarmScheduler implements Scheduler {
  readonly name = 'docker-swarm';
  readonly #o: DockerSwarmOptions;
  readonly #labels: Record<string, string>;

  constructor(o: DockerSwarmOptions) {
    this.#o = o;
    const id = engineInstance(o.docker);
    this.#labels = id === null ? {} : instanceLabels(id);
  }

  // The swarm drains and stops replaced tasks itself during the rolling update (start-first).
  async deploy(r: DeployRequest): Promise<Deployed> {
    const app = r.app.name;
    const counts = desiredCounts(r.release.processTypes, r.formation);
    const image = await this.#publish(r.release.image, r.progress);
    const existing = await this.#byType(app);
    const types = r.only !== undefined ? [r.only] : [...counts.keys()].sort((a, b) => (a === 'web' ? -1 : b === 'web' ? 1 : a.localeCompare(b)));
    let upstreams: string[] = [];
    for (const type of types) {
      const replicas = counts.get(type) ?? 0;
      if (replicas === 0) continue;
      const before = existing.get(type);
      // The same release again (ps:restart): nothing in the spec changes, so force new tasks.
      const force = before !== undefined && before.Spec.Labels?.[LABELS.release] === String(r.release.version);
      const svc = await this.#apply({ app: r.app, release: r.release, type, replicas, image, before, force, progress: r.progress, ...(type === 'web' ? { onRoutes: r.onRoutes } : {}) });
      if (type === 'web') {
        upstreams = await this.#routable(svc.ID);
        await r.onRoutes(upstreams);
      }
    }
    if (r.only === undefined) {
      if (!counts.has('web')) await r.onRoutes([]);
      for (const [type, svc] of existing) {
        if (counts.has(type)) continue;
        r.progress(`Removing service ${svc.Spec.Name}`);
        await this.#remove(svc);
      }
    }
    return { upstreams, retired: Promise.resolve(NOTHING_RETIRED) };
  }

  async scale(r: ScaleRequest): Promise<ScaleOutcome> {
    const existing = await this.#byType(r.app.name);
    const out = { started: 0, stopped: 0, untouched: 0 };
    let image: string | null = null;
    for (const [type, n] of r.wanted) {
      const before = existing.get(type);
      const had = before ? replicasOf(before) : 0;
      out.untouched += Math.min(had, n);
      out.started += Math.max(0, n - had);
      out.stopped += Math.max(0, had - n);
      let svc = before;
      if (before && had !== n) {
        r.progress(`Scaling ${before.Spec.Name} ${had} -> ${n}`);
        const spec = structuredClone(before.Spec);
        spec.Mode = { Replicated: { Replicas: n } };
        // Later updates batch by the new count (changing these restarts no task).
        Object.assign(spec, rolloutConfig(n, this.#o.settleMs));
        await this.#o.docker.getService(before.ID).update({ version: before.Version.Index, ...spec });
        await this.#converge(before.ID, { replicas: n, release: Number(before.Spec.Labels?.[LABELS.release]), force: before.Spec.TaskTemplate?.ForceUpdate ?? 0, previousUpdate: null, name: before.Spec.Name, ...(type === 'web' ? { onRoutes: r.onRoutes } : {}) });
      } else if (!before && n > 0) {
        image ??= await this.#publish(r.release.image, r.progress);
        svc = await this.#apply({ app: r.app, release: r.release, type, replicas: n, image, before: undefined, force: false, progress: r.progress });
      }
      if (type === 'web' && svc) await r.onRoutes(n > 0 ? await this.#routable(svc.ID) : []);
    }
    return out;
  }

  async stop(app: string): Promise<void> {
    for (const svc of (await this.#byType(app)).values()) await this.#remove(svc);
  }

  async processes(app?: string, o: { limits?: boolean } = {}): Promise<ProcessInfo[]> {
    const services = await this.#services(app);
    const addrs = services.length > 0 ? await this.#addrs() : new Map<string, string>();
    const out: ProcessInfo[] = [];
    for (const svc of services) {
      for (const t of (await this.#tasks(svc.ID)).filter(shown)) out.push(this.#info(svc, t, o.limits === true, addrs));
    }
    return out.sort((a, b) => a.app.localeCompare(b.app) || a.type.localeCompare(b.type) || a.index - b.index);
  }

  async process(id: string): Promise<ProcessInfo | null> {
    const task = (await this.#o.docker
      .getTask(id)
      .inspect()
      .catch(() => null)) as Task | null;
    if (!task) return null;
    const svc = (await this.#services()).find((s) => s.ID === task.ServiceID);
    return svc ? this.#info(svc, task, false, await this.#addrs()) : null;
  }

  async hasProcesses(app: string): Promise<boolean> {
    return (await this.#services(app)).some((s) => replicasOf(s) > 0);
  }

  async answers(upstream: string): Promise<boolean> {
    const colon = upstream.lastIndexOf(':');
    return probePort(Number(upstream.slice(colon + 1)), 250, upstream.slice(0, colon));
  }

  /**
   * A plain container on this manager, as docker-local runs it: the image was just built here,
   * so the release gate waits on no registry round trip, and its output, timeout and
   * cancellation are the ones users know (a one-off swarm job reports none of them as directly).
   */
  async runReleasePhase(r: OneOffRequest): Promise<void> {
    await runReleaseCommand({ docker: this.#o.docker, ...r });
  }

  /**
   * The services' logs (every task, on every node) merged by time; with `follow`, until aborted,
   * including services created meanwhile (a type scaled up from 0, `ps:start`), found by listing
   * the services every FOLLOW_RELIST_MS.
   */
  async logs(r: LogsRequest): Promise<void> {
    const matching = async () => (await this.#services(r.app)).filter((s) => r.type === undefined || typeOf(s) === r.type);
    const services = await matching();
    const slots = new Map<string, string>();
    const nameTasks = async (list: readonly Service[]) => {
      for (const s of list) for (const t of await this.#tasks(s.ID)) slots.set(t.ID, `${r.app}.${typeOf(s)}.${t.Slot ?? '?'}`);
    };
    await nameTasks(services);
    const history = await Promise.all(services.map((s) => this.#read(s, { tail: r.lines }, slots)));
    for (const line of mergeTail(history, r.lines)) r.write(formatLine(line));
    if (!r.follow || r.signal.aborted) return;
    const since = String(Math.floor(Date.now() / 1000));
    const streams = new Map<string, Readable>();
    const attach = async (s: Service) => {
      // Claimed before the request, so a re-list meanwhile does not attach it twice.
      streams.set(s.ID, new PassThrough());
      const raw = (await this.#o.docker
        .getService(s.ID)
        .logs({ stdout: true, stderr: true, timestamps: true, details: true, follow: true, since })
        .catch((err: unknown) => {
          streams.delete(s.ID);
          throw err;
        })) as unknown as Readable;
      if (r.signal.aborted) return void raw.destroy();
      streams.set(s.ID, raw);
      const out = new PassThrough();
      this.#o.docker.modem.demuxStream(raw, out, out);
      r.onStream?.(1);
      raw.once('close', () => r.onStream?.(-1));
      raw.on('error', () => raw.destroy());
      const splitter = new LineSplitter();
      out.on('data', (chunk: Buffer) => {
        for (const text of splitter.push(chunk)) {
          const line = parseServiceLine(text, slots, `${r.app}.${typeOf(s)}`);
          if (line.source.endsWith('.?')) void nameTasks([s]).catch(() => undefined);
          r.write(formatLine(line));
        }
      });
    };
    for (const s of services) await attach(s);
    // One look at a time: a slow engine must not attach a service twice.
    let looking = false;
    const relist = setInterval(() => {
      if (looking) return;
      looking = true;
      void (async () => {
        for (const s of await matching()) {
          if (streams.has(s.ID) || r.signal.aborted) continue;
          await nameTasks([s]);
          await attach(s);
        }
      })()
        .catch((err: unknown) => this.#o.logger.warn({ app: r.app, err: oneLine(err) }, 'could not look for new services to follow'))
        .finally(() => (looking = false));
    }, FOLLOW_RELIST_MS);
    await new Promise<void>((resolve) => {
      if (r.signal.aborted) resolve();
      else r.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(relist);
    for (const s of streams.values()) s.destroy();
  }

  /**
   * Task starts and ends, seen by listing the tasks every two seconds: the engine's event
   * stream has no task events, and tasks on other nodes leave no container events here. The
   * route keeper uses them to drop a dead task's upstream and route its replacement.
   */
  events(): ProcessEvents {
    return new TaskPoller(() => this.processes(), this.#o.logger);
  }

  /**
   * Services outlive the daemon and the swarm keeps their replicas: route what exists, then
   * create the services the records want and the engine lacks, and remove those it should not run.
   */
  async reconcile(apps: readonly AppRecord[], o: { onAdopted: (table: Record<string, string[]>) => Promise<void>; progress: (line: string) => void }): Promise<void> {
    const table: Record<string, string[]> = {};
    const missing: { app: AppRecord; type: string; replicas: number }[] = [];
    for (const app of apps) {
      const release = currentRelease(app);
      const counts = release ? desiredCounts(release.processTypes, app.formation) : new Map<string, number>();
      const existing = await this.#byType(app.name);
      const web = existing.get('web');
      table[app.name] = web && counts.has('web') ? await this.#routable(web.ID).catch(() => []) : [];
      for (const [type, svc] of existing) {
        if (counts.has(type)) continue;
        o.progress(`-----> ${app.name}: removing service ${svc.Spec.Name} (not in its formation)`);
        await this.#remove(svc).catch((err: unknown) => this.#o.logger.error({ app: app.name, err: oneLine(err) }, 'could not remove a service'));
      }
      for (const [type, replicas] of counts) if (!existing.has(type)) missing.push({ app, type, replicas });
    }
    await o.onAdopted(table);
    for (const m of missing) {
      o.progress(`-----> ${m.app.name}: creating missing service ${serviceName(m.app.name, m.type)}`);
      try {
        const release = currentRelease(m.app)!;
        const image = await this.#publish(release.image, () => {});
        await this.#create({ app: m.app, release, type: m.type, replicas: m.replicas, image });
      } catch (err) {
        this.#o.logger.error({ app: m.app.name, type: m.type, err: oneLine(err) }, 'could not create a missing service');
      }
    }
  }

  async removeApp(app: string): Promise<void> {
    await this.stop(app);
    // The overlay network and the images go once the tasks that used them are gone (the swarm
    // stops and removes task containers asynchronously).
    const deadline = Date.now() + 30_000;
    while ((await this.#o.docker.listContainers({ all: true, filters: { label: [`${TASK_LABELS.app}=${app}`] } })).length > 0 && Date.now() < deadline) await sleep(300);
    for (;;) {
      const nets = (await this.#o.docker.listNetworks({ filters: { name: [overlayName(app)] } })).filter((n) => n.Name === overlayName(app));
      if (nets.length === 0) break;
      try {
        for (const n of nets) await this.#o.docker.getNetwork(n.Id).remove();
        // A swarm network may stay listed a moment after its removal.
        await sleep(200);
      } catch (err) {
        if (Date.now() > deadline) throw new SlipwayError('E_DOCKER', `removing network ${overlayName(app)} failed: ${message(err)}`);
        await sleep(500);
      }
    }
    await removeAppNetwork(this.#o.docker, app);
    // The registry's names of the release images on this node; `slipway/<app>:vN` are the platform's.
    const images = await this.#o.docker.listImages({ filters: { label: [`${LABELS.app}=${app}`] } });
    for (const tag of images.flatMap((i) => i.RepoTags ?? []).filter((t) => t.includes(`/slipway/${app}:`))) {
      await this.#o.docker
        .getImage(tag)
        .remove()
        .catch((err: unknown) => this.#o.logger.warn({ app, tag, err: message(err) }, 'could not remove a registry image tag'));
    }
  }

  async maxCpus(): Promise<number> {
    return this.#o.docker.info().then((i: { NCPU?: number }) => i.NCPU ?? os.cpus().length);
  }

  async #publish(image: string, progress: (line: string) => void): Promise<string> {
    const registry = await this.#o.registry();
    progress(`Pushing ${image} to the platform registry (${registry})`);
    return pushToRegistry(this.#o.docker, registry, image);
  }

  async #services(app?: string): Promise<Service[]> {
    try {
      return (await this.#o.docker.listServices({ filters: { label: [app ? `${LABELS.app}=${app}` : LABELS.app] } })) as unknown as Service[];
    } catch (err) {
      // Not a swarm manager (503): it runs no services, so no app has processes here.
      if ((err as { statusCode?: number }).statusCode === 503) return [];
      throw err;
    }
  }

  async #byType(app: string): Promise<Map<string, Service>> {
    return new Map((await this.#services(app)).map((s) => [typeOf(s), s]));
  }

  async #tasks(serviceId: string): Promise<Task[]> {
    return (await this.#o.docker.listTasks({ filters: { service: [serviceId] } })) as Task[];
  }

  async #inspect(id: string): Promise<Service> {
    return (await this.#o.docker.getService(id).inspect()) as Service;
  }

  async #addrs(): Promise<Map<string, string>> {
    const nodes = (await this.#o.docker.listNodes().catch(() => [])) as { ID: string; Status?: { Addr?: string } }[];
    return new Map(nodes.map((n) => [n.ID, n.Status?.Addr ?? '']));
  }

  #info(svc: Service, t: Task, limits: boolean, addrs: Addrs): ProcessInfo {
    const app = svc.Spec.Labels?.[LABELS.app] ?? '';
    const type = typeOf(svc);
    const running = t.Status.State === 'running';
    const lim = svc.Spec.TaskTemplate?.Resources?.Limits;
    return {
      id: t.ID,
      name: `${app}.${type}.${t.Slot ?? 0}`,
      app,
      type,
      index: t.Slot ?? 0,
      state: t.Status.State,
      release: releaseOfTask(t),
      upstream: type === 'web' && running ? taskUpstream(t, addrs) : null,
      retiring: t.DesiredState !== 'running',
      ...(limits ? { memory: lim?.MemoryBytes ? formatMemory(lim.MemoryBytes) : null, cpus: lim?.NanoCPUs ? lim.NanoCPUs / 1e9 : null } : {}),
    };
  }

  async #network(app: string): Promise<string> {
    const name = overlayName(app);
    const found = (await this.#o.docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name);
    if (found) return found.Id;
    try {
      const net = await this.#o.docker.createNetwork({ Name: name, Driver: 'overlay', Attachable: false, CheckDuplicate: true, Labels: { [LABELS.app]: app } });
      return net.id;
    } catch (err) {
      // Created by a concurrent call: use that one.
      const again = (await this.#o.docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name);
      if (again) return again.Id;
      throw new SlipwayError('E_DOCKER', `creating network ${name} failed: ${message(err)}`, { cause: err });
    }
  }

  async #specFor(o: { app: SpecApp; release: SpecRelease & { healthchecks?: readonly HealthCheck[] | undefined }; type: string; replicas: number; image: string; forceUpdate?: number }) {
    return serviceSpec({
      spec: processSpec(o.app, o.release, o.type, 1),
      image: o.image,
      replicas: o.replicas,
      isolation: await inspectImageIsolation(this.#o.docker, o.release.image),
      network: await this.#network(o.app.name),
      instanceLabels: this.#labels,
      healthchecks: o.release.healthchecks ?? [],
      startPeriodMs: this.#o.healthTimeoutMs,
      monitorMs: this.#o.settleMs,
      graceSeconds: this.#o.graceSeconds,
      ...(o.forceUpdate ? { forceUpdate: o.forceUpdate } : {}),
    });
  }

  async #create(o: { app: SpecApp; release: SpecRelease & { healthchecks?: readonly HealthCheck[] | undefined }; type: string; replicas: number; image: string }): Promise<string> {
    const spec = await this.#specFor(o);
    try {
      const created = await this.#o.docker.createService(spec as unknown as Dockerode.CreateServiceOptions);
      return created.id;
    } catch (err) {
      throw new SlipwayError('E_DOCKER', `creating service ${String(spec.Name)} failed: ${message(err)}`, { cause: err });
    }
  }

  /** Creates or updates one type's service and waits until its tasks of this release run (healthy). */
  async #apply(o: {
    app: SpecApp;
    release: SpecRelease & { healthchecks?: readonly HealthCheck[] | undefined };
    type: string;
    replicas: number;
    image: string;
    before: Service | undefined;
    force: boolean;
    progress: (line: string) => void;
    /** Web: route every running task while the update replaces them (old and new). */
    onRoutes?: (upstreams: string[]) => Promise<void>;
  }): Promise<Service> {
    const name = serviceName(o.app.name, o.type);
    if (!o.before) {
      o.progress(`Creating service ${name} (v${o.release.version}, ${o.replicas} replica${o.replicas === 1 ? '' : 's'})`);
      const id = await this.#create(o);
      try {
        await this.#converge(id, { replicas: o.replicas, release: o.release.version, force: 0, previousUpdate: null, name });
      } catch (err) {
        // Nothing served before: leave nothing half-started behind.
        await this.#o.docker
          .getService(id)
          .remove()
          .catch(() => undefined);
        throw err;
      }
      return this.#inspect(id);
    }
    const force = (o.before.Spec.TaskTemplate?.ForceUpdate ?? 0) + (o.force ? 1 : 0);
    const spec = await this.#specFor({ ...o, forceUpdate: force });
    o.progress(`Updating service ${name} to v${o.release.version} (${o.replicas} replica${o.replicas === 1 ? '' : 's'}, new tasks first)`);
    await this.#o.docker.getService(o.before.ID).update({ version: o.before.Version.Index, ...spec });
    await this.#converge(o.before.ID, { replicas: o.replicas, release: o.release.version, force, previousUpdate: o.before.UpdateStatus?.StartedAt ?? '', name, ...(o.onRoutes ? { onRoutes: o.onRoutes } : {}) });
    return this.#inspect(o.before.ID);
  }

  /**
   * Waits until the service runs `replicas` tasks of this spec (the release, the force counter),
   * all running, which with a health check means healthy. A rollback of this update, or a new
   * task failing, fails with the engine's reason and the task's last output.
   */
  async #converge(id: string, want: { replicas: number; release: number; force: number; previousUpdate: string | null; name: string; onRoutes?: (upstreams: string[]) => Promise<void> }): Promise<void> {
    // The update replaces tasks in health-gated batches: more replicas, more batches to wait for.
    const waitMs = rolloutWaitMs({ replicas: want.replicas, healthTimeoutMs: this.#o.healthTimeoutMs, settleMs: this.#o.settleMs });
    const deadline = Date.now() + waitMs;
    // Tasks that failed before this change (a crash the swarm already replaced) are history.
    const since = new Date(Date.now() - 1000).toISOString();
    const addrs = await this.#addrs();
    let routed = '';
    for (;;) {
      const svc = await this.#inspect(id);
      const update = svc.UpdateStatus;
      const ours = want.previousUpdate !== null && update?.StartedAt !== undefined && update.StartedAt !== want.previousUpdate;
      const tasks = await this.#tasks(id);
      if (want.onRoutes) {
        // Every running task (a new one runs only once healthy; an old one until it is stopped):
        // the router retries a refused connection on the next upstream.
        const live = tasks.filter((t) => t.Status.State === 'running').map((t) => taskUpstream(t, addrs)).filter((u): u is string => u !== null).sort();
        if (live.length > 0 && live.join() !== routed) {
          routed = live.join();
          await want.onRoutes(live);
        }
      }
      if (ours && update?.State && /^rollback|^paused/.test(update.State)) {
        if (update.State === 'rollback_started') {
          if (Date.now() < deadline) {
            await sleep(300);
            continue;
          }
        }
        throw await this.#failure(want.name, `the update failed and was rolled back (${update.Message ?? update.State})`, tasks, want.release);
      }
      const current = tasks.filter((t) => t.DesiredState === 'running');
      const done =
        current.length === want.replicas &&
        current.every((t) => t.Status.State === 'running' && releaseOfTask(t) === want.release && (t.Spec.ForceUpdate ?? 0) === want.force) &&
        !(ours && update?.State === 'updating');
      if (done) return;
      if (want.previousUpdate === null) {
        const failed = tasks.find((t) => FAILED.has(t.Status.State) && releaseOfTask(t) === want.release && (t.CreatedAt ?? '') >= since);
        if (failed) throw await this.#failure(want.name, failed.Status.Err ?? failed.Status.State, tasks, want.release);
      }
      if (Date.now() > deadline) throw await this.#failure(want.name, `its tasks did not all run healthy within ${Math.round(waitMs / 1000)} s`, tasks, want.release);
      await sleep(300);
    }
  }

  async #failure(name: string, why: string, tasks: Task[], release: number): Promise<SlipwayError> {
    const failed = tasks.filter((t) => releaseOfTask(t) === release && t.Status.ContainerStatus?.ContainerID);
    const last = failed.sort((a, b) => String(b.Status.Timestamp).localeCompare(String(a.Status.Timestamp)))[0];
    let output = '';
    if (last) {
      const id = last.Status.ContainerStatus!.ContainerID!;
      const buf = (await this.#o.docker
        .getContainer(id)
        .logs({ stdout: true, stderr: true, tail: 20 })
        .catch(() => null)) as Buffer | null;
      output = buf ? demuxBuffer(buf).trimEnd() : '';
    }
    const err = last?.Status.Err ? ` (${last.Status.Err})` : '';
    return new SlipwayError('E_HEALTHCHECK', `${name} failed: ${why}${err}${output ? `\n--- last output of ${name} ---\n${output}` : ''}`);
  }

  /** The upstreams of the service's running tasks that are wanted running, once each answers. */
  async #routable(serviceId: string): Promise<string[]> {
    const addrs = await this.#addrs();
    const tasks = (await this.#tasks(serviceId)).filter((t) => t.DesiredState === 'running' && t.Status.State === 'running');
    const upstreams = tasks.map((t) => taskUpstream(t, addrs)).filter((u): u is string => u !== null);
    const deadline = Date.now() + 10_000;
    for (const u of upstreams) while (!(await this.answers(u)) && Date.now() < deadline) await sleep(200);
    return upstreams.sort();
  }

  async #remove(svc: Service): Promise<void> {
    try {
      await this.#o.docker.getService(svc.ID).remove();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw new SlipwayError('E_DOCKER', `removing service ${svc.Spec.Name} failed: ${message(err)}`, { cause: err });
    }
  }

  async #read(svc: Service, o: { tail: number }, slots: ReadonlyMap<string, string>): Promise<LogLine[]> {
    const buf = (await this.#o.docker
      .getService(svc.ID)
      .logs({ stdout: true, stderr: true, timestamps: true, details: true, follow: false, tail: o.tail })
      .catch(() => null)) as unknown as Buffer | null;
    if (!buf) return [];
    const fallback = `${svc.Spec.Labels?.[LABELS.app]}.${typeOf(svc)}`;
    return demuxBuffer(buf)
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => parseServiceLine(l, slots, fallback));
  }
}

