import { fork } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import type { RuntimeDir, RuntimePackage } from '../buildpacks/runtimes.js';
import { oneLine, SlipwayError, type ErrorCode } from '../core/errors.js';
import { existingPreparedRuntime, type MountedDir } from '../runtime/images.js';
import type { MakePreparedImage } from './runtime-prep.js';

/**
 * Runtime preparation in a short-lived child process (README "Server options", `prepareRuntimes`).
 * Unpacking Node.js (about 140 MB) and writing it into its shared image moved every byte through
 * the daemon, which kept about 45 MiB of that traffic's buffers for the rest of its life (glibc
 * does not give such memory back): measured with `node bench/footprint.mjs`. A child that exits
 * gives everything back. It runs at a lower CPU priority, so apps and pushes being served come
 * first, and ends with its parent.
 */
export type PrepRequest =
  | { op: 'unpack'; runtimesDir: string; mirrorDir: string; pkg: RuntimePackage }
  | { op: 'image'; instanceId: string; stackImage: string; mounted: readonly MountedDir[] };

export type PrepReply = { progress: string } | { result: RuntimeDir | null | string } | { error: { code: ErrorCode; message: string } };

const WORKER = fileURLToPath(new URL('./runtime-prep-worker.js', import.meta.url));
// Below the daemon and the apps, above nothing in particular: `nice 10`.
const NICENESS = 10;

function inChild(req: PrepRequest, onProgress: (line: string) => void): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
    if (child.pid !== undefined) {
      try {
        os.setPriority(child.pid, NICENESS);
      } catch {
        // Not allowed to lower it (an unprivileged daemon in tests): it runs at the daemon's priority.
      }
    }
    let stderr = '';
    let answered = false;
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('message', (m: PrepReply) => {
      if ('progress' in m) onProgress(m.progress);
      else if ('result' in m) ((answered = true), resolve(m.result));
      else ((answered = true), reject(new SlipwayError(m.error.code, m.error.message)));
    });
    child.on('error', (err) => reject(new SlipwayError('E_INTERNAL', `starting the runtime preparation process failed: ${err.message}`, { cause: err })));
    child.on('exit', (code, signal) => {
      if (!answered) reject(new SlipwayError('E_INTERNAL', `the runtime preparation process ended (${signal ?? `exit ${code}`}) without an answer: ${stderr.trim() ? oneLine(stderr) : 'no output'}; the next push that needs the runtime tries again`));
    });
    child.send(req);
  });
}

/** RuntimeUnpacks' `unpackWith`: the unpack in a child process. */
export function unpackInChild(o: { runtimesDir: string; mirrorDir: string }): (pkg: RuntimePackage) => Promise<RuntimeDir | null> {
  return async (pkg) => (await inChild({ op: 'unpack', ...o, pkg }, () => undefined)) as RuntimeDir | null;
}

/**
 * RuntimePreparer's `makeImage`: an image that exists is found here; a missing one is written by
 * a child process through its own engine connection (DOCKER_HOST, as the daemon's), scoped to the
 * same instance.
 */
export function makeImageInChild(o: { docker: Dockerode; instanceId: string }): MakePreparedImage {
  return async ({ stackImage, mounted, onProgress }) =>
    (await existingPreparedRuntime(o.docker, stackImage, mounted)) ?? ((await inChild({ op: 'image', instanceId: o.instanceId, stackImage, mounted }, onProgress)) as string);
}
