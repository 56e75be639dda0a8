import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { authFiles } from '../auth/files.js';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import { readJson } from '../core/files.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import { processAlive } from '../core/processes.js';
import type { NginxSettings } from '../router/nginx-config.js';
import { prepareNginxPrefix, reloadNginx, runningNginxPid, stopNginx, superviseNginx, writeTestedConfig, type NginxRouter } from '../router/nginx-process.js';
import { readRouteTable, emptyRouteTable } from '../router/table.js';
import { aptInstall, findProgram } from '../runtime/host-setup.js';

/**
 * The router is Slipway's own nginx (README "How it works"): config, pid file and logs under
 * $SLIPWAY_HOME/router, never the distribution's default site or service. nginx daemonizes, so it
 * outlives the Slipway daemon: a daemon restart (or crash) never interrupts traffic to apps, and
 * the next `slipway server` adopts it by its pid file.
 */
export const routerPrefix = (paths: Paths): string => path.join(paths.home, 'router');

export function portAnswers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('connect', () => done(true));
    socket.on('error', () => done(false));
  });
}

/** Debian's nginx-light, installed like docker.io when missing; returns the binary's path. */
export async function ensureNginx(o: { progress: (line: string) => void; logger: Logger }): Promise<string> {
  const found = await findProgram('nginx');
  if (found) return found;
  o.progress('-----> Installing the router (apt-get install nginx-light)');
  await aptInstall(['nginx-light'], o.logger, 'E_DAEMON');
  const installed = await findProgram('nginx');
  if (!installed) throw new SlipwayError('E_DAEMON', 'nginx is not installed: install the nginx-light package');
  return installed;
}

/** Half the drain, between 100 ms and 250 ms. Pure. */
export const upstreamKeepaliveTime = (drainMs: number): number => Math.min(250, Math.max(100, Math.floor(drainMs / 2)));

/**
 * How long after a switch nginx may still send a new request to a replaced container: a kept
 * connection is put back for reuse until `keepalive_time` after it was opened, then may wait idle
 * as long again (the upstreams' idle `keepalive_timeout` is no longer). Pure.
 */
export const upstreamTurnover = (drainMs: number): number => 2 * upstreamKeepaliveTime(drainMs);

export function nginxSettings(config: Config, paths: Paths): NginxSettings {
  return {
    prefix: routerPrefix(paths),
    listen: config.listen,
    httpPort: config.httpPort,
    https: config.httpsPort !== null && config.tlsCert && config.tlsKey ? { port: config.httpsPort, cert: config.tlsCert, key: config.tlsKey } : null,
    maxPushBytes: config.maxPushBytes,
    // Kept upstream connections move to the new release within the turnover (at most 0.5 s), so
    // a push returns once only the new release gets requests, and the old containers are idle
    // well before they stop (docs/router.md, "Stable fronts").
    upstreamKeepaliveTimeMs: upstreamKeepaliveTime(config.drainMs),
    // Private apps and /_auth/ go to the auth server (platform/auth-process.ts).
    auth: `unix:${authFiles(paths).socket}`,
    // As root, workers run as the daemon's user too, so they can reach its git socket in run/
    // (0700); the Node router they replace ran with the same rights.
    ...(process.getuid?.() === 0 ? { user: os.userInfo().username } : {}),
  };
}

/** Before nginx, the router was a Node process recorded in run/router.json: stop it on upgrade. */
async function stopLegacyRouter(paths: Paths, progress: (line: string) => void): Promise<void> {
  const file = path.join(paths.runDir, 'router.json');
  const old = await readJson<{ pid: number } | null>(file, null);
  if (old && processAlive(old.pid)) {
    progress(`-----> Replacing the old Node router (pid ${old.pid}) with nginx`);
    process.kill(old.pid, 'SIGTERM');
    for (let n = 0; n < 100 && processAlive(old.pid); n++) await new Promise((r) => setTimeout(r, 100));
  }
  await fs.promises.rm(file, { force: true });
}

/** Starts (or adopts) the router and keeps it configured from the route table while the daemon runs. */
export async function ensureRouter(config: Config, paths: Paths, logger: Logger, progress: (line: string) => void): Promise<NginxRouter> {
  const nginx = await ensureNginx({ progress, logger });
  await stopLegacyRouter(paths, progress);
  const adopted = runningNginxPid(routerPrefix(paths));
  const router = await superviseNginx({
    nginx,
    logger,
    settings: nginxSettings(config, paths),
    routesFile: paths.routeTable,
    domain: config.domain,
    logMaxBytes: config.routerLogMaxBytes,
  });
  const verb = adopted === null ? 'listening' : 'adopted';
  progress(`-----> Router (nginx, pid ${router.pid()}) ${verb} on http://${config.listen}:${config.httpPort}/${config.httpsPort !== null ? ` and https port ${config.httpsPort}` : ''}`);
  return router;
}

/**
 * `slipway router:reload`: renders the current route table, has nginx test it, then reloads
 * gracefully (this also picks up certificate and key files replaced on disk).
 */
export async function reloadRouter(config: Config, paths: Paths, logger: Logger): Promise<boolean> {
  const nginx = await findProgram('nginx');
  if (!nginx) throw new SlipwayError('E_DAEMON', 'nginx is not installed: run `slipway setup`');
  const settings = nginxSettings(config, paths);
  if (runningNginxPid(settings.prefix) === null) return false;
  await prepareNginxPrefix(settings.prefix);
  const table = await readRouteTable(paths.routeTable).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return emptyRouteTable(config.domain);
    throw err;
  });
  await writeTestedConfig({ nginx, settings, logger }, table, { retest: true });
  return reloadNginx({ nginx, settings, logger });
}

/** Stops the router of this SLIPWAY_HOME (graceful, by its pid file); true when one was stopped. */
export async function stopRouter(paths: Paths): Promise<boolean> {
  await stopLegacyRouter(paths, () => undefined);
  // It stays stopped (the running daemon's supervisor does not start it again) until the next
  // `slipway server`.
  return stopNginx(routerPrefix(paths), { graceMs: 15_000, stayStopped: true });
}
