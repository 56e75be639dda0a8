import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import type { ServiceKind } from '../core/service-store.js';
import { APP_PIDS_LIMIT } from './isolation.js';
import { ensureBridgeNetwork, removeNetwork } from './networks.js';
import { DATA_MOUNT, IO_MOUNT, SERVICE_PORT } from './service-images.js';

/**
 * A service's container and networks (README "Services", docs/security.md "Services"). The
 * container `slipway.<kind>.<name>` sits on its own internal network and on one internal network
 * per linked app, `slipway-link-<kind>-<name>-<app>`, which only that app's containers join
 * (runtime/containers.ts asks `linkNetworksOf` at every start). Docker drops traffic between
 * bridge networks, so an app that is not linked has no route to the service, and two apps
 * linked to one service share no network with each other. Nothing is published on the host.
 */

export const SERVICE_LABELS = { kind: 'slipway.service.kind', name: 'slipway.service.name' } as const;
/** On a link network: the app whose containers join it. */
export const LINK_APP_LABEL = 'slipway.link.app';

export const serviceContainerName = (kind: ServiceKind, name: string): string => `slipway.${kind}.${name}`;
/** The stable host name apps reach the service by (an alias on each of its networks). */
export const serviceHost = (kind: ServiceKind, name: string): string => `slipway-${kind}-${name}`;
export const serviceNetworkName = (kind: ServiceKind, name: string): string => `slipway-svc-${kind}-${name}`;
export const linkNetworkName = (kind: ServiceKind, name: string, app: string): string => `slipway-link-${kind}-${name}-${app}`;

/** The URL a linked app gets. Pure. */
export function serviceUrl(kind: ServiceKind, name: string, password: string): string {
  const host = `${serviceHost(kind, name)}:${SERVICE_PORT[kind]}`;
  return kind === 'postgres' ? `postgres://postgres:${password}@${host}/${name}` : `redis://:${password}@${host}`;
}

/** The URL with its password replaced by `****`, for `info` without `--reveal`. Pure. */
export function maskedUrl(url: string): string {
  return url.replace(/:\/\/([^:@/]*):[^@]*@/, '://$1:****@');
}

export interface ServiceSpec {
  kind: ServiceKind;
  name: string;
  image: string;
  password: string;
  /** Host directories mounted as the data directory and the dump exchange directory. */
  dataDir: string;
  ioDir: string;
}

const HEALTH: Record<ServiceKind, string[]> = {
  postgres: ['CMD-SHELL', 'pg_isready -q -h /tmp -U postgres -d "$POSTGRES_DB"'],
  // REDISCLI_AUTH keeps the password out of argv.
  redis: ['CMD-SHELL', 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'],
};

function serviceEnv(s: Pick<ServiceSpec, 'kind' | 'name' | 'password'>): string[] {
  return s.kind === 'postgres' ? [`POSTGRES_PASSWORD=${s.password}`, `POSTGRES_DB=${s.name}`] : [`REDIS_PASSWORD=${s.password}`];
}

/** The container spec of a service. Pure. */
export function serviceContainerOptions(s: ServiceSpec): Dockerode.ContainerCreateOptions {
  const network = serviceNetworkName(s.kind, s.name);
  return {
    name: serviceContainerName(s.kind, s.name),
    Image: s.image,
    Env: serviceEnv(s),
    Labels: { [SERVICE_LABELS.kind]: s.kind, [SERVICE_LABELS.name]: s.name },
    // Postgres's fast shutdown; Redis saves its snapshot on SIGTERM.
    StopSignal: s.kind === 'postgres' ? 'SIGINT' : 'SIGTERM',
    Healthcheck: { Test: HEALTH[s.kind], Interval: 5e9, Timeout: 5e9, Retries: 5, StartPeriod: 60e9 },
    HostConfig: {
      NetworkMode: network,
      Binds: [`${s.dataDir}:${DATA_MOUNT[s.kind]}`, `${s.ioDir}:${IO_MOUNT}`],
      // Back after a crash, an engine restart or a reboot, unless an operator stopped it.
      RestartPolicy: { Name: 'unless-stopped' },
      Init: true,
      // The image runs as the server's own user (runtime/service-images.ts): it needs no capability.
      SecurityOpt: ['no-new-privileges:true'],
      CapDrop: ['ALL'],
      PidsLimit: APP_PIDS_LIMIT,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
    NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [serviceHost(s.kind, s.name)] } } },
  };
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode;
const messageOf = (err: unknown): string => ((err as { json?: { message?: string } }).json?.message ?? (err as Error).message ?? String(err)).split('\n')[0]!;

export interface ServiceState {
  /** `running`, `exited`, ... or `missing` when there is no container. */
  status: string;
  /** `healthy`, `starting`, `unhealthy`, or null without a container. */
  health: string | null;
  id: string | null;
}

/**
 * One word for how a service is, as `ps` and `status` show it: the health check's verdict while
 * the container runs (`healthy`, `starting`, `unhealthy`), else the container's state (`exited`,
 * `missing`). Pure.
 */
export function serviceCondition(state: Pick<ServiceState, 'status' | 'health'>): string {
  return state.status === 'running' ? (state.health ?? 'running') : state.status;
}

export async function serviceState(docker: Dockerode, kind: ServiceKind, name: string): Promise<ServiceState> {
  try {
    const info = await docker.getContainer(serviceContainerName(kind, name)).inspect();
    return { status: info.State.Status, health: info.State.Health?.Status ?? null, id: info.Id };
  } catch (err) {
    if (statusOf(err) === 404) return { status: 'missing', health: null, id: null };
    throw new SlipwayError('E_DOCKER', `inspecting ${serviceContainerName(kind, name)} failed: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * Makes the service's container exist and run: created (on its own network, then joined to every
 * link network in `linkedApps`) when missing, started when stopped. Running: left alone.
 */
export async function ensureServiceContainer(docker: Dockerode, s: ServiceSpec, linkedApps: readonly string[]): Promise<string> {
  const state = await serviceState(docker, s.kind, s.name);
  if (state.id !== null && state.status === 'running') return state.id;
  if (state.id !== null) {
    await docker.getContainer(state.id).start().catch((err: unknown) => {
      if (statusOf(err) !== 304) throw new SlipwayError('E_DOCKER', `starting ${serviceContainerName(s.kind, s.name)} failed: ${messageOf(err)}`, { cause: err });
    });
    return state.id;
  }
  await ensureBridgeNetwork(docker, { name: serviceNetworkName(s.kind, s.name), labels: { [SERVICE_LABELS.kind]: s.kind, [SERVICE_LABELS.name]: s.name }, icc: true, internal: true, what: `${s.kind} ${s.name}` });
  let container: Dockerode.Container;
  try {
    container = await docker.createContainer(serviceContainerOptions(s));
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    throw new SlipwayError('E_DOCKER', `creating ${serviceContainerName(s.kind, s.name)} failed: ${messageOf(err)}`, { cause: err });
  }
  for (const app of linkedApps) await joinLinkNetwork(docker, s.kind, s.name, app);
  try {
    await container.start();
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `starting ${serviceContainerName(s.kind, s.name)} failed: ${messageOf(err)}`, { cause: err });
  }
  return container.id;
}

/** Waits for the engine's health check to say `healthy`; a container that stops or stays unhealthy fails. */
export async function waitServiceHealthy(docker: Dockerode, kind: ServiceKind, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await serviceState(docker, kind, name);
    if (state.health === 'healthy') return;
    if (state.status !== 'running' && state.status !== 'restarting' && state.status !== 'created') {
      throw new SlipwayError('E_SERVICE', `${serviceContainerName(kind, name)} is ${state.status}: see \`slipway ${kind}:logs ${name}\``);
    }
    if (Date.now() >= deadline) {
      throw new SlipwayError('E_SERVICE', `${serviceContainerName(kind, name)} did not become healthy within ${Math.round(timeoutMs / 1000)} s (${state.health ?? 'no health'}): see \`slipway ${kind}:logs ${name}\``);
    }
    await sleep(500);
  }
}

/** Creates the link network when missing and joins the service's container to it under its host name. */
export async function joinLinkNetwork(docker: Dockerode, kind: ServiceKind, name: string, app: string): Promise<void> {
  const network = linkNetworkName(kind, name, app);
  await ensureBridgeNetwork(docker, {
    name: network,
    labels: { [SERVICE_LABELS.kind]: kind, [SERVICE_LABELS.name]: name, [LINK_APP_LABEL]: app },
    // Within a link network: the service and one app's containers, which must talk to it.
    icc: true,
    internal: true,
    what: `the link of ${kind} ${name} to ${app}`,
  });
  const container = serviceContainerName(kind, name);
  const info = await docker.getContainer(container).inspect();
  if (info.NetworkSettings.Networks?.[network]) return;
  try {
    await docker.getNetwork(network).connect({ Container: info.Id, EndpointConfig: { Aliases: [serviceHost(kind, name)] } });
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `connecting ${container} to ${network} failed: ${messageOf(err)}`, { cause: err });
  }
}

/** Joins an app's running containers to a link network now (they join at every start anyway). */
export async function joinAppContainers(docker: Dockerode, network: string, containers: readonly string[]): Promise<void> {
  for (const id of containers) {
    await docker
      .getNetwork(network)
      .connect({ Container: id })
      .catch((err: unknown) => {
        // Already connected, or gone meanwhile: both fine.
        if (statusOf(err) !== 403 && statusOf(err) !== 404 && !/already exists/i.test(messageOf(err))) throw err;
      });
  }
}

/** Disconnects everything from the link network and removes it. Gone already: fine. */
export async function dropLinkNetwork(docker: Dockerode, kind: ServiceKind, name: string, app: string): Promise<void> {
  const network = linkNetworkName(kind, name, app);
  let info: { Containers?: Record<string, unknown> };
  try {
    info = (await docker.getNetwork(network).inspect()) as typeof info;
  } catch (err) {
    if (statusOf(err) === 404) return;
    throw err;
  }
  for (const id of Object.keys(info.Containers ?? {})) {
    await docker
      .getNetwork(network)
      .disconnect({ Container: id, Force: true })
      .catch((err: unknown) => {
        if (statusOf(err) !== 404) throw new SlipwayError('E_DOCKER', `disconnecting ${id.slice(0, 12)} from ${network} failed: ${messageOf(err)}`, { cause: err });
      });
  }
  await removeNetwork(docker, network);
}

/** The link networks an app's containers join: those labelled for it (one per linked service). */
export async function linkNetworksOf(docker: Dockerode, app: string): Promise<string[]> {
  const networks = await docker.listNetworks({ filters: { label: [`${LINK_APP_LABEL}=${app}`] } });
  return networks.map((n) => n.Name).sort();
}

/** Removes the container and its own network; the data directory stays (the caller's). */
export async function removeServiceContainer(docker: Dockerode, kind: ServiceKind, name: string): Promise<void> {
  const state = await serviceState(docker, kind, name);
  if (state.id !== null) {
    await docker
      .getContainer(state.id)
      .remove({ force: true, v: true })
      .catch((err: unknown) => {
        if (statusOf(err) !== 404) throw new SlipwayError('E_DOCKER', `removing ${serviceContainerName(kind, name)} failed: ${messageOf(err)}`, { cause: err });
      });
  }
  await removeNetwork(docker, serviceNetworkName(kind, name));
}

export async function stopServiceContainer(docker: Dockerode, kind: ServiceKind, name: string): Promise<void> {
  await docker
    .getContainer(serviceContainerName(kind, name))
    .stop({ t: 30 })
    .catch((err: unknown) => {
      if (statusOf(err) !== 304 && statusOf(err) !== 404) throw new SlipwayError('E_DOCKER', `stopping ${serviceContainerName(kind, name)} failed: ${messageOf(err)}`, { cause: err });
    });
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv in the service's container as its server user and collects the output (small outputs only). */
export async function execInService(docker: Dockerode, kind: ServiceKind, name: string, cmd: string[], env: string[] = []): Promise<ExecResult> {
  const container = docker.getContainer(serviceContainerName(kind, name));
  const exec = await container.exec({ Cmd: cmd, Env: env, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: { out: Buffer[]; err: Buffer[] } = { out: [], err: [] };
  out.on('data', (d: Buffer) => chunks.out.push(d));
  err.on('data', (d: Buffer) => chunks.err.push(d));
  docker.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  const code = await execExitCode(() => exec.inspect());
  return { code, stdout: Buffer.concat(chunks.out).toString('utf8'), stderr: Buffer.concat(chunks.err).toString('utf8') };
}

/** What an exec's inspect says about its end. */
export interface ExecEnd {
  Running: boolean;
  ExitCode: number | null;
}

export interface ExecExitOptions {
  /** The caller went away: stop waiting for a program that may outlive it. */
  signal?: AbortSignal;
  /** How long (summed pauses) a program may run on after its output ended before this gives up. */
  patienceMs?: number;
  pause?: (ms: number) => Promise<void>;
}

/**
 * The exit code of an exec whose output has ended. The engine records an exec's exit when it
 * handles the process's exit, which can come after the output it attached has ended: a first
 * inspect may still say "running", with no exit code. So ask again until it says stopped. A busy
 * engine only makes this slower, never a different code: a cap of 2 s that answered 1 failed
 * `ssh -tt ... postgres:connect` after a clean `\q` on a loaded machine. It gives up with an
 * error only when the program runs on long after closing its output, or its caller is gone.
 */
export async function execExitCode(inspect: () => Promise<ExecEnd>, o: ExecExitOptions = {}): Promise<number> {
  const pause = o.pause ?? ((ms: number) => sleep(ms));
  const patience = o.patienceMs ?? 60_000;
  for (let waited = 0, step = 25; ; waited += step, step = Math.min(step * 2, 500)) {
    const info = await inspect();
    if (!info.Running) {
      if (info.ExitCode === null) throw new SlipwayError('E_DOCKER', 'the engine reports the exec stopped without an exit code');
      return info.ExitCode;
    }
    if (o.signal?.aborted) throw new SlipwayError('E_SERVICE', 'the caller went away while the program still ran');
    if (waited >= patience) throw new SlipwayError('E_DOCKER', `the program closed its output but still ran ${Math.round(waited / 1000)} s later`);
    await pause(step);
  }
}

/** The caller's side of an interactive exec: its streams and, when it has one, its terminal. */
export interface AttachedIO {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** A pty in the container of this size, following `onResize` (stdout and stderr are then one stream). */
  terminal?: { rows: number; cols: number; onResize(listener: (size: { rows: number; cols: number }) => void): void };
  /** Aborted when the caller goes away: the exec's connection closes, which ends its input. */
  signal: AbortSignal;
}

/**
 * Runs argv in the service's container wired to the caller (`postgres:connect`): its input in,
 * its output out, with a pty when the caller has a terminal. Resolves with the exit code.
 * Secrets go in `env`, never in `cmd` (argv shows in `ps` and in logs).
 */
export async function attachServiceExec(docker: Dockerode, kind: ServiceKind, name: string, cmd: string[], env: string[], io: AttachedIO): Promise<number> {
  const container = docker.getContainer(serviceContainerName(kind, name));
  const tty = io.terminal !== undefined;
  // Names this session's processes, to hang them up if the caller goes (see hangUp).
  const session = randomBytes(8).toString('hex');
  const exec = await container.exec({
    Cmd: tty ? ['sh', '-c', WAIT_FOR_SIZE, 'sh', ...cmd] : cmd,
    Env: tty ? ['TERM=xterm', `${SESSION_ENV}=${session}`, ...env] : env,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: tty,
  });
  const stream = (await exec.start({ hijack: true, stdin: true, Tty: tty })) as unknown as NodeJS.ReadWriteStream & { destroy(): void };
  // A resize sent while the exec is still starting can fail (on a busy machine the one resize
  // sent never took: `stty size` said 0 0 seconds later). Retry until one lands, the newest size
  // winning, for as long as the exec is attached.
  type Size = { rows: number; cols: number };
  let wanted: Size | null = null;
  let sizing = false;
  let attached = true;
  const resize = (size: Size) => {
    wanted = size;
    if (sizing) return;
    sizing = true;
    void (async () => {
      for (let pause = 100; wanted !== null && attached; ) {
        const asked: Size = wanted;
        const done = await exec.resize({ h: asked.rows, w: asked.cols }).then(() => true, () => false);
        if (done && wanted === asked) wanted = null;
        if (!done) {
          await sleep(pause);
          pause = Math.min(pause * 2, 1000);
        }
      }
      sizing = false;
    })();
  };
  if (io.terminal) {
    resize(io.terminal);
    io.terminal.onResize(resize);
  }
  if (tty) stream.on('data', (d: Buffer) => io.stdout.write(d));
  else docker.modem.demuxStream(stream, io.stdout, io.stderr);
  const input = (d: Buffer) => stream.write(d);
  // Without a terminal the caller's end of input is the program's: `echo 'select 1' | ...
  // postgres:connect db`. A terminal has no end of input (Ctrl-D is a byte psql reads), and
  // closing a tty exec's input makes the engine end its output there while the program runs
  // on: what it prints after is lost and its exit is not known yet. So with a terminal the
  // session ends when the program does (`\q`), or when the caller goes away.
  const inputEnded = () => {
    if (!tty) stream.end();
  };
  let callerGone = false;
  // A caller gone, mid-input (its input stream fails) or by the abort, ends the exec.
  const gone = () => {
    callerGone = true;
    stream.destroy();
  };
  io.stdin.on('data', input);
  io.stdin.once('end', inputEnded);
  io.stdin.on('error', gone);
  io.stdin.resume();
  io.signal.addEventListener('abort', gone, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      stream.once('error', reject);
    });
  } finally {
    io.stdin.off('data', input);
    io.stdin.off('end', inputEnded);
    io.stdin.off('error', gone);
    io.signal.removeEventListener('abort', gone);
    attached = false;
  }
  if (tty && (callerGone || io.signal.aborted)) {
    // Without a caller the program would wait on its pty forever (psql holding a connection):
    // hang it up as a closed terminal does, and let it go.
    await hangUp(docker, kind, name, session);
    return execExitCode(() => exec.inspect());
  }
  return execExitCode(() => exec.inspect(), { signal: io.signal });
}

/**
 * Runs the program (`"$@"`) once its pty has a size. The engine makes a tty exec's pty 0x0 and
 * sizes it on a request of its own that may land after the program started, on a busy machine
 * seconds after, or never: psql at a 0-row terminal pages every result through `more`, which
 * then takes the `\q` meant for psql, so psql runs on (the flaky `ssh -tt` test).
 */
const WAIT_FOR_SIZE = 'while [ "$(stty size 2>/dev/null)" = "0 0" ]; do sleep 0.05; done; exec "$@"';

/** The variable naming an interactive session's processes in the service's container. */
const SESSION_ENV = 'SLIPWAY_SESSION';

/**
 * Sends SIGHUP to the processes of one interactive session: those whose environment carries its
 * name (an exec's pid as the engine reports it belongs to the engine's host, which may not be
 * ours). A tty exec outlives its attached connection; a program without a caller gets the
 * signal a terminal's hangup gives. Runs as the container's user, as the session does.
 */
async function hangUp(docker: Dockerode, kind: ServiceKind, name: string, session: string): Promise<void> {
  const script = `for p in /proc/[0-9]*; do if grep -qzx "${SESSION_ENV}=$1" "$p/environ" 2>/dev/null; then kill -HUP "\${p#/proc/}" 2>/dev/null; fi; done; exit 0`;
  const r = await execInService(docker, kind, name, ['sh', '-c', script, 'hangup', session]);
  if (r.code !== 0) throw new SlipwayError('E_DOCKER', `hanging up a ${kind} session in ${serviceContainerName(kind, name)} failed: ${r.stderr.trim()}`);
}
