import { emptyRouteTable, writeRouteTable, type RouteTable } from './table.js';

/**
 * The daemon's view of what the router should serve. Every change rewrites the route table file
 * atomically, one write at a time, so the router only ever reads a whole table.
 */
export class RouteBook {
  readonly #file: string;
  #table: RouteTable;
  #writing: Promise<void> = Promise.resolve();

  readonly #applied: (() => Promise<void>) | undefined;

  /** applied: resolves once the router serves what was written (nginx reloaded), so a deploy reports live only when it is. */
  constructor(file: string, domain: string, applied?: () => Promise<void>) {
    this.#file = file;
    this.#table = emptyRouteTable(domain);
    this.#applied = applied;
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

  /** Replaces the whole table at once (used when the daemon starts and adopts running containers). */
  async replace(apps: Record<string, string[]>, git: string | null): Promise<void> {
    const table = emptyRouteTable(this.#table.domain);
    for (const [app, upstreams] of Object.entries(apps)) table.apps[app] = { upstreams };
    this.#table = { ...table, git };
    await this.#flush();
  }

  #flush(): Promise<void> {
    const snapshot = this.#table;
    this.#writing = this.#writing.catch(() => undefined).then(() => writeRouteTable(this.#file, snapshot));
    const applied = this.#applied;
    return applied ? this.#writing.then(() => applied()) : this.#writing;
  }
}
