import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import type { Logger } from '../core/log.js';
import { LABELS, SWARM_TASK_LABEL } from './containers.js';
import { LineSplitter } from './log-lines.js';
import type { ProcessEvent } from './scheduler.js';

/** One line of Docker's event stream -> a ProcessEvent, or null for anything we do not follow. */
export function parseEvent(line: string): ProcessEvent | null {
  let raw: { Type?: string; Action?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
  try {
    raw = JSON.parse(line) as typeof raw;
  } catch {
    return null;
  }
  const attrs = raw.Actor?.Attributes ?? {};
  const id = raw.Actor?.ID ?? raw.id;
  if (raw.Type !== 'container' || (raw.Action !== 'start' && raw.Action !== 'die') || !id || !attrs[LABELS.app]) return null;
  // Swarm task containers are the docker-swarm scheduler's, which reports its tasks itself.
  if (attrs[SWARM_TASK_LABEL] !== undefined) return null;
  const release = Number(attrs[LABELS.release]);
  return {
    action: raw.Action,
    id,
    name: attrs.name ?? '',
    app: attrs[LABELS.app],
    type: attrs[LABELS.type] ?? '',
    release: Number.isInteger(release) && release > 0 ? release : null,
  };
}

export type EventListener = (event: ProcessEvent) => void;

/**
 * One Docker event stream for the whole daemon, shared by the route keeper and followed logs.
 * When the stream ends or fails (Docker restarted, socket hiccup) it reconnects, and tells
 * `onConnect` so that listeners can resynchronize what they may have missed.
 */
export class ContainerEvents {
  readonly #docker: Dockerode;
  readonly #logger: Logger;
  readonly #listeners = new Set<EventListener>();
  readonly #onConnect: () => void;
  #stream: Readable | null = null;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;

  constructor(o: { docker: Dockerode; logger: Logger; onConnect?: () => void }) {
    this.#docker = o.docker;
    this.#logger = o.logger;
    this.#onConnect = o.onConnect ?? (() => {});
  }

  /** Resolves once the first stream is open, so nothing after it is missed. */
  async start(): Promise<void> {
    await this.#connect();
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#stream?.destroy();
  }

  async #connect(): Promise<void> {
    const stream = (await this.#docker.getEvents({
      filters: { type: ['container'], event: ['start', 'die'], label: [LABELS.app] },
    })) as Readable;
    if (this.#closed) {
      stream.destroy();
      return;
    }
    this.#stream = stream;
    const lines = new LineSplitter();
    stream.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        const event = parseEvent(line);
        if (event) for (const listener of this.#listeners) listener(event);
      }
    });
    let ended = false;
    const reconnect = (why: string) => {
      if (ended || this.#closed) return;
      ended = true;
      this.#logger.warn({ why }, 'docker event stream ended; reconnecting');
      this.#schedule();
    };
    stream.on('end', () => reconnect('end'));
    stream.on('close', () => reconnect('close'));
    stream.on('error', (err) => reconnect(err.message));
  }

  #schedule(): void {
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.#connect().then(
        () => this.#onConnect(),
        (err: unknown) => {
          this.#logger.warn({ err: (err as Error).message }, 'docker events unavailable; retrying');
          this.#schedule();
        },
      );
    }, 1000);
    this.#retry.unref();
  }
}
