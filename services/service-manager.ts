import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import { DEFAULT_LINK_VAR, linkedError, type ServiceKind, type ServiceLink, type ServiceRecord, type ServiceStore } from '../core/service-store.js';
import type { AppStore } from '../core/store.js';
import type { Origin } from '../core/users.js';
import { listAppContainers } from '../runtime/containers.js';
import {
  attachServiceExec,
  dropLinkNetwork,
  ensureServiceContainer,
  execInService,
  joinAppContainers,
  joinLinkNetwork,
  linkNetworkName,
  maskedUrl,
  removeServiceContainer,
  serviceCondition,
  serviceContainerName,
  serviceState,
  serviceUrl,
  stopServiceContainer,
  waitServiceHealthy,
  type AttachedIO,
  type ServiceSpec,
} from '../runtime/service-containers.js';
import { streamServiceLogs, type ServiceLogsOptions } from '../runtime/service-logs.js';
import { ensureServiceImage, IO_MOUNT, SERVICE_UID } from '../runtime/service-images.js';
import type { Operations } from './operations.js';

export type Progress = (line: string) => void;

export interface ServiceManagerDeps {
  /** This instance's engine view: containers and networks carry its label. */
  docker: Dockerode;
  /** The whole engine: service images are shared by every instance, like the stack. */
  engine: Dockerode;
  store: ServiceStore;
  ops: Operations;
  apps: AppStore;
  config: Config;
  paths: Paths;
  logger: Logger;
}

export interface ServiceInfo {
  kind: ServiceKind;
  name: string;
  status: string;
  health: string | null;
  version: string | null;
  links: { app: string; var: string }[];
  dataBytes: number;
  url: string;
  owners: string[];
  createdAt: string;
}

export interface BackupInfo {
  id: string;
  bytes: number;
  createdAt: string;
}

/** How long a new or restarted service may take to pass its health check. */
const READY_TIMEOUT_MS = 120_000;
const BACKUP_ID = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/;
const EXT: Record<ServiceKind, string> = { postgres: 'dump', redis: 'rdb' };
/** A redis import's old RDB, beside the new one until the server is healthy with it. */
const BEFORE_IMPORT = 'dump.rdb.before-import';

/** Directory size in bytes (files only, symlinks not followed). */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  const entries = await fsp.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    total += (await fsp.lstat(path.join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * Postgres and Redis services (README "Services"): their lifecycle, links to apps, dumps and
 * backups. Linking changes the app's config through Operations (a new release, rolling restart:
 * the one config-change path), so a link is never half a config edit.
 */
export class ServiceManager {
  readonly #d: ServiceManagerDeps;

  constructor(deps: ServiceManagerDeps) {
    this.#d = deps;
  }

  get store(): ServiceStore {
    return this.#d.store;
  }

  #dir(kind: ServiceKind, name: string): { root: string; data: string; io: string } {
    const root = path.join(this.#d.paths.home, 'services', kind, name);
    return { root, data: path.join(root, 'data'), io: path.join(root, 'io') };
  }

  backupDir(kind: ServiceKind, name: string): string {
    return path.join(this.#d.paths.home, 'backups', kind, name);
  }

  #spec(s: ServiceRecord): ServiceSpec {
    const dir = this.#dir(s.kind, s.name);
    return { kind: s.kind, name: s.name, image: s.image, password: s.password, dataDir: dir.data, ioDir: dir.io };
  }

  async create(kind: ServiceKind, name: string, o: { origin: Origin; owner: string; progress: Progress }): Promise<void> {
    const { store } = this.#d;
    if (store.find(kind, name)) throw new SlipwayError('E_SERVICE', `a ${kind} service named "${name}" exists already: see \`slipway ${kind}:info ${name}\``);
    const image = await ensureServiceImage(this.#d.engine, kind, { progress: o.progress, logger: this.#d.logger, tmpDir: this.#d.paths.tmpDir });
    const password = randomBytes(24).toString('hex');
    store.create(o.origin, { kind, name, password, image, owner: o.owner });
    const dir = this.#dir(kind, name);
    try {
      await fsp.mkdir(path.dirname(dir.root), { recursive: true, mode: 0o700 });
      for (const d of [dir.root, dir.data, dir.io]) await fsp.mkdir(d, { recursive: true, mode: 0o700 });
      // The server's user in the image owns its data (runtime/service-images.ts).
      for (const d of [dir.data, dir.io]) await fsp.chown(d, SERVICE_UID, SERVICE_UID);
      o.progress(`-----> Starting ${serviceContainerName(kind, name)}`);
      await ensureServiceContainer(this.#d.docker, this.#spec(store.get(kind, name)), []);
      await waitServiceHealthy(this.#d.docker, kind, name, READY_TIMEOUT_MS);
    } catch (err) {
      await removeServiceContainer(this.#d.docker, kind, name).catch(() => undefined);
      await fsp.rm(dir.root, { recursive: true, force: true });
      store.remove(o.origin, kind, name);
      throw err;
    }
    this.#d.logger.info({ kind, name }, 'service created');
    o.progress(`-----> ${kind} ${name} is ready: link it with \`slipway ${kind}:link ${name} <app>\``);
  }

  list(kind?: ServiceKind): ServiceRecord[] {
    return this.#d.store.list(kind);
  }

  /**
   * How the service is (`healthy`, `starting`, `exited`, ...: runtime/service-containers.ts), or
   * `unknown` when the engine does not answer: `ps` and `status` still print.
   */
  async condition(kind: ServiceKind, name: string): Promise<string> {
    return serviceCondition(await serviceState(this.#d.docker, kind, name).catch(() => ({ status: 'unknown', health: null })));
  }

  async info(kind: ServiceKind, name: string, o: { reveal: boolean }): Promise<ServiceInfo> {
    const s = this.#d.store.get(kind, name);
    const state = await serviceState(this.#d.docker, kind, name);
    const url = serviceUrl(kind, name, s.password);
    return {
      kind,
      name,
      status: state.status,
      health: state.health,
      version: state.status === 'running' ? await this.#version(kind, name) : null,
      links: this.#d.store.links(kind, name).map((l) => ({ app: l.app, var: l.var })),
      dataBytes: await sizeOf(this.#dir(kind, name).data),
      url: o.reveal ? url : maskedUrl(url),
      owners: s.owners,
      createdAt: s.createdAt,
    };
  }

  async #version(kind: ServiceKind, name: string): Promise<string | null> {
    const cmd = kind === 'postgres' ? ['postgres', '--version'] : ['redis-server', '--version'];
    const r = await execInService(this.#d.docker, kind, name, cmd).catch(() => null);
    if (!r || r.code !== 0) return null;
    const m = kind === 'postgres' ? /\(PostgreSQL\) (\S+)/.exec(r.stdout) : /v=(\S+)/.exec(r.stdout);
    return m?.[1] ?? null;
  }

  async destroy(kind: ServiceKind, name: string, o: { origin: Origin; progress: Progress }): Promise<void> {
    const links = this.#d.store.links(kind, name);
    if (links.length > 0) throw linkedError(kind, name, links);
    this.#d.store.get(kind, name);
    await removeServiceContainer(this.#d.docker, kind, name);
    // The record goes before the data: a crash in between leaves files, never a record without them.
    this.#d.store.remove(o.origin, kind, name);
    await fsp.rm(this.#dir(kind, name).root, { recursive: true, force: true });
    o.progress(`-----> Destroyed ${kind} ${name} (its backups stay under ${this.backupDir(kind, name)})`);
  }

  async link(kind: ServiceKind, name: string, app: string, o: { as?: string; origin: Origin; progress: Progress }): Promise<void> {
    const s = this.#d.store.get(kind, name);
    const record = await this.#d.apps.get(app);
    const variable = o.as ?? DEFAULT_LINK_VAR[kind];
    if (this.#linkedApps(kind, name).includes(app)) {
      throw new SlipwayError('E_SERVICE', `${kind} ${name} is already linked to ${app}: unlink it first to change the variable`);
    }
    if (variable in record.config) {
      throw new SlipwayError('E_SERVICE', `${app} already has a config var ${variable}: unset it first or link with --as OTHER_NAME`);
    }
    this.#d.store.addLink(o.origin, { kind, name, app, var: variable });
    try {
      await ensureServiceContainer(this.#d.docker, this.#spec(s), this.#linkedApps(kind, name));
      await joinLinkNetwork(this.#d.docker, kind, name, app);
      // Running containers join at once; new ones join at start (runtime/containers.ts).
      const running = (await listAppContainers(this.#d.docker, app)).map((c) => c.Id);
      await joinAppContainers(this.#d.docker, linkNetworkName(kind, name, app), running);
      o.progress(`-----> Linking ${kind} ${name} to ${app} as ${variable}`);
      await this.#d.ops.setConfig(app, { set: { [variable]: serviceUrl(kind, name, s.password) }, unset: [] }, { restart: true, actor: o.origin.actor, progress: o.progress });
    } catch (err) {
      await dropLinkNetwork(this.#d.docker, kind, name, app).catch(() => undefined);
      this.#d.store.removeLink(o.origin, kind, name, app);
      throw err;
    }
  }

  async unlink(kind: ServiceKind, name: string, app: string, o: { origin: Origin; progress: Progress }): Promise<void> {
    this.#d.store.get(kind, name);
    const link = this.#d.store.links(kind, name).find((l) => l.app === app);
    if (!link) throw new SlipwayError('E_SERVICE', `${kind} ${name} is not linked to ${app}: see \`slipway ${kind}:info ${name}\``);
    o.progress(`-----> Unlinking ${kind} ${name} from ${app} (${link.var})`);
    // The network goes first: the restart below must not start containers that still join it.
    await dropLinkNetwork(this.#d.docker, kind, name, app);
    this.#d.store.removeLink(o.origin, kind, name, app);
    if (await this.#d.apps.find(app)) {
      await this.#d.ops.setConfig(app, { set: {}, unset: [link.var] }, { restart: true, actor: o.origin.actor, progress: o.progress });
    }
  }

  /** `apps:destroy`: the app's links and their networks go with it. */
  async appDestroyed(app: string): Promise<ServiceLink[]> {
    const links = this.#d.store.forgetApp(app);
    for (const l of links) await dropLinkNetwork(this.#d.docker, l.kind, l.name, app).catch((err: unknown) => this.#d.logger.warn({ app, service: l.name, err: (err as Error).message }, 'removing a link network failed'));
    return links;
  }

  /**
   * A config as the app's links stand now (for a rollback, which keeps the current links: README
   * "Services"): each link's variable set to its URL, and a service URL the app is no longer
   * linked by dropped.
   */
  configWithLinks(app: string, config: Readonly<Record<string, string>>): Record<string, string> {
    const services = this.#d.store.list();
    const links = this.#d.store.linksOfApp(app).map((l) => {
      const s = services.find((x) => x.kind === l.kind && x.name === l.name);
      return { var: l.var, url: s ? serviceUrl(l.kind, l.name, s.password) : '' };
    });
    return withLinks(config, links.filter((l) => l.url !== ''), new Set(services.map((s) => serviceUrl(s.kind, s.name, s.password))));
  }

  #linkedApps(kind: ServiceKind, name: string): string[] {
    return this.#d.store.links(kind, name).map((l) => l.app);
  }

  /**
   * After a daemon start: every service's container exists, runs and sits on its link networks.
   * What a daemon killed mid-operation left is undone first (README "Services": killing the daemon
   * during an import, restore or backup loses nothing): a redis swap that did not finish gets its
   * old RDB back, and half-written dumps and backup temp files go.
   */
  async reconcile(progress: Progress): Promise<void> {
    for (const s of this.#d.store.list()) {
      try {
        await this.#undoInterrupted(s, progress);
        await ensureServiceContainer(this.#d.docker, this.#spec(s), []);
        for (const app of this.#linkedApps(s.kind, s.name)) await joinLinkNetwork(this.#d.docker, s.kind, s.name, app);
      } catch (err) {
        progress(`${s.kind} ${s.name}: ${(err as Error).message}`);
      }
    }
  }

  /** No operation runs at a daemon start, so whatever an interrupted one left can go. */
  async #undoInterrupted(s: ServiceRecord, progress: Progress): Promise<void> {
    const dir = this.#dir(s.kind, s.name);
    if (s.kind === 'redis') {
      const old = path.join(dir.data, BEFORE_IMPORT);
      if (await fsp.stat(old).catch(() => null)) {
        // The import was never reported done: the data from before it comes back, whether the
        // new file was half copied or already loaded (its import backed up the old data anyway).
        progress(`redis ${s.name}: an import was interrupted, putting the data from before it back`);
        await stopServiceContainer(this.#d.docker, 'redis', s.name);
        await fsp.rename(old, path.join(dir.data, 'dump.rdb'));
      }
    }
    for (const f of await fsp.readdir(dir.io).catch(() => [] as string[])) if (/^(export|import)-[0-9a-f]{12}\./.test(f)) await fsp.rm(path.join(dir.io, f), { force: true });
    const backups = this.backupDir(s.kind, s.name);
    for (const f of await fsp.readdir(backups).catch(() => [] as string[])) if (f.endsWith('.tmp')) await fsp.rm(path.join(backups, f), { force: true });
  }

  /**
   * `connect`: psql or redis-cli in the service's container, wired to the caller (with a pty when
   * it has a terminal). The password travels in the exec's environment only (redis), or is not
   * needed at all (psql as the server's user over its socket); histories go nowhere.
   */
  async connect(kind: ServiceKind, name: string, io: AttachedIO): Promise<number> {
    const s = this.#d.store.get(kind, name);
    const state = await serviceState(this.#d.docker, kind, name);
    if (state.status !== 'running') throw new SlipwayError('E_SERVICE', `${kind} ${name} is ${state.status}: see \`slipway ${kind}:info ${name}\``);
    const [cmd, env] = kind === 'postgres' ? [['psql', '--dbname', name], ['PSQL_HISTORY=/dev/null']] : [['redis-cli'], [`REDISCLI_AUTH=${s.password}`, 'REDISCLI_HISTFILE=/dev/null']];
    return attachServiceExec(this.#d.docker, kind, name, cmd, env, io);
  }

  /** The service container's output; with `follow`, until `o.signal` aborts. */
  async logs(kind: ServiceKind, name: string, o: ServiceLogsOptions): Promise<void> {
    this.#d.store.get(kind, name);
    await streamServiceLogs(this.#d.docker, kind, name, o);
  }

  // ---- dumps ----

  /** Writes a dump of the service (pg_dump custom format, or an RDB file) to `out`. */
  async export(kind: ServiceKind, name: string, out: NodeJS.WritableStream): Promise<void> {
    const file = await this.#dumpToIo(kind, name);
    try {
      await pipeline(fs.createReadStream(file), out, { end: false });
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  /** Dumps into the service's io directory; returns the host path. */
  async #dumpToIo(kind: ServiceKind, name: string): Promise<string> {
    const s = this.#d.store.get(kind, name);
    const base = `export-${randomBytes(6).toString('hex')}.${EXT[kind]}`;
    const inside = `${IO_MOUNT}/${base}`;
    const r =
      kind === 'postgres'
        ? await execInService(this.#d.docker, kind, name, ['pg_dump', '--format=custom', `--file=${inside}`, '--dbname', name])
        : await execInService(this.#d.docker, kind, name, ['redis-cli', '--rdb', inside], [`REDISCLI_AUTH=${s.password}`]);
    const host = path.join(this.#dir(kind, name).io, base);
    if (r.code !== 0) {
      await fsp.rm(host, { force: true });
      throw new SlipwayError('E_SERVICE', `dumping ${kind} ${name} failed: ${oneLineOf(r.stderr || r.stdout)}`);
    }
    return host;
  }

  /**
   * Replaces the service's data with a dump read from `input`, all or nothing: the dump is
   * checked first (a file that is not one is refused and nothing changes) and the current data
   * is backed up before it is replaced.
   */
  async import(kind: ServiceKind, name: string, input: NodeJS.ReadableStream, progress: Progress): Promise<void> {
    this.#d.store.get(kind, name);
    const dir = this.#dir(kind, name);
    const base = `import-${randomBytes(6).toString('hex')}.${EXT[kind]}`;
    const host = path.join(dir.io, base);
    try {
      await pipeline(input, fs.createWriteStream(host, { mode: 0o600 }));
      await fsp.chown(host, SERVICE_UID, SERVICE_UID);
      await this.#replaceWith(kind, name, host, base, progress);
    } finally {
      await fsp.rm(host, { force: true });
    }
  }

  async #replaceWith(kind: ServiceKind, name: string, host: string, base: string, progress: Progress): Promise<void> {
    const inside = `${IO_MOUNT}/${base}`;
    const check = kind === 'postgres' ? ['pg_restore', '--list', inside] : ['redis-check-rdb', inside];
    const checked = await execInService(this.#d.docker, kind, name, check);
    if (checked.code !== 0 || (await fsp.stat(host)).size === 0) {
      const what = kind === 'postgres' ? 'a pg_dump custom-format archive (pg_dump -Fc)' : 'a Redis RDB file';
      throw new SlipwayError('E_SERVICE', `the input is not ${what}: nothing was changed`);
    }
    const backup = await this.backup(kind, name, progress);
    progress(`-----> Replacing the data of ${kind} ${name} (the previous data is backup ${backup.id})`);
    if (kind === 'postgres') {
      const r = await execInService(this.#d.docker, kind, name, ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-owner', '--exit-on-error', '--dbname', name, inside]);
      if (r.code !== 0) throw new SlipwayError('E_SERVICE', `restoring into postgres ${name} failed, nothing was changed: ${oneLineOf(r.stderr)}`);
      return;
    }
    await this.#swapRdb(name, host, backup.id);
  }

  /** Redis loads its RDB at start: stop, swap the file, start; on failure the old file comes back. */
  async #swapRdb(name: string, host: string, backupId: string): Promise<void> {
    const s = this.#d.store.get('redis', name);
    const dir = this.#dir('redis', name);
    const live = path.join(dir.data, 'dump.rdb');
    const old = path.join(dir.data, BEFORE_IMPORT);
    await stopServiceContainer(this.#d.docker, 'redis', name);
    const hadOld = await fsp.rename(live, old).then(() => true, () => false);
    try {
      await fsp.copyFile(host, live);
      await fsp.chown(live, SERVICE_UID, SERVICE_UID);
      await ensureServiceContainer(this.#d.docker, this.#spec(s), this.#linkedApps('redis', name));
      await waitServiceHealthy(this.#d.docker, 'redis', name, READY_TIMEOUT_MS);
    } catch (err) {
      await stopServiceContainer(this.#d.docker, 'redis', name).catch(() => undefined);
      if (hadOld) await fsp.rename(old, live);
      await ensureServiceContainer(this.#d.docker, this.#spec(s), this.#linkedApps('redis', name));
      throw new SlipwayError('E_SERVICE', `redis ${name} did not start with the new data, the old data is back (backup ${backupId}): ${(err as Error).message}`, { cause: err });
    }
    await fsp.rm(old, { force: true });
  }

  // ---- backups ----

  /** A timestamped dump under SLIPWAY_HOME/backups/<kind>/<name>/; keeps the newest `serviceBackupsKeep`. */
  async backup(kind: ServiceKind, name: string, progress: Progress): Promise<BackupInfo> {
    const dump = await this.#dumpToIo(kind, name);
    const dir = this.backupDir(kind, name);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const id = `${stamp}-${randomBytes(3).toString('hex')}`;
    const target = path.join(dir, `${id}.${EXT[kind]}`);
    try {
      // Copy then rename: a crash or a full disk leaves a stray temp file, never a torn backup.
      const temp = `${target}.tmp`;
      await fsp.copyFile(dump, temp).catch(async (err: unknown) => {
        await fsp.rm(temp, { force: true });
        throw new SlipwayError('E_SERVICE', `writing backup ${target} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): free disk space and retry; older backups are kept`, { cause: err });
      });
      const fd = await fsp.open(temp, 'r');
      await fd.sync();
      await fd.close();
      await fsp.rename(temp, target);
    } finally {
      await fsp.rm(dump, { force: true });
    }
    await this.#prune(kind, name);
    const { size } = await fsp.stat(target);
    progress(`-----> Backup ${id} of ${kind} ${name} (${size} bytes)`);
    return { id, bytes: size, createdAt: new Date().toISOString() };
  }

  async backups(kind: ServiceKind, name: string): Promise<BackupInfo[]> {
    this.#d.store.get(kind, name);
    const dir = this.backupDir(kind, name);
    const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(`.${EXT[kind]}`) && BACKUP_ID.test(f.slice(0, -EXT[kind].length - 1))).sort();
    const out: BackupInfo[] = [];
    for (const f of names) {
      const st = await fsp.stat(path.join(dir, f));
      out.push({ id: f.slice(0, -EXT[kind].length - 1), bytes: st.size, createdAt: st.mtime.toISOString() });
    }
    return out;
  }

  async #prune(kind: ServiceKind, name: string): Promise<void> {
    const all = await this.backups(kind, name);
    const extra = all.slice(0, Math.max(0, all.length - this.#d.config.serviceBackupsKeep));
    for (const b of extra) await fsp.rm(path.join(this.backupDir(kind, name), `${b.id}.${EXT[kind]}`), { force: true });
  }

  /** Replaces the data with a backup, after backing up the current state. */
  async restore(kind: ServiceKind, name: string, id: string, progress: Progress): Promise<void> {
    if (!BACKUP_ID.test(id)) throw new SlipwayError('E_USAGE', `invalid backup id ${JSON.stringify(id.slice(0, 40))}: use one listed by \`slipway ${kind}:backups ${name}\``, { exitCode: 2 });
    const file = path.join(this.backupDir(kind, name), `${id}.${EXT[kind]}`);
    if (!(await fsp.stat(file).catch(() => null))) throw new SlipwayError('E_SERVICE', `${kind} ${name} has no backup ${id}: see \`slipway ${kind}:backups ${name}\``);
    await this.import(kind, name, fs.createReadStream(file), progress);
  }
}

/**
 * `config` with the current links' variables set, and any other variable holding one of the
 * platform's service URLs removed (a link made after the release and since undone). Pure.
 */
export function withLinks(config: Readonly<Record<string, string>>, links: readonly { var: string; url: string }[], serviceUrls: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) if (!serviceUrls.has(v)) out[k] = v;
  for (const l of links) out[l.var] = l.url;
  return out;
}

function oneLineOf(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines.find((l) => /error|fatal|invalid/i.test(l)) ?? lines[0] ?? 'no output').slice(0, 300);
}
