import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../core/config.js';
import { SlipwayError } from '../core/errors.js';
import { readJson, writeJsonAtomic } from '../core/files.js';
import type { Paths } from '../core/paths.js';

const routerMain = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'router', 'main.js');

export interface RouterRecord {
  pid: number;
  listen: string;
  port: number;
  httpsPort: number | null;
  startedAt: string;
}

export const routerRecordFile = (paths: Paths): string => path.join(paths.runDir, 'router.json');

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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

/**
 * The router runs as its own process group so it outlives the daemon: a daemon restart (or
 * crash) never interrupts traffic to apps. A running router with the same address is adopted;
 * one with other settings is replaced.
 */
export async function ensureRouter(config: Config, paths: Paths, progress: (line: string) => void): Promise<RouterRecord> {
  const file = routerRecordFile(paths);
  const existing = await readJson<RouterRecord | null>(file, null);
  if (existing && isAlive(existing.pid)) {
    const same = existing.listen === config.listen && existing.port === config.httpPort && existing.httpsPort === config.httpsPort;
    if (same && (await portAnswers(config.listen, config.httpPort))) {
      progress(`-----> Router already running (pid ${existing.pid}); adopted`);
      return existing;
    }
    progress(`-----> Replacing router pid ${existing.pid} (settings changed)`);
    process.kill(existing.pid, 'SIGTERM');
    await waitFor(() => !isAlive(existing.pid), 10_000);
  }
  const args = [routerMain, '--routes', paths.routeTable, '--listen', config.listen, '--port', String(config.httpPort), '--log-level', config.logLevel];
  if (config.httpsPort !== null && config.tlsCert && config.tlsKey) {
    args.push('--https-port', String(config.httpsPort), '--tls-cert', config.tlsCert, '--tls-key', config.tlsKey);
  }
  const logFd = fs.openSync(path.join(paths.logDir, 'router.log'), 'a', 0o600);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new SlipwayError('E_DAEMON', 'could not start the router process');
  const up = await waitFor(async () => !isAlive(pid) || (await portAnswers(config.listen, config.httpPort)), 15_000);
  if (!up || !isAlive(pid)) {
    throw new SlipwayError('E_DAEMON', `the router did not start on ${config.listen}:${config.httpPort}: see ${path.join(paths.logDir, 'router.log')} (is the port in use?)`);
  }
  const record: RouterRecord = { pid, listen: config.listen, port: config.httpPort, httpsPort: config.httpsPort, startedAt: new Date().toISOString() };
  await writeJsonAtomic(file, record, 0o644);
  progress(`-----> Router listening on http://${config.listen}:${config.httpPort}/ (pid ${pid})`);
  return record;
}

/** Stops the router recorded for this SLIPWAY_HOME, by its pid; true when one was stopped. */
export async function stopRouter(paths: Paths): Promise<boolean> {
  const existing = await readJson<RouterRecord | null>(routerRecordFile(paths), null);
  if (!existing || !isAlive(existing.pid)) return false;
  process.kill(existing.pid, 'SIGTERM');
  await waitFor(() => !isAlive(existing.pid), 15_000);
  await fs.promises.rm(routerRecordFile(paths), { force: true });
  return true;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
