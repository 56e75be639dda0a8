import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { SlipwayError } from '../../core/errors.js';
import { readTextIfExists, writeFileAtomicText } from '../../core/files.js';
import type { Logger } from '../../core/log.js';
import { processAlive } from '../../core/processes.js';
import { aptInstall, findProgram } from '../host-setup.js';

const START_TIMEOUT_MS = 30_000;
const PROGRAM = 'docker-registry';

/** Where the registry binds unless `registryAddress` says otherwise: engines trust 127.0.0.0/8 without TLS. */
export const DEFAULT_REGISTRY_ADDRESS = '127.0.0.1';

/**
 * The registry config: storage under the platform's home, plain HTTP on `address` (loopback by
 * default; other nodes need an address they reach, README "Schedulers"), deletes allowed so
 * removed apps can be cleaned. Pure.
 */
export function registryConfig(o: { storage: string; port: number; address?: string }): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(o.storage)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${o.address ?? DEFAULT_REGISTRY_ADDRESS}:${o.port}`,
    '',
  ].join('\n');
}

/** The `<address>:<port>` a config written by `registryConfig` binds, or null. Pure. */
export function configuredAddress(text: string | null): string | null {
  const m = text === null ? null : /^ {2}addr: ([0-9.]+:[0-9]+)$/m.exec(text);
  return m?.[1] ?? null;
}

/** The port a config written by `registryConfig` binds, or null. Pure. */
export function configuredPort(text: string | null): number | null {
  const address = configuredAddress(text);
  return address === null ? null : Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Whether the registry API answers on `address` (GET /v2/ is 200 on an open registry). */
export function registryAnswers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const [host, port] = address.split(':') as [string, string];
    const req = http.get({ host, port: Number(port), path: '/v2/', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The platform's image registry (Debian's `docker-registry`): a background process like dockerd,
 * its config, pid file, log and storage under `dir` (SLIPWAY_HOME/registry). A live one is
 * adopted; otherwise it is installed when missing and started. It binds `address` (loopback
 * unless `registryAddress` names one other nodes reach). The port is chosen once (a free one
 * unless `port` is given) and kept in the config, since service image references name it.
 * Returns the registry's address, `<address>:<port>`.
 */
export async function ensureRegistry(o: { dir: string; address?: string; port?: number; logger: Logger; progress: (line: string) => void }): Promise<string> {
  await fsp.mkdir(path.join(o.dir, 'storage'), { recursive: true, mode: 0o700 });
  const configFile = path.join(o.dir, 'config.yml');
  const pidFile = path.join(o.dir, 'registry.pid');
  const host = o.address ?? DEFAULT_REGISTRY_ADDRESS;
  const text = await readTextIfExists(configFile);
  const written = configuredPort(text);
  const port = o.port ?? written ?? (await freePort(host));
  const address = `${host}:${port}`;
  const pid = Number((await readTextIfExists(pidFile))?.trim());
  const alive = Number.isInteger(pid) && pid > 0 && processAlive(pid) && (await commOf(pid)) === PROGRAM;
  if (alive && configuredAddress(text) === address && (await registryAnswers(address))) return address;
  if (alive) process.kill(pid, 'SIGTERM');

  let program = await findProgram(PROGRAM);
  if (!program) {
    o.progress(`-----> Installing the image registry (apt-get install ${PROGRAM})`);
    await aptInstall([PROGRAM], o.logger, 'E_DOCKER');
    program = await findProgram(PROGRAM);
    if (!program) throw new SlipwayError('E_DOCKER', `${PROGRAM} is not on PATH after installing it: install Debian's docker-registry package`);
  }
  await writeFileAtomicText(configFile, registryConfig({ storage: path.join(o.dir, 'storage'), port, address: host }), 0o600);
  const logFile = path.join(o.dir, 'registry.log');
  const fd = fs.openSync(logFile, 'a', 0o600);
  try {
    // Its own process group and no pipes to us: it outlives the daemon, like the app services.
    const child = spawn(program, ['serve', configFile], { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', (err) => o.logger.error({ err: err.message }, 'registry failed to start'));
    child.unref();
    await writeFileAtomicText(pidFile, `${child.pid}\n`, 0o600);
    o.logger.info({ pid: child.pid, address }, 'started the image registry');
  } finally {
    fs.closeSync(fd);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await registryAnswers(address)) {
      o.progress(`-----> Image registry on ${address}`);
      return address;
    }
    await sleep(200);
  }
  throw new SlipwayError('E_DOCKER', `the image registry did not answer on ${address} within ${START_TIMEOUT_MS / 1000} s: see ${logFile}`);
}

/**
 * One line on the registry under `dir` for `slipway status`: whether it answers on the port its
 * config names, or that it has not been started (it starts on the first docker-swarm deploy).
 */
export async function registrySummary(dir: string): Promise<string> {
  const address = configuredAddress(await readTextIfExists(path.join(dir, 'config.yml')));
  if (address === null) return 'not started yet (starts on the first docker-swarm deploy)';
  return (await registryAnswers(address)) ? `running on ${address}` : `stopped (${address}; starts again on the next docker-swarm deploy, see ${path.join(dir, 'registry.log')})`;
}

/** Stops a registry `ensureRegistry` started under `dir` (tests, uninstall). */
export async function stopRegistry(dir: string): Promise<void> {
  const pid = Number((await readTextIfExists(path.join(dir, 'registry.pid')))?.trim());
  if (Number.isInteger(pid) && pid > 0 && processAlive(pid) && (await commOf(pid)) === PROGRAM) process.kill(pid, 'SIGTERM');
}

async function commOf(pid: number): Promise<string> {
  return (await fsp.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

/** `slipway/<app>:v3` -> `127.0.0.1:5000/slipway/<app>:v3`. Pure. */
export function registryRef(registry: string, image: string): string {
  return `${registry}/${image}`;
}

/**
 * Tags a release image with the registry's name and pushes it, following the push to its end
 * (an error the engine reports mid-stream fails it), so every node can pull what a service names.
 */
export async function pushToRegistry(docker: Dockerode, registry: string, image: string): Promise<string> {
  const ref = registryRef(registry, image);
  const colon = ref.lastIndexOf(':');
  const [repo, tag] = [ref.slice(0, colon), ref.slice(colon + 1)];
  try {
    await docker.getImage(image).tag({ repo, tag });
    // The engine wants an auth header even for a registry without auth.
    const stream = (await docker.getImage(ref).push({ authconfig: {} })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = events?.find((e) => e.error || e.errorDetail);
        if (err) reject(err);
        else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
        else resolve();
      });
    });
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `pushing ${image} to the platform registry (${registry}) failed: ${(err as Error).message}`, { cause: err });
  }
  return ref;
}
