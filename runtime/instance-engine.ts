import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import { INSTANCE_LABEL, instanceFilter, instanceLabels, ownedBy } from './labels.js';

/**
 * One Docker engine can serve several Slipway instances (several SLIPWAY_HOMEs). App names are
 * only unique within an instance, so everything the runtime does goes through an engine view
 * scoped to this instance: what it creates carries `slipway.instance=<id>`, what it lists, prunes
 * and follows is only what carries that label, and it refuses to stop, remove, rename or read
 * the logs of an object without it. The view is the Dockerode interface, so the code below it
 * needs no instance argument; it is built once, at the composition root (platform/daemon.ts).
 */
interface Scope {
  raw: Dockerode;
  instanceId: string;
  owns: (labels: Record<string, string> | null | undefined) => boolean;
}

const scopes = new WeakMap<object, Scope>();

/**
 * The whole engine behind a scoped view, for read-only questions about everything on it (which
 * subnets are taken) and for the platform images every instance shares (the stack). Never for
 * acting on app objects.
 */
export function unscopedEngine(docker: Dockerode): Dockerode {
  return scopes.get(docker)?.raw ?? docker;
}

/** The instance a scoped engine view belongs to; null for a plain Dockerode. */
export function engineInstance(docker: Dockerode): string | null {
  return scopes.get(docker)?.instanceId ?? null;
}

type Filters = Record<string, string[] | Record<string, boolean>>;

/** Adds this instance's label to a query's filters (an object or its JSON, as Dockerode takes). */
export function withInstanceFilter<T extends { filters?: unknown }>(opts: T | undefined, instanceId: string): T {
  const raw = opts?.filters;
  const filters: Filters = typeof raw === 'string' ? (JSON.parse(raw) as Filters) : { ...((raw as Filters | undefined) ?? {}) };
  const labels = filters.label;
  filters.label = [...(Array.isArray(labels) ? labels : labels ? Object.keys(labels) : []), instanceFilter(instanceId)];
  return { ...(opts ?? ({} as T)), filters };
}

const CONTAINER_GUARDED = ['start', 'stop', 'restart', 'kill', 'remove', 'rename', 'logs', 'update', 'pause', 'unpause', 'exec', 'attach', 'commit', 'putArchive', 'getArchive', 'infoArchive', 'export', 'wait'] as const;
const IMAGE_GUARDED = ['remove', 'tag'] as const;
const NETWORK_GUARDED = ['remove', 'connect', 'disconnect'] as const;
const VOLUME_GUARDED = ['remove'] as const;
const SERVICE_GUARDED = ['update', 'remove', 'logs'] as const;

/**
 * Acting on an object of another instance. It answers like the engine's 404 (`statusCode`): for
 * this instance the object does not exist, so "remove it, gone is fine" paths (apps:destroy)
 * complete without touching it, and every other caller shows this one line.
 */
export class NotThisInstanceError extends SlipwayError {
  readonly statusCode = 404;
  constructor(kind: string, name: string, verb: string) {
    super('E_DOCKER', `refusing to ${verb} ${kind} ${name}: it does not carry this Slipway instance's label (${INSTANCE_LABEL}); another instance or program owns it`);
  }
}

function notOurs(kind: string, name: string, verb: string): SlipwayError {
  return new NotThisInstanceError(kind, name, verb);
}

type Labels = Record<string, string> | null | undefined;
const APP_LABELS = ['slipway.app', 'slipway.build-app', 'slipway.oneoff.app'] as const;

/**
 * Whether an object is this instance's: it carries our id, or it predates instance ids (no id
 * at all) and belongs to an app this SLIPWAY_HOME had when it got its id (an upgrade).
 */
export function ownsObject(labels: Labels, instanceId: string, legacyApps: ReadonlySet<string> = new Set()): boolean {
  if (ownedBy(labels, instanceId)) return true;
  if (!labels || labels[INSTANCE_LABEL] !== undefined || legacyApps.size === 0) return false;
  return APP_LABELS.some((l) => labels[l] !== undefined && legacyApps.has(labels[l]!));
}

/** Replaces `methods` of `target` by versions that first check, by inspecting, that the object is ours. */
function guard(target: object, kind: string, name: string, methods: readonly string[], labelsOf: () => Promise<Labels>, owns: (labels: Labels) => boolean): void {
  const t = target as Record<string, unknown>;
  for (const method of methods) {
    const original = t[method];
    if (typeof original !== 'function') continue;
    t[method] = async (...args: unknown[]) => {
      // An inspect error (404 above all) goes to the caller as is: callers treat "gone" as done.
      if (!owns(await labelsOf())) throw notOurs(kind, name, method);
      return (original as (...a: unknown[]) => unknown).apply(target, args);
    };
  }
}

export function scopeToInstance(docker: Dockerode, instanceId: string, o: { legacyApps?: ReadonlySet<string> } = {}): Dockerode {
  const labels = instanceLabels(instanceId);
  const legacyApps = o.legacyApps ?? new Set<string>();
  const scoped = Object.create(docker) as Dockerode;
  const s = scoped as unknown as Record<string, unknown>;
  const owns = (l: Labels): boolean => ownsObject(l, instanceId, legacyApps);
  const owned = <T extends { Labels?: Labels }>(items: T[]): T[] => items.filter((i) => owns(i.Labels));
  const filtered = <T>(opts: T | undefined): T => withInstanceFilter(opts as { filters?: unknown }, instanceId) as T;
  // Objects from before instance ids have no label to filter on: with some to adopt, lists are
  // filtered here only.
  const listFilter = <T>(opts: T | undefined): T => (legacyApps.size > 0 ? ((opts ?? {}) as T) : filtered(opts));

  // Queries: the engine filters by label, and the results are checked again here. Events and
  // prunes are by label only: a pre-upgrade container is adopted, never pruned.
  s.listContainers = async (opts?: Dockerode.ContainerListOptions) => owned(await docker.listContainers(listFilter(opts)));
  s.listImages = async (opts?: Dockerode.ListImagesOptions) => owned(await docker.listImages(listFilter(opts)));
  s.listNetworks = async (opts?: Dockerode.NetworkListOptions) => owned(await docker.listNetworks(listFilter(opts)));
  s.listVolumes = async (opts?: Dockerode.VolumeListOptions) => {
    const res = await docker.listVolumes(listFilter(opts ?? {}));
    return { ...res, Volumes: owned(res.Volumes ?? []) };
  };
  // Swarm services (runtime/docker-swarm/): listed by label like the rest. Their tasks are listed
  // by service id, so only this instance's services' tasks are ever seen.
  s.listServices = async (opts?: object) => {
    const services = (await docker.listServices(filtered(opts as Dockerode.ServiceListOptions))) as unknown as { Spec?: { Labels?: Labels } }[];
    return services.filter((x) => ownedBy(x.Spec?.Labels, instanceId));
  };
  s.createService = (spec: Dockerode.CreateServiceOptions) => docker.createService.call(scoped, {}, { ...spec, Labels: { ...spec.Labels, ...labels } });
  s.getEvents = (opts?: Dockerode.GetEventsOptions) => docker.getEvents(filtered(opts ?? {}));
  for (const prune of ['pruneContainers', 'pruneImages', 'pruneNetworks', 'pruneVolumes'] as const) {
    s[prune] = (opts?: object) => (docker[prune] as (o: object) => Promise<unknown>).call(docker, filtered((opts ?? {}) as { filters?: unknown }));
  }

  // Creation: every object carries the label. Called with `scoped` as `this` so what Dockerode
  // returns (a container, a network) is the guarded handle below.
  s.createContainer = async (opts: Dockerode.ContainerCreateOptions) => {
    try {
      return await docker.createContainer.call(scoped, { ...opts, Labels: { ...opts.Labels, ...labels } });
    } catch (err) {
      throw (await nameConflict(docker, err, opts.name, owns)) ?? err;
    }
  };
  s.buildImage = (context: unknown, opts: Dockerode.ImageBuildOptions = {}) =>
    docker.buildImage.call(scoped, context as NodeJS.ReadableStream, { ...opts, labels: { ...opts.labels, ...labels } });
  s.createNetwork = (opts: Dockerode.NetworkCreateOptions) => docker.createNetwork.call(scoped, { ...opts, Labels: { ...opts.Labels, ...labels } });
  s.createVolume = (opts: Dockerode.VolumeCreateOptions = {}) => docker.createVolume.call(scoped, { ...opts, Labels: { ...opts.Labels, ...labels } });

  // Handles: acting on an object requires it to be ours.
  s.getContainer = (id: string) => {
    const c = docker.getContainer(id);
    guard(c, 'container', id.length === 64 ? id.slice(0, 12) : id, CONTAINER_GUARDED, async () => (await c.inspect()).Config.Labels, owns);
    return c;
  };
  s.getImage = (name: string) => {
    const i = docker.getImage(name);
    guard(i, 'image', name, IMAGE_GUARDED, async () => (await i.inspect()).Config?.Labels, owns);
    return i;
  };
  s.getNetwork = (id: string) => {
    const n = docker.getNetwork(id);
    guard(n, 'network', id, NETWORK_GUARDED, async () => ((await n.inspect()) as { Labels?: Record<string, string> }).Labels, owns);
    return n;
  };
  s.getService = (id: string) => {
    const svc = docker.getService(id);
    guard(svc, 'service', id, SERVICE_GUARDED, async () => ((await svc.inspect()) as { Spec?: { Labels?: Labels } }).Spec?.Labels, (l) => ownedBy(l, instanceId));
    return svc;
  };
  s.getVolume = (name: string) => {
    const v = docker.getVolume(name);
    guard(v, 'volume', name, VOLUME_GUARDED, async () => (await v.inspect()).Labels, owns);
    return v;
  };
  scopes.set(scoped, { raw: docker, instanceId, owns });
  return scoped;
}

/** A create that failed because the name is taken by another instance's container, as one clear line. */
async function nameConflict(docker: Dockerode, err: unknown, name: string | undefined, owns: (labels: Labels) => boolean): Promise<SlipwayError | null> {
  if (!name || (err as { statusCode?: number }).statusCode !== 409) return null;
  const holder = await docker
    .getContainer(name)
    .inspect()
    .catch(() => null);
  if (!holder || owns(holder.Config.Labels)) return null;
  return new SlipwayError('E_APP_EXISTS', `container name ${name} is taken on this Docker engine by another Slipway instance or program: use another app name, or remove that container if it is stale`);
}

/**
 * Refuses an app name that another instance (or an older Slipway without instance labels) uses
 * on this engine: containers are named `<app>.<type>.<n>` and release images `slipway/<app>:vN`
 * (contract.md), so two instances with one app name would replace each other's.
 */
export async function assertAppNameFree(docker: Dockerode, app: string): Promise<void> {
  const scope = scopes.get(docker);
  if (!scope) return;
  const { raw, owns } = scope;
  const byLabel = (label: string) => raw.listContainers({ all: true, filters: { label: [`${label}=${app}`] } });
  const containers = (await Promise.all(['slipway.app', 'slipway.build-app', 'slipway.oneoff.app'].map(byLabel))).flat();
  const images = [
    ...(await raw.listImages({ filters: { reference: [`slipway/${app}`] } })),
    // Top-level images only: a build's intermediate layers inherit the Dockerfile's LABELs but
    // not the instance label the engine adds to the finished image, so they prove nothing.
    ...(await raw.listImages({ filters: { label: [`slipway.app=${app}`] } })),
  ];
  const networks = await raw.listNetworks({ filters: { label: [`slipway.app=${app}`] } });
  const foreign = [...containers, ...images, ...networks].some((o) => !owns(o.Labels));
  const named = await raw.listContainers({ all: true, filters: { name: [`^/${app}\\.`] } });
  if (foreign || named.some((c) => !owns(c.Labels))) {
    throw new SlipwayError('E_APP_EXISTS', `app name "${app}" is in use on this Docker engine by another Slipway instance (or containers named ${app}.*): choose another app name`);
  }
}
