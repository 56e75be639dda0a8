import { isValidAppName } from './app-name.js';
import type { AppAccess } from './access.js';
import type { Db } from './db.js';
import { SlipwayError } from './errors.js';
import { writeAudit, type Origin } from './users.js';

/** The kinds of backing service (README "Services"). */
export type ServiceKind = 'postgres' | 'redis';
export const SERVICE_KINDS: readonly ServiceKind[] = ['postgres', 'redis'];

/** The config var a link sets unless `--as` names another. */
export const DEFAULT_LINK_VAR: Record<ServiceKind, string> = { postgres: 'DATABASE_URL', redis: 'REDIS_URL' };

export interface ServiceRecord {
  kind: ServiceKind;
  name: string;
  /** Random per service (hex, so it needs no escaping in a URL or a config file); never logged. */
  password: string;
  /** The image the container was created from. */
  image: string;
  createdAt: string;
  owners: string[];
}

export interface ServiceLink {
  kind: ServiceKind;
  name: string;
  app: string;
  /** The app's config var holding the URL. */
  var: string;
  createdAt: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const show = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Service names follow the app-name rule (contract, "Services: Postgres and Redis"). */
export function parseServiceName(raw: string): string {
  if (!isValidAppName(raw)) throw new SlipwayError('E_USAGE', `invalid service name ${show(raw)}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter`, { exitCode: 2 });
  return raw;
}

/** `--as VAR`: an environment variable name. */
export function parseLinkVar(raw: string): string {
  if (!ENV_NAME.test(raw)) throw new SlipwayError('E_USAGE', `invalid variable name ${show(raw)} for --as: use letters, digits and _, not starting with a digit`, { exitCode: 2 });
  return raw;
}

export const serviceNotFound = (kind: ServiceKind, name: string): SlipwayError =>
  new SlipwayError('E_SERVICE', `no ${kind} service named "${name}": see \`slipway ${kind}:list\``);

/** A service's owners in the shape the access decision takes (core/access.ts): restricted, owners only. */
export function serviceAccess(s: Pick<ServiceRecord, 'kind' | 'name' | 'owners'>): AppAccess {
  return { name: `${s.kind}:${s.name}`, level: 'restricted', owners: s.owners, users: [], groups: [] };
}

interface ServiceRow {
  kind: ServiceKind;
  name: string;
  password: string;
  image: string;
  created_at: string;
}

interface LinkRow {
  kind: ServiceKind;
  name: string;
  app: string;
  var: string;
  created_at: string;
}

const linkOf = (r: LinkRow): ServiceLink => ({ kind: r.kind, name: r.name, app: r.app, var: r.var, createdAt: r.created_at });

/**
 * Services, their owners and links, in the platform database (core/db.ts). Each change runs in
 * one transaction with its audit entry; values are bound parameters, never SQL text.
 */
export class ServiceStore {
  readonly #db: Db;
  readonly #now: () => Date;

  constructor(db: Db, now: () => Date = () => new Date()) {
    this.#db = db;
    this.#now = now;
  }

  #tx<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  #record(row: ServiceRow): ServiceRecord {
    const owners = (this.#db.prepare('SELECT user_name FROM service_owners WHERE kind = ? AND name = ? ORDER BY user_name').all(row.kind, row.name) as { user_name: string }[]).map((r) => r.user_name);
    return { kind: row.kind, name: row.name, password: row.password, image: row.image, createdAt: row.created_at, owners };
  }

  find(kind: ServiceKind, name: string): ServiceRecord | null {
    const row = this.#db.prepare('SELECT * FROM services WHERE kind = ? AND name = ?').get(kind, name) as ServiceRow | undefined;
    return row ? this.#record(row) : null;
  }

  get(kind: ServiceKind, name: string): ServiceRecord {
    const s = this.find(kind, name);
    if (!s) throw serviceNotFound(kind, name);
    return s;
  }

  list(kind?: ServiceKind): ServiceRecord[] {
    const rows = (kind === undefined
      ? this.#db.prepare('SELECT * FROM services ORDER BY kind, name').all()
      : this.#db.prepare('SELECT * FROM services WHERE kind = ? ORDER BY name').all(kind)) as ServiceRow[];
    return rows.map((r) => this.#record(r));
  }

  create(o: Origin, s: { kind: ServiceKind; name: string; password: string; image: string; owner: string }): void {
    this.#tx(() => {
      if (this.find(s.kind, s.name)) throw new SlipwayError('E_SERVICE', `a ${s.kind} service named "${s.name}" exists already: see \`slipway ${s.kind}:info ${s.name}\``);
      this.#db.prepare('INSERT INTO services (kind, name, password, image, created_at) VALUES (?, ?, ?, ?, ?)').run(s.kind, s.name, s.password, s.image, this.#now().toISOString());
      this.#db.prepare('INSERT INTO service_owners (kind, name, user_name) VALUES (?, ?, ?)').run(s.kind, s.name, s.owner);
      writeAudit(this.#db, this.#now(), o, `${s.kind}:create`, null, `service=${s.name} owner=${s.owner}`);
    });
  }

  /** Removes the record; refuses while linked (the caller checked too, this keeps it true under races). */
  remove(o: Origin, kind: ServiceKind, name: string): void {
    this.#tx(() => {
      const links = this.links(kind, name);
      if (links.length > 0) throw linkedError(kind, name, links);
      this.#db.prepare('DELETE FROM services WHERE kind = ? AND name = ?').run(kind, name);
      writeAudit(this.#db, this.#now(), o, `${kind}:destroy`, null, `service=${name}`);
    });
  }

  links(kind: ServiceKind, name: string): ServiceLink[] {
    return (this.#db.prepare('SELECT * FROM service_links WHERE kind = ? AND name = ? ORDER BY app').all(kind, name) as LinkRow[]).map(linkOf);
  }

  linksOfApp(app: string): ServiceLink[] {
    return (this.#db.prepare('SELECT * FROM service_links WHERE app = ? ORDER BY kind, name').all(app) as LinkRow[]).map(linkOf);
  }

  addLink(o: Origin, link: { kind: ServiceKind; name: string; app: string; var: string }): void {
    this.#tx(() => {
      this.get(link.kind, link.name);
      if (this.#db.prepare('SELECT 1 FROM service_links WHERE kind = ? AND name = ? AND app = ?').get(link.kind, link.name, link.app)) {
        throw new SlipwayError('E_SERVICE', `${link.kind} ${link.name} is already linked to ${link.app}: unlink it first to change the variable`);
      }
      const clash = this.linksOfApp(link.app).find((l) => l.var === link.var);
      if (clash) throw new SlipwayError('E_SERVICE', `${link.app} already gets ${link.var} from ${clash.kind} ${clash.name}: link with --as OTHER_NAME`);
      this.#db.prepare('INSERT INTO service_links (kind, name, app, var, created_at) VALUES (?, ?, ?, ?, ?)').run(link.kind, link.name, link.app, link.var, this.#now().toISOString());
      writeAudit(this.#db, this.#now(), o, `${link.kind}:link`, link.app, `service=${link.name} var=${link.var}`);
    });
  }

  removeLink(o: Origin, kind: ServiceKind, name: string, app: string): void {
    this.#tx(() => {
      if (this.#db.prepare('DELETE FROM service_links WHERE kind = ? AND name = ? AND app = ?').run(kind, name, app).changes === 0) {
        throw new SlipwayError('E_SERVICE', `${kind} ${name} is not linked to ${app}: see \`slipway ${kind}:info ${name}\``);
      }
      writeAudit(this.#db, this.#now(), o, `${kind}:unlink`, app, `service=${name}`);
    });
  }

  /** An app is destroyed: its links go with it (the networks are the caller's). */
  forgetApp(app: string): ServiceLink[] {
    return this.#tx(() => {
      const links = this.linksOfApp(app);
      this.#db.prepare('DELETE FROM service_links WHERE app = ?').run(app);
      return links;
    });
  }
}

export function linkedError(kind: ServiceKind, name: string, links: readonly ServiceLink[]): SlipwayError {
  const apps = links.map((l) => l.app).join(', ');
  return new SlipwayError('E_SERVICE', `${kind} ${name} is linked to ${apps}: unlink it first (\`slipway ${kind}:unlink ${name} <app>\`)`);
}
