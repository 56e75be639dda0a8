import net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { parseMemory } from '../core/units.js';
import { SlipwayError } from '../core/errors.js';
import { hardenedHostConfig, inspectImageIsolation, type HostIsolation, type ImageIsolation } from './isolation.js';
import { ensureAppNetwork } from './networks.js';
import { linkNetworksOf } from './service-containers.js';

export type ContainerSummary = Dockerode.ContainerInfo;

export const LABELS = { app: 'slipway.app', type: 'slipway.type', index: 'slipway.index', release: 'slipway.release' } as const;

/** The port every web process listens on inside its container (Heroku's `$PORT`). */
export const WEB_PORT = 5000;
const WEB_PORT_KEY = `${WEB_PORT}/tcp`;
// A crash-looping process must not restart forever: after this many tries it stays down.
const MAX_RESTARTS = 10;

/**
 * The router's address of a web container: the only place it is spelled. Web ports are bound to
 * loopback only (see `containerOptions`), so the router, on the same host, is the one way in.
 */
export function upstreamOf(hostPort: number): string {
  return `127.0.0.1:${hostPort}`;
}

export function containerName(app: string, type: string, index: number): string {
  return `${app}.${type}.${index}`;
}

export interface ProcessSpec {
  app: string;
  type: string;
  index: number;
  image: string;
  release: number;
  command: string;
  env: Record<string, string>;
  web: boolean;
  memory?: string;
  /** CPUs the container may use, as Docker's `--cpus`. */
  cpus?: number;
  extraLabels?: Record<string, string>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The container's environment: config vars, then what the platform owns (they win). */
export function processEnv(spec: Pick<ProcessSpec, 'env' | 'type' | 'index' | 'web'>): string[] {
  const env: Record<string, string> = { ...spec.env, DYNO: `${spec.type}.${spec.index}` };
  if (spec.web) env.PORT = String(WEB_PORT);
  return Object.entries(env).map(([k, v]) => {
    if (!ENV_NAME.test(k)) throw new SlipwayError('E_CONFIG', `invalid config var name ${JSON.stringify(k)}`);
    return `${k}=${v}`;
  });
}

export function processLabels(spec: ProcessSpec): Record<string, string> {
  return {
    ...spec.extraLabels,
    [LABELS.app]: spec.app,
    [LABELS.type]: spec.type,
    [LABELS.index]: String(spec.index),
    [LABELS.release]: String(spec.release),
  };
}

/**
 * What confines a container of `spec` (runtime/isolation.ts): the app's network, created when
 * missing, the networks of its linked services, the image's USER and readonly label, and the
 * app's limits. Every start path comes here, so a redeploy, a scale, a rollback or a recovered
 * daemon keeps the links (README "Services").
 */
export async function hostIsolationFor(docker: Dockerode, spec: Pick<ProcessSpec, 'app' | 'image' | 'memory' | 'cpus'>): Promise<HostIsolation> {
  const network = await ensureAppNetwork(docker, spec.app);
  const links = await linkNetworksOf(docker, spec.app);
  return { ...specIsolation(spec, await inspectImageIsolation(docker, spec.image), network), ...(links.length > 0 ? { links } : {}) };
}

/** The confinement of `spec` given what its image says and its network: the limits in engine units. Pure. */
export function specIsolation(spec: Pick<ProcessSpec, 'memory' | 'cpus'>, image: ImageIsolation, network: string): HostIsolation {
  return {
    ...image,
    network,
    ...(spec.memory ? { memory: parseMemory(spec.memory) } : {}),
    ...(spec.cpus ? { nanoCpus: Math.round(spec.cpus * 1e9) } : {}),
  };
}

/** The container spec; `host` (from `hostIsolationFor`) is required so no caller can skip the hardening. */
export function containerOptions(spec: ProcessSpec, name: string, host: HostIsolation): Dockerode.ContainerCreateOptions {
  return {
    name,
    Image: spec.image,
    // The image's entrypoint (slipway-exec) runs this one string through bash.
    Cmd: [spec.command],
    Env: processEnv(spec),
    Labels: processLabels(spec),
    ...(spec.web ? { ExposedPorts: { [WEB_PORT_KEY]: {} } } : {}),
    HostConfig: {
      // Loopback only: apps are reached through the router, never directly from the network.
      ...(spec.web ? { PortBindings: { [WEB_PORT_KEY]: [{ HostIp: '127.0.0.1', HostPort: '' }] } } : {}),
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: MAX_RESTARTS },
      // tini as PID 1 forwards SIGTERM and reaps zombies the app's own processes leave.
      Init: true,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      ...hardenedHostConfig(host),
    },
  };
}

/**
 * Joins a created (not yet started) container to the app's link networks, so its process starts
 * with its services reachable. After create, not in it: engines before API 1.44 take one
 * network at create.
 */
export async function joinLinkNetworks(docker: Dockerode, container: Dockerode.Container, host: HostIsolation): Promise<void> {
  for (const network of host.links ?? []) {
    try {
      await docker.getNetwork(network).connect({ Container: container.id });
    } catch (err) {
      throw dockerError(`joining ${network}`, err);
    }
  }
}

export async function startProcess(
  docker: Dockerode,
  spec: ProcessSpec,
  o: { name?: string; onCreated?: (id: string) => void } = {},
): Promise<{ id: string; name: string; hostPort: number | null }> {
  const name = o.name ?? containerName(spec.app, spec.type, spec.index);
  let container: Dockerode.Container;
  const host = await hostIsolationFor(docker, spec);
  try {
    container = await docker.createContainer(containerOptions(spec, name, host));
  } catch (err) {
    throw dockerError(`creating container ${name}`, err);
  }
  // Told before the start, so that whoever watches start events already knows whose it is.
  o.onCreated?.(container.id);
  try {
    await joinLinkNetworks(docker, container, host);
    await container.start();
    return { id: container.id, name, hostPort: spec.web ? await hostPortOf(docker, container.id) : null };
  } catch (err) {
    await container.remove({ force: true }).catch(() => {});
    throw dockerError(`starting container ${name}`, err);
  }
}

function dockerError(what: string, err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  return new SlipwayError('E_DOCKER', `${what} failed: ${e.json?.message ?? e.message ?? String(err)}`, { cause: err });
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode;

/**
 * The label the swarm puts on its task containers. They inherit `slipway.app` from the release
 * image like every container, but they are the swarm's (runtime/docker-swarm/): docker-local
 * must never list, adopt, follow or remove them.
 */
export const SWARM_TASK_LABEL = 'com.docker.swarm.task.id';

export async function listAppContainers(docker: Dockerode, app?: string): Promise<ContainerSummary[]> {
  const all = await docker.listContainers({ all: true, filters: { label: [app ? `${LABELS.app}=${app}` : LABELS.app] } });
  return all.filter((c) => c.Labels[SWARM_TASK_LABEL] === undefined);
}

/** Stops and removes every container of an app, whatever its type or release. */
export async function removeApp(docker: Dockerode, app: string, graceSeconds = 5): Promise<void> {
  const containers = await listAppContainers(docker, app);
  await Promise.all(containers.map((c) => stopAndRemove(docker, c.Id, graceSeconds)));
}

export async function hostPortOf(docker: Dockerode, id: string): Promise<number | null> {
  const info = await docker.getContainer(id).inspect();
  const binding = info.NetworkSettings?.Ports?.[WEB_PORT_KEY]?.find((b) => b.HostPort);
  return binding ? Number(binding.HostPort) : null;
}

/** SIGTERM, `graceSeconds` to exit, then SIGKILL (Docker's stop), then remove. Gone already: fine. */
export async function stopAndRemove(docker: Dockerode, id: string, graceSeconds: number): Promise<void> {
  const container = docker.getContainer(id);
  try {
    await container.stop({ t: graceSeconds });
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return;
    if (status !== 304) throw dockerError(`stopping container ${id.slice(0, 12)}`, err);
  }
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    // 409: another caller is already removing it.
    const status = statusOf(err);
    if (status !== 404 && status !== 409) throw dockerError(`removing container ${id.slice(0, 12)}`, err);
  }
}

/** Frames of Docker's multiplexed (non-TTY) log format -> text, for a buffered (not followed) read. */
export function demuxBuffer(buf: Buffer): string {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const size = buf.readUInt32BE(at + 4);
    out.push(buf.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}

/**
 * A container's output, stdout and stderr merged, as a text stream. Destroying the returned
 * stream stops following.
 */
export async function containerLogs(
  docker: Dockerode,
  id: string,
  o: { tail?: number; follow?: boolean; timestamps?: boolean; since?: string } = {},
): Promise<Readable> {
  const container = docker.getContainer(id);
  const info = await container.inspect();
  const base = {
    stdout: true,
    stderr: true,
    timestamps: o.timestamps ?? false,
    ...(o.tail !== undefined ? { tail: o.tail } : {}),
    ...(o.since !== undefined ? { since: o.since } : {}),
  };
  const out = new PassThrough();
  if (!o.follow) {
    const buf = (await container.logs({ ...base, follow: false })) as unknown as Buffer;
    out.end(info.Config.Tty ? buf : demuxBuffer(buf));
    return out;
  }
  const raw = (await container.logs({ ...base, follow: true })) as unknown as Readable;
  if (info.Config.Tty) raw.pipe(out);
  else docker.modem.demuxStream(raw, out, out);
  raw.on('end', () => out.end());
  raw.on('error', (err) => out.destroy(err));
  out.on('close', () => raw.destroy());
  return out;
}

/** The last `lines` lines a container printed, for error messages. */
export async function tailLogs(docker: Dockerode, id: string, lines = 20): Promise<string> {
  try {
    const stream = await containerLogs(docker, id, { tail: lines });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8').trimEnd();
  } catch {
    return '(logs unavailable)';
  }
}

/**
 * Docker's userland proxy accepts on the host port even when nothing listens inside the
 * container, then closes at once. So a connection counts only if it stays open a moment (or
 * the app speaks first).
 */
export function probePort(port: number, holdMs = 250, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 2000);
    socket.once('connect', () => {
      clearTimeout(timer);
      setTimeout(() => finish(true), holdMs);
    });
    socket.once('data', () => finish(true));
    socket.once('end', () => finish(false));
    socket.once('close', () => finish(false));
    socket.once('error', () => finish(false));
  });
}

/** How often a starting container is looked at (state and port) while the deploy waits on it. */
export const HEALTH_POLL_MS = 100;
/**
 * How long a health probe's connection must stay open to count. Docker's userland proxy closes a
 * connection to a port nothing listens on within a millisecond or two on an idle host; on a busy
 * one it can take longer, so the probe is repeated through the settle and once more before the
 * container is routed, and a short hold is enough.
 */
const HEALTH_PROBE_HOLD_MS = 100;

/**
 * Waits until a new container is fit to take traffic (README "Releases, scaling and zero downtime"):
 *
 * 1. its port answers (polled every HEALTH_POLL_MS; a process that exits first fails at once);
 * 2. it settles: with `ready` (the app's own app.json checks), as soon as they pass, with no
 *    fixed wait: the app says when it is ready. Without, it must keep running and its port keep
 *    answering for `settleMs` after it first answered (a process that binds and then crashes
 *    is not healthy);
 * 3. it still runs, unrestarted, and its port still answers.
 *
 * During 2 the container's state is polled too, so a crash fails the wait when it happens.
 */
export async function waitHealthy(o: {
  docker: Dockerode;
  id: string;
  hostPort: number | null;
  settleMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** The app's own readiness checks (app.json); when given they replace the fixed settle. */
  ready?: (signal: AbortSignal) => Promise<void>;
}): Promise<void> {
  const container = o.docker.getContainer(o.id);
  const deadline = Date.now() + o.timeoutMs;
  const fail = async (name: string, reason: string): Promise<never> => {
    const logs = await tailLogs(o.docker, o.id, 20);
    throw new SlipwayError('E_HEALTHCHECK', `${name} failed its health check: ${reason}\n--- last output of ${name} ---\n${logs || '(no output)'}`);
  };
  const state = async (): Promise<{ name: string; running: boolean; restarts: number; startedAt: string; exitCode: number }> => {
    const info = await container.inspect();
    return {
      name: info.Name.replace(/^\//, ''),
      running: info.State.Running && !info.State.Restarting,
      restarts: info.RestartCount,
      startedAt: info.State.StartedAt,
      exitCode: info.State.ExitCode,
    };
  };
  const pause = (ms: number, signal = o.signal) => sleep(ms, undefined, signal ? { signal } : {});

  let s = await state();
  if (o.hostPort !== null) {
    for (;;) {
      o.signal?.throwIfAborted();
      s = await state();
      if (!s.running) await fail(s.name, `the process exited (code ${s.exitCode}) before it listened on $PORT`);
      if (await probePort(o.hostPort, HEALTH_PROBE_HOLD_MS)) break;
      if (Date.now() >= deadline) await fail(s.name, `nothing answered on $PORT (${WEB_PORT}) within ${Math.round(o.timeoutMs / 1000)} s`);
      await pause(HEALTH_POLL_MS);
    }
  }
  const first = s;
  const changed = (x: typeof s) => !x.running || x.restarts !== first.restarts || x.startedAt !== first.startedAt;
  const died = async (x: typeof s, what: string): Promise<never> =>
    fail(x.name, `the process did not stay up ${what} (exit code ${x.exitCode}, ${x.restarts} restarts)`);
  const what = o.ready ? 'until its health checks passed' : `for ${o.settleMs} ms`;

  // The settle and a watcher that fails it as soon as the process exits or restarts.
  const settle = new AbortController();
  const onAbort = () => settle.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const watch = (async () => {
    while (!settle.signal.aborted) {
      await pause(HEALTH_POLL_MS, settle.signal).catch(() => undefined);
      if (settle.signal.aborted) return;
      const now = await state();
      if (changed(now)) await died(now, what);
      // Without the app's checks, the port is the only sign of life: it must keep answering, so
      // one probe fooled by a slow proxy (see HEALTH_PROBE_HOLD_MS) cannot route a dead port.
      if (!o.ready && o.hostPort !== null && !settle.signal.aborted && !(await probePort(o.hostPort, HEALTH_PROBE_HOLD_MS))) {
        await fail(now.name, `its port stopped answering within ${o.settleMs} ms of the first answer`);
      }
    }
  })();
  try {
    await Promise.race([(o.ready ? o.ready(settle.signal) : pause(o.settleMs, settle.signal)).finally(() => settle.abort()), watch]);
    await watch;
  } finally {
    settle.abort();
    o.signal?.removeEventListener('abort', onAbort);
    await watch.catch(() => undefined);
  }
  o.signal?.throwIfAborted();
  const after = await state();
  if (changed(after)) await died(after, what);
  if (o.hostPort !== null && !(await probePort(o.hostPort, HEALTH_PROBE_HOLD_MS))) {
    await fail(after.name, 'its port stopped answering before it took traffic');
  }
}
