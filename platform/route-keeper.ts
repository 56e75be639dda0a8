import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/log.js';
import type { RouteBook } from '../router/route-book.js';
import type { AppStore } from '../core/store.js';
import type { ProcessEvent, Scheduler } from '../runtime/scheduler.js';

const REJOIN_TIMEOUT_MS = 60_000;

/**
 * Keeps the route table true while containers die and restart between deploys. It never
 * rebuilds an app's upstreams from scratch (that would race a deploy's switch); it only
 * removes the upstream of a container that died, and adds back a restarted web container of
 * the current release once its port answers. Every change reads and writes the table in one
 * synchronous step, so a deploy's `setApp` is never overwritten with a stale list.
 */
export class RouteKeeper {
  readonly #scheduler: Scheduler;
  readonly #apps: AppStore;
  readonly #routes: RouteBook;
  readonly #logger: Logger;
  /** Web container id -> its upstream, learnt when it starts (a dead container has no port). */
  readonly #upstreams = new Map<string, { app: string; upstream: string }>();

  constructor(o: { scheduler: Scheduler; apps: AppStore; routes: RouteBook; logger: Logger }) {
    this.#scheduler = o.scheduler;
    this.#apps = o.apps;
    this.#routes = o.routes;
    this.#logger = o.logger;
  }

  readonly handle = (e: ProcessEvent): void => {
    if (e.type !== 'web') return;
    if (e.action === 'die') this.#died(e);
    else
      this.#started(e).catch((err: unknown) => this.#logger.warn({ app: e.app, container: e.name, err: (err as Error).message }, 'could not route a restarted container'));
  };

  /** Learns the upstreams of every running web container, and drops routes to dead ones (after missed events). */
  async resync(): Promise<void> {
    const alive = new Set<string>();
    for (const c of await this.#scheduler.processes()) {
      if (!c.app || c.type !== 'web' || c.state !== 'running' || c.upstream === null) continue;
      this.#upstreams.set(c.id, { app: c.app, upstream: c.upstream });
      alive.add(c.upstream);
    }
    for (const [app, entry] of Object.entries(this.#routes.table.apps)) {
      const kept = entry.upstreams.filter((u) => alive.has(u));
      if (kept.length !== entry.upstreams.length) await this.#routes.setApp(app, kept);
    }
  }

  #died(e: ProcessEvent): void {
    const known = this.#upstreams.get(e.id);
    if (!known) return;
    this.#upstreams.delete(e.id);
    const current = this.#routes.table.apps[known.app]?.upstreams;
    if (!current?.includes(known.upstream)) return;
    this.#logger.warn({ app: known.app, container: e.name }, 'web container died: removed from the routes');
    void this.#routes.setApp(known.app, current.filter((u) => u !== known.upstream)).catch((err: unknown) => this.#logger.error({ err: (err as Error).message }, 'route table write failed'));
  }

  async #started(e: ProcessEvent): Promise<void> {
    const upstream = (await this.#scheduler.process(e.id).catch(() => null))?.upstream ?? null;
    if (upstream === null) return;
    this.#upstreams.set(e.id, { app: e.app, upstream });
    // A new deploy's containers are routed by the deploy itself, after their health check.
    if (!(await this.#servesCurrent(e))) return;
    const deadline = Date.now() + REJOIN_TIMEOUT_MS;
    while (!(await this.#scheduler.answers(upstream))) {
      if (this.#upstreams.get(e.id)?.upstream !== upstream || Date.now() > deadline) return;
      await sleep(250);
    }
    // Checked again after the wait: a deploy may have moved it aside or replaced the release.
    if (!(await this.#servesCurrent(e))) return;
    const now = await this.#scheduler.process(e.id).catch(() => null);
    // A deploy's or scale's own container: it routes it once healthy.
    if (now?.state !== 'running' || now.retiring || now.starting) return;
    const current = this.#routes.table.apps[e.app]?.upstreams;
    if (!current || current.includes(upstream)) return;
    await this.#routes.setApp(e.app, [...current, upstream]);
    // Logged once true: the router serves it and the route table records it.
    this.#logger.info({ app: e.app, container: e.name }, 'web container restarted: back in the routes');
  }

  async #servesCurrent(e: ProcessEvent): Promise<boolean> {
    const app = await this.#apps.find(e.app).catch(() => null);
    return app !== null && app.current !== null && e.release !== null && e.release <= app.current && !e.name.includes('.old-');
  }
}
