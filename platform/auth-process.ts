import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { authFiles } from '../auth/files.js';
import { SlipwayError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import { keepRunning } from '../core/processes.js';

/**
 * The auth server runs as its own process (README "Users and access"), like the router: started
 * detached, so sign-in and private apps keep working while the daemon restarts; the next
 * `slipway server` adopts it by its pid file, and while a daemon runs it is started again if it
 * dies. Its sessions live in the database, so a restarted auth server keeps them.
 */
const authMain = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'auth', 'main.js');

export interface AuthProcess {
  pid(): number | null;
  /** nginx's upstream for it. */
  upstream: string;
  /** Stops supervising and leaves it running (daemon shutdown or restart). */
  detach(): void;
}

/** The pid in run/auth.pid when it names a live auth server of this build's path. */
export function runningAuthPid(paths: Paths): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(authFiles(paths).pid, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    // A recycled pid must not be adopted (or signalled): it has to be an auth server.
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.endsWith(path.join('auth', 'main.js'))) ? pid : null;
  } catch {
    return null;
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/_auth/login', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function startAuth(paths: Paths): Promise<number> {
  const files = authFiles(paths);
  fs.rmSync(files.pid, { force: true });
  const logFd = fs.openSync(files.log, 'a', 0o600);
  const child = spawn(process.execPath, [authMain, '--home', paths.home], { detached: true, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new SlipwayError('E_DAEMON', 'could not start the auth server process');
  for (let n = 0; n < 150; n++) {
    if (child.exitCode !== null) break;
    if (runningAuthPid(paths) === pid && (await answers(files.socket))) return pid;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new SlipwayError('E_DAEMON', `the auth server did not start: see ${files.log}`);
}

/** Adopts this home's auth server or starts one, and keeps it running while the daemon runs. */
export async function ensureAuthServer(paths: Paths, logger: Logger, progress: (line: string) => void): Promise<AuthProcess> {
  const files = authFiles(paths);
  fs.mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(paths.logDir, { recursive: true, mode: 0o700 });
  const adopted = runningAuthPid(paths);
  const pid = adopted !== null && (await answers(files.socket)) ? adopted : await startAuth(paths);
  progress(`-----> Auth server (pid ${pid}) ${pid === adopted ? 'adopted' : 'listening'} on ${files.socket}`);
  const unwatch = keepRunning({ what: 'auth server', running: () => runningAuthPid(paths), start: () => startAuth(paths), logger });
  return { pid: () => runningAuthPid(paths), upstream: `unix:${files.socket}`, detach: unwatch };
}
