import { followBuildLog, readBuildLog } from '../core/build-logs.js';
import { recover, type RecoverDeps } from './recover.js';
import { RouteKeeper } from './route-keeper.js';
import type { LifeService } from '../receiver/commands/types.js';
import type { ProcessEvents } from '../runtime/scheduler.js';

/** What recovery needs, less the progress callback that `start()` takes. */
export type LifeDeps = Omit<RecoverDeps, 'progress'>;

/**
 * Logs, build history, and what keeps apps alive around the daemon: one Docker event stream
 * (route keeper, followed logs) and the recovery a starting daemon runs.
 */
export class Life implements LifeService {
  readonly #d: LifeDeps;
  readonly #events: ProcessEvents;
  readonly #keeper: RouteKeeper;
  /** Docker log streams open for `logs --follow` right now. */
  #logStreams = 0;

  constructor(d: LifeDeps) {
    this.#d = d;
    this.#keeper = new RouteKeeper(d);
    this.#events = d.scheduler.events({
      onConnect: () => void this.#keeper.resync().catch((err: unknown) => d.logger.warn({ err: (err as Error).message }, 'route resync failed')),
    });
    this.#events.subscribe(this.#keeper.handle);
  }

  /** Watches Docker first (so nothing is missed), then recovers state left by the last daemon. */
  async start(progress: (line: string) => void): Promise<void> {
    await this.#events.start();
    try {
      await recover({ ...this.#d, progress });
      await this.#keeper.resync();
    } catch (err) {
      this.close(); // an open event stream would keep a failed daemon's process alive
      throw err;
    }
  }

  close(): void {
    this.#events.close();
  }

  async logs(app: string, o: { lines: number; type?: string; follow: boolean }, io: { out(text: string): void; signal: AbortSignal }): Promise<void> {
    await this.#d.apps.get(app);
    await this.#d.scheduler.logs({
      app,
      lines: o.lines,
      ...(o.type === undefined ? {} : { type: o.type }),
      follow: o.follow,
      signal: io.signal,
      events: this.#events,
      write: io.out,
      onStream: (delta) => (this.#logStreams += delta),
    });
    // Tests read this line to prove a client that went away leaves no stream behind.
    if (o.follow) this.#d.logger.info({ app, openLogStreams: this.#logStreams }, 'logs follow ended');
  }

  async buildLog(app: string, id: string | undefined) {
    return readBuildLog(this.#d.paths, await this.#d.apps.get(app), id);
  }

  async followBuildLog(app: string, id: string | undefined, io: { out(text: string): void; signal: AbortSignal }): Promise<void> {
    await followBuildLog(this.#d.paths, () => this.#d.apps.get(app), id, io);
  }
}
