import type { Logger } from '../../core/log.js';
import type { ProcessEvent, ProcessEvents, ProcessInfo } from '../scheduler.js';

const POLL_MS = 2000;

/** Polls the tasks and reports those that started running or stopped since the last look. */
export class TaskPoller implements ProcessEvents {
  readonly #list: () => Promise<ProcessInfo[]>;
  readonly #logger: Logger;
  readonly #listeners = new Set<(e: ProcessEvent) => void>();
  readonly #known = new Map<string, ProcessInfo>();
  #timer: NodeJS.Timeout | null = null;
  #busy = false;

  constructor(list: () => Promise<ProcessInfo[]>, logger: Logger) {
    this.#list = list;
    this.#logger = logger;
  }

  async start(): Promise<void> {
    for (const p of await this.#list().catch(() => [])) if (p.state === 'running') this.#known.set(p.id, p);
    this.#timer = setInterval(() => void this.#poll(), POLL_MS);
    this.#timer.unref();
  }

  subscribe(listener: (e: ProcessEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async #poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const running = new Map((await this.#list()).filter((p) => p.state === 'running').map((p) => [p.id, p]));
      const emit = (action: 'start' | 'die', p: ProcessInfo) => {
        for (const l of this.#listeners) l({ action, id: p.id, name: p.name, app: p.app, type: p.type, release: p.release });
      };
      for (const [id, p] of this.#known) if (!running.has(id)) (this.#known.delete(id), emit('die', p));
      for (const [id, p] of running) if (!this.#known.has(id)) (this.#known.set(id, p), emit('start', p));
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message }, 'listing swarm tasks failed');
    } finally {
      this.#busy = false;
    }
  }
}

