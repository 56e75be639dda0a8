import { emptyRouteTable, writeRouteTable, type RouteTable } from './table.js';

/**
 * What stands between an app's upstreams and the table: a stable address per app in front of
 * its containers (platform/fronts.ts), so that a deploy, a scale or a restart changes no rendered
 * config and nginx is not reloaded (docs/router.md, "Stable fronts").
 */
export interface Fronts {
  /**
   * Points each app's front at its upstreams (or, for none, at the idle listener) and returns
   * what the table lists for each: the front, or the upstreams themselves when it cannot front
   * them ([] for none). Apps not named keep what they had. In effect when it resolves, so the
   * table may name the front from then on.
   */
  publish(apps: Readonly<Record<string, readonly string[]>>): Promise<Record<string, string[]>>;
  /**
   * Where the fronts of apps with nothing healthy lead once `publish` resolved: nginx's own idle
   * listener (the table's `idle`); undefined while apps are listed directly.
   */
  idle(): string | undefined;
  /** Forgets the apps' fronts; called only once the router serves a table without them. */
  remove(apps: readonly string[]): Promise<void>;
  /**
   * How long after `publish` the router may still send a new request to an upstream it no longer
   * names: a connection it kept open stays with the container the kernel picked for it, until
   * the router stops using it (docs/router.md, "Stable fronts"). 0 while apps are listed directly.
   */
  readonly turnoverMs: number;
}

/**
 * The daemon's view of what the router should serve. Every change rewrites the route table file
 * atomically, one write at a time, so the router only ever reads a whole table.
 */
export class RouteBook {
  readonly #file: string;
  #table: RouteTable;
  #writing: Promise<void> = Promise.resolve();

  readonly #serve: ((t: RouteTable) => Promise<void>) | undefined;
  readonly #isPrivate: (app: string) => boolean;
  readonly #fronts: Fronts | undefined;
  /** Apps taken out of the table whose fronts go once the router no longer lists them. */
  #removed: string[] = [];
  /** Until when a request may still reach upstreams the last write took out (Fronts.turnoverMs). */
  #turnoverUntil = 0;

  /**
   * serve: has the router serve a table (nginx tested and reloaded) before the file records it,
   * so once the table is written, and once a deploy says it is live, the router serves it.
   * isPrivate: whether an app needs sign-in, asked at every write (the access level lives in the
   * database, not here); call `refreshAccess` when a level changes.
   * fronts: when given, the table the router reads lists what it returns per app; `table` here
   * still holds the apps' own upstreams, which is what the daemon reasons about.
   */
  constructor(file: string, domain: string, serve?: (t: RouteTable) => Promise<void>, isPrivate: (app: string) => boolean = () => false, fronts?: Fronts) {
    this.#file = file;
    this.#table = emptyRouteTable(domain);
    this.#serve = serve;
    this.#isPrivate = isPrivate;
    this.#fronts = fronts;
  }

  /** The apps' own upstreams (containers), not the fronts the router is given. */
  get table(): RouteTable {
    return this.#table;
  }

  async setApp(app: string, upstreams: string[]): Promise<void> {
    this.#table = { ...this.#table, apps: { ...this.#table.apps, [app]: { upstreams: [...upstreams] } } };
    await this.#flush();
  }

  async removeApp(app: string): Promise<void> {
    const { [app]: gone, ...apps } = this.#table.apps;
    if (gone) this.#removed.push(app);
    this.#table = { ...this.#table, apps };
    await this.#flush();
  }

  /**
   * Names the daemon's own endpoints (git over HTTP, the web pages) without writing the table, so
   * the first table a starting daemon writes already has them: a restarted daemon then renders
   * the config nginx has loaded and nginx is not reloaded (docs/router.md, "Stable fronts").
   * While no daemon listens, nginx answers 503 for them (its connection is refused).
   */
  presetEndpoints(e: { git: string; web: string }): void {
    this.#table = { ...this.#table, git: e.git, web: e.web };
  }

  /**
   * Replaces the apps at once (used when the daemon starts and adopts running containers); the
   * daemon's own endpoints stay as `presetEndpoints` named them.
   */
  async replace(apps: Record<string, string[]>): Promise<void> {
    const table = emptyRouteTable(this.#table.domain);
    for (const [app, upstreams] of Object.entries(apps)) table.apps[app] = { upstreams };
    for (const app of Object.keys(this.#table.apps)) if (!(app in apps)) this.#removed.push(app);
    this.#table = { ...table, git: this.#table.git, ...(this.#table.web === undefined ? {} : { web: this.#table.web }) };
    await this.#flush();
  }

  /**
   * Resolves once no new request can reach an upstream the writes so far took out: after the
   * fronts' turnover, at once without them (the router reloads for each change, and its new
   * workers open new connections). A deploy waits for it before saying the new release is live.
   */
  async turnover(): Promise<void> {
    await this.#writing.catch(() => undefined);
    const left = this.#turnoverUntil - Date.now();
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }

  /** Serves and records the table again with every app's current access level. */
  refreshAccess(): Promise<void> {
    return this.#flush();
  }

  #flush(): Promise<void> {
    const logical = this.#table;
    const privateApps = new Set(Object.keys(logical.apps).filter((app) => this.#isPrivate(app)));
    const removed = this.#removed;
    this.#removed = [];
    const serve = this.#serve;
    const fronts = this.#fronts;
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        const own = Object.fromEntries(Object.entries(logical.apps).map(([app, r]) => [app, r.upstreams]));
        // Fronts first: the router may name a front only once it leads somewhere.
        const listed = fronts ? await fronts.publish(own) : own;
        if (fronts) this.#turnoverUntil = Date.now() + fronts.turnoverMs;
        const apps: RouteTable['apps'] = {};
        for (const app of Object.keys(logical.apps)) {
          apps[app] = { upstreams: listed[app] ?? [], ...(privateApps.has(app) ? { private: true } : {}) };
        }
        const idle = fronts?.idle();
        const snapshot: RouteTable = { ...logical, apps, ...(idle === undefined ? {} : { idle }) };
        await serve?.(snapshot);
        await writeRouteTable(this.#file, snapshot);
        // And gone last: nothing the router serves names them any more.
        if (fronts && removed.length > 0) await fronts.remove(removed);
      });
    return this.#writing;
  }
}
