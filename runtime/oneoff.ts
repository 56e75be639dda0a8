import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import crypto from 'node:crypto';
import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import { containerOptions, hostIsolationFor, joinLinkNetworks, stopAndRemove } from './containers.js';
import { processSpec, type SpecApp, type SpecRelease } from './process-spec.js';

/**
 * One-off containers carry these labels instead of `slipway.app`, so formation code (which
 * lists containers by `slipway.app`) never counts, routes or replaces them.
 */
export const ONEOFF_LABELS = { kind: 'slipway.oneoff', app: 'slipway.oneoff.app', release: 'slipway.oneoff.release' } as const;

/**
 * Runs the Procfile's `release` command once, in a throw-away container of the new image with
 * the app's environment, and the network and confinement (runtime/isolation.ts) of its web
 * containers. Output streams to `onOutput` line by line; a non-zero exit throws E_RELEASE. The
 * container is always removed.
 */
export async function runReleaseCommand(o: {
  docker: Dockerode;
  /** The app and the release whose `release` process type runs (`processSpec`, like every other start). */
  app: SpecApp;
  release: SpecRelease;
  timeoutSeconds: number;
  onOutput: (line: string) => void;
  signal?: AbortSignal;
}): Promise<void> {
  const spec = processSpec(o.app, o.release, 'release', 1);
  const name = `${spec.app}.release-v${spec.release}-${crypto.randomBytes(3).toString('hex')}`;
  const host = await hostIsolationFor(o.docker, spec);
  const base = containerOptions(spec, name, host);
  const container = await o.docker
    .createContainer({
      ...base,
      Labels: { [ONEOFF_LABELS.kind]: 'release', [ONEOFF_LABELS.app]: spec.app, [ONEOFF_LABELS.release]: String(spec.release) },
      HostConfig: { ...base.HostConfig, RestartPolicy: { Name: 'no' } },
    })
    .catch((err: unknown) => {
      throw new SlipwayError('E_DOCKER', `creating the release container failed: ${(err as Error).message}`, { cause: err });
    });
  // The release command (migrations) needs the app's services.
  await joinLinkNetworks(o.docker, container, host).catch(async (err: unknown) => {
    await stopAndRemove(o.docker, container.id, 0).catch(() => {});
    throw err;
  });
  const kill = () => void container.kill().catch(() => {});
  o.signal?.addEventListener('abort', kill);
  const timer = setTimeout(kill, o.timeoutSeconds * 1000);
  try {
    // Attach before start so no early output is lost.
    const raw = await container.attach({ stream: true, stdout: true, stderr: true });
    const text = new PassThrough();
    o.docker.modem.demuxStream(raw, text, text);
    let partial = '';
    text.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) o.onOutput(line);
    });
    await container.start();
    const result = (await container.wait()) as { StatusCode: number };
    // The attach stream ends once the last output is through; bounded in case the engine forgets.
    await Promise.race([once(raw, 'end'), sleep(2000)]).catch(() => undefined);
    (raw as unknown as Readable).destroy();
    if (partial) o.onOutput(partial);
    o.signal?.throwIfAborted();
    if (result.StatusCode !== 0) {
      const why = result.StatusCode === 137 ? ' (killed: timed out, out of memory or cancelled)' : '';
      throw new SlipwayError('E_RELEASE', `the release command exited with code ${result.StatusCode}${why}: fix it (see its output above) and push again`);
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', kill);
    await stopAndRemove(o.docker, container.id, 0).catch(() => {});
  }
}
