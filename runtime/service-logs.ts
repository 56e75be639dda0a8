import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import type { ServiceKind } from '../core/service-store.js';
import { containerLogs } from './containers.js';
import { LineSplitter, formatLine, normalizeStamp, parseDockerLine } from './log-lines.js';
import { serviceContainerName, serviceState } from './service-containers.js';

export interface ServiceLogsOptions {
  /** The last `lines` lines of the container. */
  lines: number;
  follow: boolean;
  /** Ends a follow: the Docker log stream is destroyed before `streamServiceLogs` resolves. */
  signal: AbortSignal;
  write(text: string): void;
}

/**
 * A service's output (`postgres:logs`, README "Services"): its container's last lines, stdout and
 * stderr demultiplexed, formatted like an app's (`<time> slipway.postgres.db: <line>`); with
 * `follow`, new lines until `signal` aborts or the container is replaced (an import or restore
 * of redis restarts it: follow again).
 */
export async function streamServiceLogs(docker: Dockerode, kind: ServiceKind, name: string, o: ServiceLogsOptions): Promise<void> {
  const source = serviceContainerName(kind, name);
  const state = await serviceState(docker, kind, name);
  if (state.id === null) throw new SlipwayError('E_SERVICE', `${kind} ${name} has no container: restart the daemon to recreate it, then see \`slipway ${kind}:info ${name}\``);
  if (o.signal.aborted) return;
  let stream: Readable;
  try {
    stream = await containerLogs(docker, state.id, { tail: o.lines, follow: o.follow, timestamps: true });
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `reading the logs of ${source} failed: ${(err as Error).message.split('\n')[0]}: see \`slipway ${kind}:info ${name}\``, { cause: err });
  }
  const abort = (): void => void stream.destroy();
  o.signal.addEventListener('abort', abort, { once: true });
  const splitter = new LineSplitter();
  const emit = (raw: string): void => o.write(formatLine(parseDockerLine(raw, source, normalizeStamp(new Date().toISOString())!)));
  try {
    for await (const chunk of stream) for (const raw of splitter.push(chunk as Buffer)) emit(raw);
    for (const raw of splitter.end()) emit(raw);
  } catch (err) {
    // A follow ended by its caller closes the stream early: that is the normal end.
    if (!o.signal.aborted) throw new SlipwayError('E_DOCKER', `reading the logs of ${source} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    o.signal.removeEventListener('abort', abort);
    stream.destroy();
  }
}
