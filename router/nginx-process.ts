import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { oneLine, SlipwayError } from '../core/errors.js';
import { writeJsonAtomic } from '../core/files.js';
import type { Logger } from '../core/log.js';
import { keepRunning, processAlive } from '../core/processes.js';
import { rotateLogs } from './log-rotation.js';
import { nginxFiles, renderNginxConfig, type NginxSettings } from './nginx-config.js';
import { watchRouteTable, type RouteTableSource } from './source.js';
import type { RouteTable } from './table.js';

/**
 * Slipway's own nginx instance (README "How it works"): its own prefix, config and pid file under
 * SLIPWAY_HOME, never the distribution's site or service. nginx runs as a daemon (its master
 * forks away), so it keeps serving while the Slipway daemon restarts; whoever starts next adopts
 * it by its pid file.
 */
export interface NginxInstance {
  /** The nginx binary (findProgram('nginx')). */
  nginx: string;
  settings: NginxSettings;
  logger: Logger;
}

interface Run {
  code: number;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stderr: String(stderr || (err ? err.message : '')).trim() });
    });
  });
}

const baseArgs = (i: NginxInstance, conf: string): string[] => {
  const f = nginxFiles(i.settings.prefix);
  // -e: errors found before the config is read go to our log too, not /var/log/nginx.
  return ['-p', i.settings.prefix, '-e', f.errorLog, '-c', conf];
};

/** Written by `slipway router:stop`: the supervisor then leaves nginx stopped until the next start. */
export const stoppedMarker = (prefix: string): string => path.join(prefix, 'stopped');

function markedStopped(prefix: string): boolean {
  try {
    readFileSync(stoppedMarker(prefix));
    return true;
  } catch {
    return false;
  }
}

export async function prepareNginxPrefix(prefix: string): Promise<void> {
  const f = nginxFiles(prefix);
  await fs.mkdir(path.dirname(f.errorLog), { recursive: true, mode: 0o755 });
  await fs.mkdir(f.temp, { recursive: true, mode: 0o700 });
}

/** The master's pid when the pid file names a live nginx master; null otherwise (stale or absent). */
export function runningNginxPid(prefix: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(nginxFiles(prefix).pid, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    // A recycled pid must not be adopted (or signalled): it has to be an nginx master.
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.startsWith('nginx: master') ? pid : null;
  } catch {
    return null;
  }
}

/** One line from nginx's stderr worth showing: the [emerg] message without its prefix. */
function nginxError(stderr: string): string {
  const line = stderr.split('\n').find((l) => /\[(emerg|alert|crit|error)\]/.test(l)) ?? stderr.split('\n')[0] ?? '';
  return line.replace(/^nginx: /, '').trim() || 'nginx failed without a message';
}

export type ApplyResult = 'unchanged' | 'written';

/**
 * Renders the table, writes it to a new file, has nginx test it, and only then renames it over
 * the live config. A config nginx refuses is never moved into place: the old one keeps serving.
 */
export async function writeTestedConfig(i: NginxInstance, table: RouteTable, o: { retest?: boolean } = {}): Promise<ApplyResult> {
  const f = nginxFiles(i.settings.prefix);
  const text = renderNginxConfig(table, i.settings);
  const current = await fs.readFile(f.conf, 'utf8').catch(() => null);
  // retest: the text is the same but files it names (certificate, key) may have changed.
  if (current === text && !o.retest) return 'unchanged';
  const next = `${f.conf}.${process.pid}.next`;
  await fs.writeFile(next, text, { mode: 0o644 });
  const t = await run(i.nginx, ['-t', '-q', ...baseArgs(i, next)]);
  if (t.code !== 0) {
    await fs.rm(next, { force: true });
    throw new SlipwayError('E_ROUTES', `nginx refused the new router config, the old one keeps serving: ${nginxError(t.stderr)}`);
  }
  await fs.rename(next, f.conf);
  return 'written';
}

/**
 * Which config the running master last loaded: its pid and the config text's hash, written after
 * every start and reload. A supervisor that adopts nginx reloads only when the file on disk is not
 * the one loaded (a daemon stopped between writing it and reloading): a reload closes the idle
 * keep-alive connections of every client (docs/router.md), so a daemon restart must not cause one.
 */
const loadedFile = (prefix: string): string => path.join(prefix, 'loaded.json');

/**
 * The config text and the identity of the TLS files it names: a certificate renewed on disk makes
 * a different hash, so a restarting daemon still picks it up (as `slipway router:reload` does).
 */
async function configHash(settings: NginxSettings): Promise<string | null> {
  const text = await fs.readFile(nginxFiles(settings.prefix).conf).catch(() => null);
  if (text === null) return null;
  const hash = crypto.createHash('sha256').update(text);
  for (const file of settings.https ? [settings.https.cert, settings.https.key] : []) {
    const st = await fs.stat(file).catch(() => null);
    hash.update(`\n${file} ${st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'missing'}`);
  }
  return hash.digest('hex');
}

async function recordLoaded(prefix: string, pid: number, sha256: string | null): Promise<void> {
  if (sha256 !== null) await writeJsonAtomic(loadedFile(prefix), { pid, sha256 }, 0o644);
}

/** True when the master `pid` loaded the config file (and TLS files) as they are now. */
export async function runsCurrentConfig(settings: NginxSettings, pid: number): Promise<boolean> {
  const loaded = JSON.parse(await fs.readFile(loadedFile(settings.prefix), 'utf8').catch(() => 'null')) as { pid?: unknown; sha256?: unknown } | null;
  return loaded !== null && loaded.pid === pid && loaded.sha256 === (await configHash(settings));
}

function workers(master: number): number[] {
  try {
    return readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Still taking new connections: an old worker renames itself once it closed its listeners. */
function accepting(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.startsWith('nginx: worker process') && !cmdline.includes('shutting down');
  } catch {
    return false;
  }
}

/** `nginx -s <signal>` to this instance's master; throws with nginx's own message. */
async function signalNginx(i: NginxInstance, signal: 'reload' | 'reopen'): Promise<void> {
  const r = await run(i.nginx, [...baseArgs(i, nginxFiles(i.settings.prefix).conf), '-s', signal]);
  if (r.code !== 0) throw new SlipwayError('E_ROUTES', `nginx ${signal} failed: ${nginxError(r.stderr)}`);
}

/**
 * Graceful reload: new workers take the new config, old ones finish (up to drainMs) and leave.
 * Resolves once no old worker accepts new connections, so the next request sees the new routes.
 */
export async function reloadNginx(i: NginxInstance): Promise<boolean> {
  const pid = runningNginxPid(i.settings.prefix);
  if (pid === null) return false;
  const before = workers(pid);
  // Hashed before the signal: what the master reads is this file or a later one.
  const sha256 = await configHash(i.settings);
  await signalNginx(i, 'reload');
  for (let n = 0; n < 100 && before.some(accepting); n++) await sleep(20);
  await recordLoaded(i.settings.prefix, pid, sha256);
  return true;
}

/**
 * Workers of this prefix whose master is gone (killed with -9): they keep the listening sockets,
 * so a new master could not bind. Found by the log files under our prefix they hold open.
 */
function orphanWorkers(prefix: string): number[] {
  const logs = path.dirname(nginxFiles(prefix).errorLog) + path.sep;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'utf8').startsWith('nginx: worker process')) continue;
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      if (ppid !== 1 && readFileSync(`/proc/${ppid}/cmdline`, 'utf8').startsWith('nginx: master')) continue;
      const ours = readdirSync(`/proc/${name}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${name}/fd/${fd}`).startsWith(logs);
        } catch {
          return false;
        }
      });
      if (ours) found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Starts the master (it daemonizes) and returns its pid once it listens. */
export async function startNginx(i: NginxInstance): Promise<number> {
  const f = nginxFiles(i.settings.prefix);
  const orphans = orphanWorkers(i.settings.prefix);
  if (orphans.length > 0) {
    i.logger.warn({ pids: orphans }, 'router workers left by a killed nginx master; stopping them');
    for (const pid of orphans) process.kill(pid, 'SIGQUIT');
    for (let n = 0; n < 100 && orphans.some(processAlive); n++) await sleep(50);
    for (const pid of orphans.filter(processAlive)) process.kill(pid, 'SIGKILL');
  }
  const sha256 = await configHash(i.settings);
  const r = await run(i.nginx, baseArgs(i, f.conf));
  if (r.code !== 0) {
    throw new SlipwayError('E_DAEMON', `nginx did not start: ${nginxError(r.stderr)} (see ${f.errorLog}; is the port in use?)`);
  }
  for (let n = 0; n < 50; n++) {
    const pid = runningNginxPid(i.settings.prefix);
    if (pid !== null) {
      await recordLoaded(i.settings.prefix, pid, sha256);
      return pid;
    }
    await sleep(100);
  }
  throw new SlipwayError('E_DAEMON', `nginx started but wrote no pid file: see ${f.errorLog}`);
}

/**
 * Stops this prefix's nginx: graceful (QUIT: stop accepting, finish requests) for up to graceMs,
 * then at once (TERM) for whatever is still open (websockets). Resolves true when one was running.
 */
export async function stopNginx(prefix: string, o: { graceMs?: number; stayStopped?: boolean } = {}): Promise<boolean> {
  if (o.stayStopped) await fs.writeFile(stoppedMarker(prefix), `${new Date().toISOString()}\n`).catch(() => undefined);
  const pid = runningNginxPid(prefix);
  if (pid === null) return false;
  const waitGone = async (ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!processAlive(pid)) return true;
      await sleep(25);
    }
    return !processAlive(pid);
  };
  process.kill(pid, 'SIGQUIT');
  if (await waitGone(o.graceMs ?? 10_000)) return true;
  process.kill(pid, 'SIGTERM');
  if (await waitGone(5000)) return true;
  process.kill(pid, 'SIGKILL');
  return true;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface NginxRouterOptions extends NginxInstance {
  routesFile: string;
  /** Domain used until the route table exists. */
  domain: string;
  /** Route changes within this window become one reload; default 200 ms. */
  coalesceMs?: number;
  /** How often the master's liveness is checked; default 1 s. */
  checkMs?: number;
  /** Route table poll interval (the fs.watch fallback); default 1 s. */
  pollMs?: number;
  /** The access and error logs rotate past this size (README "Routing"); default 64 MiB. */
  logMaxBytes?: number;
  /** How often log sizes are checked; default 60 s. */
  logCheckMs?: number;
}

/** Rotated copies kept of each router log (`access.log.1` .. `.3`). */
const LOG_KEEP = 3;

export interface NginxRouter {
  /** The master's pid right now (it changes when the supervisor had to restart it). */
  pid(): number | null;
  /** Re-renders and reloads now (`slipway router:reload`: also picks up new TLS files). */
  reload(): Promise<void>;
  /** Serves this table now (the daemon calls it before writing the table file). Never throws. */
  serve(table: RouteTable): Promise<void>;
  /** Resolves when every change seen so far is applied (tests; the daemon's shutdown). */
  settled(): Promise<void>;
  /** Stops supervising and leaves nginx serving (daemon shutdown or restart). */
  detach(): void;
  /** Stops supervising and stops nginx. */
  stop(o?: { graceMs?: number }): Promise<void>;
}

/**
 * Runs the router: adopts this prefix's nginx or starts one, re-renders on every route table
 * change (bursts coalesced into one reload), and starts nginx again if it dies. A table or
 * config nginx refuses is logged and skipped; what already serves keeps serving.
 */
export async function superviseNginx(o: NginxRouterOptions): Promise<NginxRouter> {
  const log = o.logger;
  await prepareNginxPrefix(o.settings.prefix);
  await fs.rm(stoppedMarker(o.settings.prefix), { force: true });
  let latest: RouteTable | null = null;
  let timer: NodeJS.Timeout | null = null;
  let chain: Promise<void> = Promise.resolve();
  let stopped = false;
  let driven = false;

  const apply = (force: boolean): Promise<void> => {
    chain = chain.then(async () => {
      if (stopped || latest === null) return;
      try {
        const result = await writeTestedConfig(o, latest);
        if (result === 'unchanged' && !force) return;
        if (await reloadNginx(o)) log.info({ apps: Object.keys(latest.apps).length }, 'router config reloaded');
      } catch (err) {
        log.error({ err: oneLine(err) }, 'router config not applied; the previous one keeps serving');
      }
    });
    return chain;
  };
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      void apply(false);
    }, o.coalesceMs ?? 200);
  };

  const source: RouteTableSource = await watchRouteTable(o.routesFile, {
    logger: log,
    defaultDomain: o.domain,
    ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs }),
    onChange: (t) => {
      // Once the daemon drives the router directly, the file only records what it served; an
      // event for an older write must not roll routes back.
      if (driven) return;
      latest = t;
      schedule();
    },
  });
  latest = source.current();
  if (timer) clearTimeout(timer);
  timer = null;

  // The first config must be valid (a refused one is a setup error, said once, at start).
  await writeTestedConfig(o, latest).catch(async (err: unknown) => {
    if (await fs.access(nginxFiles(o.settings.prefix).conf).then(() => false, () => true)) {
      source.close();
      throw err;
    }
    log.error({ err: oneLine(err) }, 'router config not applied; the previous one keeps serving');
  });
  let pid = runningNginxPid(o.settings.prefix);
  if (pid !== null) {
    if (await runsCurrentConfig(o.settings, pid)) {
      log.info({ pid }, 'router (nginx) already running with this config; adopted without a reload');
    } else {
      log.info({ pid }, 'router (nginx) already running; adopted');
      await reloadNginx(o);
    }
  } else {
    pid = await startNginx(o);
    log.info({ pid }, 'router (nginx) started');
  }

  const unwatch = keepRunning({
    what: 'router (nginx)',
    running: () => runningNginxPid(o.settings.prefix),
    start: () => startNginx(o),
    // `slipway router:stop` asked for it; and nothing restarts once we stopped supervising.
    paused: () => stopped || markedStopped(o.settings.prefix),
    ...(o.checkMs === undefined ? {} : { checkMs: o.checkMs }),
    logger: log,
  });

  const files = nginxFiles(o.settings.prefix);
  const rotation = setInterval(() => {
    rotateLogs({
      files: [files.accessLog, files.errorLog],
      maxBytes: o.logMaxBytes ?? 64 * 1024 * 1024,
      keep: LOG_KEEP,
      reopen: () => signalNginx(o, 'reopen'),
    }).then(
      (rotated) => rotated.length > 0 && log.info({ rotated }, 'router logs rotated'),
      (err: unknown) => log.error({ err: oneLine(err) }, 'router logs not rotated'),
    );
  }, o.logCheckMs ?? 60_000);
  rotation.unref();

  const halt = (): void => {
    stopped = true;
    clearInterval(rotation);
    unwatch();
    if (timer) clearTimeout(timer);
    source.close();
  };
  return {
    pid: () => runningNginxPid(o.settings.prefix),
    reload: async () => {
      if (!driven) {
        await source.refresh();
        latest = source.current();
      }
      const t = latest ?? source.current();
      await writeTestedConfig(o, t, { retest: true });
      await reloadNginx(o);
    },
    serve: (table) => {
      driven = true;
      latest = table;
      if (timer) clearTimeout(timer);
      timer = null;
      return apply(false);
    },
    settled: async () => {
      await source.refresh();
      if (timer) {
        clearTimeout(timer);
        timer = null;
        await apply(false);
      }
      await chain;
    },
    detach: halt,
    stop: async (s = {}) => {
      halt();
      await chain;
      await stopNginx(o.settings.prefix, s);
    },
  };
}
