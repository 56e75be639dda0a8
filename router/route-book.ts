import { emptyRouteTable, writeRouteTable, type RouteTable } from './table.js';

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

  /**
   * serve: has the router serve a table (nginx tested and reloaded) before the file records it,
   * so once the table is written, and once a deploy says it is live, the router serves it.
   * isPrivate: whether an app needs sign-in, asked at every write (the access level lives in the
   * database, not here); call `refreshAccess` when a level changes.
   */
  constructor(file: string, domain: string, serve?: (t: RouteTable) => Promise<void>, isPrivate: (app: string) => boolean = () => false) {
    this.#file = file;
    this.#table = emptyRouteTable(domain);
    this.#serve = serve;
    this.#isPrivate = isPrivate;
  }

  get table(): RouteTable {
    return this.#table;
  }

  async setApp(app: string, upstreams: string[]): Promise<void> {
    this.#table = { ...this.#table, apps: { ...this.#table.apps, [app]: { upstreams: [...upstreams] } } };
    await this.#flush();
  }

  async removeApp(app: string): Promise<void> {
    const { [app]: _gone, ...apps } = this.#table.apps;
    this.#table = { ...this.#table, apps };
    await this.#flush();
  }

  async setGit(upstream: string | null): Promise<void> {
    this.#table = { ...this.#table, git: upstream };
    await this.#flush();
  }

  async setWeb(upstream: string | null): Promise<void> {
    this.#table = { ...this.#table, web: upstream };
    await this.#flush();
  }

  /** Replaces the whole table at once (used when the daemon starts and adopts running containers). */
  async replace(apps: Record<string, string[]>, git: string | null): Promise<void> {
    const table = emptyRouteTable(this.#table.domain);
    for (const [app, upstreams] of Object.entries(apps)) table.apps[app] = { upstreams };
    this.#table = { ...table, git, ...(this.#table.web === undefined ? {} : { web: this.#table.web }) };
    await this.#flush();
  }

  /** Serves and records the table again with every app's current access level. */
  refreshAccess(): Promise<void> {
    return this.#flush();
  }

  #flush(): Promise<void> {
    const apps: RouteTable['apps'] = {};
    for (const [app, route] of Object.entries(this.#table.apps)) {
      apps[app] = { upstreams: route.upstreams, ...(this.#isPrivate(app) ? { private: true } : {}) };
    }
    const snapshot = { ...this.#table, apps };
    const serve = this.#serve;
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        await serve?.(snapshot);
        await writeRouteTable(this.#file, snapshot);
      });
    return this.#writing;
  }
}
