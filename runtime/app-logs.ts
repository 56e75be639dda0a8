import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { LABELS, containerLogs, listAppContainers } from './containers.js';
import type { EventListener } from './events.js';
import { LineSplitter, formatLine, mergeTail, normalizeStamp, parseDockerLine, sinceOf, type LogLine } from './log-lines.js';

export interface AppLogsOptions {
  docker: Dockerode;
  app: string;
  /** The last `lines` lines over all containers. */
  lines: number;
  /** Only containers of this process type. */
  type?: string;
  follow: boolean;
  /** Ends a follow: every Docker log stream is destroyed before `streamAppLogs` resolves. */
  signal: AbortSignal;
  events: { subscribe(listener: EventListener): () => void };
  write(text: string): void;
  /** Told +1 when a Docker log stream opens and -1 when it closes (the daemon counts them). */
  onStream?: (delta: 1 | -1) => void;
}

const nameOf = (c: { Names: string[] }): string => (c.Names[0] ?? '').replace(/^\//, '');
const nowStamp = (): string => normalizeStamp(new Date().toISOString())!;

/**
 * An app's output: the last lines of all its containers merged by Docker's timestamps, then,
 * with `follow`, new lines as they come, from running containers and from any that start later
 * (scale up, redeploy, a restart after a crash), until `signal` aborts.
 */
export async function streamAppLogs(o: AppLogsOptions): Promise<void> {
  const wanted = (type: string | undefined) => o.type === undefined || type === o.type;
  // Listen before listing, so a container that starts in between is not missed.
  const started = new Map<string, string>();
  let follow: ((id: string, name: string) => void) | null = null;
  const unsubscribe = o.follow
    ? o.events.subscribe((e) => {
        if (e.app !== o.app || e.action !== 'start' || !wanted(e.type)) return;
        if (follow) follow(e.id, e.name);
        else started.set(e.id, e.name);
      })
    : () => true;
  try {
    const containers = (await listAppContainers(o.docker, o.app)).filter((c) => wanted(c.Labels[LABELS.type]));
    // Where following picks up, per container: after its last line shown, or after this read
    // (so `-n 0 --follow` and a quiet container do not replay their whole history).
    const last = new Map<string, string>();
    const readAt = nowStamp();
    const history = await Promise.all(
      containers.map(async (c) => {
        const lines = await readLines(o.docker, c.Id, nameOf(c), o.lines);
        last.set(c.Id, lines.length > 0 ? lines[lines.length - 1]!.time : readAt);
        return lines;
      }),
    );
    for (const line of mergeTail(history, o.lines)) o.write(formatLine(line));
    if (!o.follow || o.signal.aborted) return;

    const streams = new Map<string, Readable | null>();
    const opening = new Set<Promise<void>>();
    follow = (id, name) => {
      if (streams.has(id) || o.signal.aborted) return;
      streams.set(id, null);
      const since = last.get(id);
      const opened = containerLogs(o.docker, id, { follow: true, timestamps: true, ...(since ? { since: sinceOf(since) } : {}) }).then(
        (stream) => {
          o.onStream?.(1);
          stream.once('close', () => {
            o.onStream?.(-1);
            if (streams.get(id) === stream) streams.delete(id);
          });
          stream.on('error', () => stream.destroy());
          streams.set(id, stream);
          // Aborted while opening: the closing step below destroys it.
          if (o.signal.aborted) return;
          const splitter = new LineSplitter();
          stream.on('data', (chunk: Buffer) => {
            for (const raw of splitter.push(chunk)) {
              const line = parseDockerLine(raw, name, nowStamp());
              // `since` includes the line it names, which was already shown.
              if (since && line.time <= since) continue;
              last.set(id, line.time);
              o.write(formatLine(line));
            }
          });
        },
        () => {
          streams.delete(id);
        },
      );
      opening.add(opened);
      void opened.finally(() => opening.delete(opened));
    };
    for (const c of containers) if (c.State === 'running') follow(c.Id, nameOf(c));
    for (const [id, name] of started) follow(id, name);

    await new Promise<void>((resolve) => {
      if (o.signal.aborted) resolve();
      else o.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    unsubscribe();
    await Promise.all(opening);
    const open = [...streams.values()].filter((s): s is Readable => s !== null);
    await Promise.all(
      open.map((s) => {
        const closed = s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', resolve));
        s.destroy();
        return closed;
      }),
    );
  } finally {
    unsubscribe();
  }
}

/** The last `n` lines of one container, parsed; a container removed meanwhile has none. */
async function readLines(docker: Dockerode, id: string, name: string, n: number): Promise<LogLine[]> {
  let stream: Readable;
  try {
    stream = await containerLogs(docker, id, { tail: n, timestamps: true });
  } catch {
    return [];
  }
  const splitter = new LineSplitter();
  const fallback = nowStamp();
  const lines: LogLine[] = [];
  for await (const chunk of stream) for (const raw of splitter.push(chunk as Buffer)) lines.push(parseDockerLine(raw, name, fallback));
  for (const raw of splitter.end()) lines.push(parseDockerLine(raw, name, fallback));
  return lines;
}
