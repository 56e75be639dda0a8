import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Dockerode from 'dockerode';
import { SlipwayError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { processAlive } from '../core/processes.js';

/** Prints `-----> ...` style lines to the user. */
export type Progress = (line: string) => void;

const DEFAULT_SOCKET = '/var/run/docker.sock';
const DOCKER_PID_FILE = '/var/run/docker.pid';
const DEFAULT_DOCKERD_LOG = '/var/log/slipway/dockerd.log';
const START_TIMEOUT_MS = 60_000;
const POLL_MS = 250;
// A hung socket must not hang setup: a healthy engine answers a ping in milliseconds.
const PING_TIMEOUT_MS = 3_000;

/** The engine's socket: `DOCKER_HOST=unix://...` when set, else the standard path. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (!host) return DEFAULT_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  throw new SlipwayError('E_DOCKER', `DOCKER_HOST=${host} is not supported: slipway drives a local engine over a unix:// socket`);
}

export function createDocker(): Dockerode {
  return new Dockerode({ socketPath: dockerSocketPath() });
}

async function answers(docker: Dockerode): Promise<boolean> {
  const timeout = new AbortController();
  try {
    await Promise.race([
      docker.ping(),
      sleep(PING_TIMEOUT_MS, undefined, { signal: timeout.signal }).then(() => {
        throw new Error('ping timed out');
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    timeout.abort();
  }
}

/**
 * Makes sure a Docker Engine answers, installing Debian's `docker.io` and starting `dockerd`
 * when needed. The common case (engine up) costs one ping.
 */
export async function ensureDocker(o: { progress: Progress; logger: Logger; logFile?: string }): Promise<Dockerode> {
  const docker = createDocker();
  if (await answers(docker)) return docker;

  const socket = dockerSocketPath();
  if (process.getuid?.() !== 0) {
    throw new SlipwayError(
      'E_DOCKER',
      `no Docker Engine answers at ${socket}: start Docker, or run slipway as root so it can install and start it`,
    );
  }

  if (!(await findProgram('dockerd'))) {
    o.progress('-----> Installing Docker Engine (apt-get install docker.io)');
    await aptInstall(['docker.io'], o.logger, 'E_DOCKER');
    // Some hosts start the service from the package's postinst; no need to start a second one.
    if (await answers(docker)) return docker;
  }

  const logFile = o.logFile ?? DEFAULT_DOCKERD_LOG;
  // A live dockerd that does not answer yet is still starting: wait for it rather than race it.
  const running = await dockerdPidAlive(DOCKER_PID_FILE);
  if (!running) {
    await removeStalePidFile(DOCKER_PID_FILE);
    o.progress(`-----> Starting dockerd (log: ${logFile})`);
    await startDockerd(socket, logFile, o.logger);
  } else {
    o.progress('-----> Waiting for the running dockerd to answer');
  }

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(docker)) {
      o.progress('-----> Docker Engine is up');
      return docker;
    }
    await sleep(POLL_MS);
  }
  throw new SlipwayError('E_DOCKER', `dockerd did not answer at ${socket} within ${START_TIMEOUT_MS / 1000} s: see ${logFile}`);
}

/**
 * Whether the pid file names a live dockerd. Missing or unreadable file: false. A reused pid
 * that now belongs to another program does not count, or we would wait on it forever.
 */
export async function dockerdPidAlive(pidFile: string): Promise<boolean> {
  const pid = await readPid(pidFile);
  if (pid === null || !processAlive(pid)) return false;
  try {
    return (await fsp.readFile(`/proc/${pid}/comm`, 'utf8')).trim() === 'dockerd';
  } catch {
    return true;
  }
}

/**
 * dockerd refuses to start while its pid file names a live process, even when that pid now
 * belongs to another program (a crash, a container restart). Removes the file unless it names
 * a running dockerd.
 */
export async function removeStalePidFile(pidFile: string): Promise<boolean> {
  if (await dockerdPidAlive(pidFile)) return false;
  try {
    await fsp.unlink(pidFile);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function readPid(pidFile: string): Promise<number | null> {
  let text: string;
  try {
    text = await fsp.readFile(pidFile, 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

async function startDockerd(socket: string, logFile: string, logger: Logger): Promise<void> {
  const dockerd = await findProgram('dockerd');
  if (!dockerd) throw new SlipwayError('E_DOCKER', 'dockerd is not installed: install the docker.io package');
  await fsp.mkdir(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  try {
    // Its own process group and no pipes to us: dockerd outlives slipway and its terminal.
    // Listen where we will look: DOCKER_HOST may name a socket other than dockerd's default.
    const args = socket === DEFAULT_SOCKET ? [] : ['-H', `unix://${socket}`];
    const child = spawn(dockerd, args, { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', (err) => logger.error({ err }, 'dockerd failed to start'));
    child.unref();
    logger.info({ pid: child.pid, logFile }, 'started dockerd');
  } finally {
    fs.closeSync(fd);
  }
}

/** Absolute path of a program on PATH or in the sbin directories root's PATH may lack. */
export async function findProgram(name: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await fsp.access(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** `apt-get update` then `apt-get install -y <packages>`, non-interactively. */
export async function aptInstall(packages: string[], logger: Logger, code: ErrorCode): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const argv of [['update'], ['install', '-y', ...packages]]) {
    await new Promise<void>((resolve, reject) => {
      execFile('apt-get', argv, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        logger.debug({ argv, stdout: stdout.slice(-4000), stderr: stderr.slice(-4000) }, 'apt-get');
        if (!err) return resolve();
        const tail = stderr.trim().split('\n').slice(-3).join(' / ');
        reject(new SlipwayError(code, `apt-get ${argv[0]} failed (installing ${packages.join(' ')}): ${tail || err.message}`));
      });
    });
  }
}
