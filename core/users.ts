import { ACCESS_LEVELS, ROLES, type AccessLevel, type Actor, type AppAccess, type Role } from './access.js';
import { isValidAppName } from './app-name.js';
import type { Db } from './db.js';
import { SlipwayError } from './errors.js';

/** The identity of the local CLI (root on the admin socket); it cannot be removed, demoted or locked. */
export const BUILTIN_ADMIN = 'admin';

export interface UserInfo {
  name: string;
  role: Role;
  email: string | null;
  locked: boolean;
  createdAt: string;
  groups: string[];
  hasPassword: boolean;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  app: string | null;
  detail: string;
  source: string;
}

/** Who did something and from where, for the audit log. */
export interface Origin {
  actor: string;
  source: string;
}

/** One audit entry; callers run it inside the transaction of the change it records. */
export function writeAudit(db: Db, at: Date, o: Origin, action: string, app: string | null, detail = ''): void {
  db.prepare('INSERT INTO audit (at, actor, action, app, detail, source) VALUES (?, ?, ?, ?, ?, ?)').run(at.toISOString(), o.actor, action, app, detail, o.source);
}

const show = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** User and group names follow the app-name rule (contract, "Users, roles and access"). */
export function checkPrincipalName(name: string, what: 'user' | 'group'): string {
  if (!isValidAppName(name)) {
    throw new SlipwayError('E_USAGE', `invalid ${what} name ${show(name)}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter`, { exitCode: 2 });
  }
  return name;
}

export function parseRole(text: string): Role {
  if (!(ROLES as readonly string[]).includes(text)) throw new SlipwayError('E_USAGE', `invalid role ${show(text)}: use admin, developer or viewer`, { exitCode: 2 });
  return text as Role;
}

export function parseAccessLevel(text: string): AccessLevel {
  if (!(ACCESS_LEVELS as readonly string[]).includes(text)) throw new SlipwayError('E_USAGE', `invalid access level ${show(text)}: use restricted, authenticated or public`, { exitCode: 2 });
  return text as AccessLevel;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,190}$/;
export function checkEmail(text: string): string {
  if (!EMAIL.test(text) || /[\0-\x1f\x7f]/.test(text)) throw new SlipwayError('E_USAGE', `invalid email ${show(text)}: expected name@domain`, { exitCode: 2 });
  return text;
}

interface UserRow {
  name: string;
  role: Role;
  email: string | null;
  password_hash: string | null;
  locked: number;
  created_at: string;
}

const noUser = (name: string) => new SlipwayError('E_USER', `no user named ${show(name)}: see \`slipway users:list\``);
const noGroup = (name: string) => new SlipwayError('E_USER', `no group named ${show(name)}: see \`slipway groups:list\``);

/**
 * Users, groups, app owners and access, and the audit log, in the platform database. Every
 * change runs in one transaction together with its audit entry: both happen or neither.
 * Values are always bound parameters, never SQL text.
 */
export class UserStore {
  readonly #db: Db;
  readonly #now: () => Date;
  readonly #levelWatchers: ((app: string, level: AccessLevel) => void)[] = [];

  constructor(db: Db, now: () => Date = () => new Date()) {
    this.#db = db;
    this.#now = now;
  }

  get db(): Db {
    return this.#db;
  }

  #iso(): string {
    return this.#now().toISOString();
  }

  /** Runs `fn` in one immediate transaction. */
  tx<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  audit(o: Origin, action: string, app: string | null, detail = ''): void {
    writeAudit(this.#db, this.#now(), o, action, app, detail);
  }

  // ---- users ----

  #row(name: string): UserRow | undefined {
    return this.#db.prepare('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
  }

  #groupsOf(name: string): string[] {
    return (this.#db.prepare('SELECT group_name FROM memberships WHERE user_name = ? ORDER BY group_name').all(name) as { group_name: string }[]).map((r) => r.group_name);
  }

  /** The user as the permission check sees it; null when there is none. */
  actor(name: string): Actor | null {
    const row = this.#row(name);
    if (!row) return null;
    return { name: row.name, role: row.role, locked: row.locked === 1, groups: this.#groupsOf(name) };
  }

  info(name: string): UserInfo {
    const row = this.#row(name);
    if (!row) throw noUser(name);
    return { name: row.name, role: row.role, email: row.email, locked: row.locked === 1, createdAt: row.created_at, groups: this.#groupsOf(name), hasPassword: row.password_hash !== null };
  }

  list(): UserInfo[] {
    const rows = this.#db.prepare('SELECT name FROM users ORDER BY name').all() as { name: string }[];
    return rows.map((r) => this.info(r.name));
  }

  passwordHash(name: string): string | null {
    return this.#row(name)?.password_hash ?? null;
  }

  add(o: Origin, u: { name: string; role: Role; email: string | null; passwordHash: string | null }): void {
    checkPrincipalName(u.name, 'user');
    this.tx(() => {
      if (this.#row(u.name)) throw new SlipwayError('E_USER', `a user named "${u.name}" exists already: see \`slipway users:info ${u.name}\``);
      this.#db.prepare('INSERT INTO users (name, role, email, password_hash, locked, created_at) VALUES (?, ?, ?, ?, 0, ?)').run(u.name, u.role, u.email, u.passwordHash, this.#iso());
      this.audit(o, 'users:add', null, `user=${u.name} role=${u.role}`);
    });
  }

  /**
   * Removes a user with its keys, tokens, memberships and grants. Refuses while it is the only
   * owner of an app, naming them: transfer with `owners:add` first, so no app is orphaned.
   */
  remove(o: Origin, name: string): void {
    this.tx(() => {
      this.#mustExist(name);
      if (name === BUILTIN_ADMIN) throw new SlipwayError('E_USER', 'the built-in admin user cannot be removed: it is the local CLI\'s identity');
      // An admin removing their own account mid-session (one click in the web) is a mistake more often than not.
      if (name === o.actor) throw new SlipwayError('E_USER', `${name} cannot remove itself: another admin can, or the local CLI (slipway users:remove ${name})`);
      const sole = (this.#db
        .prepare('SELECT app FROM app_owners o WHERE user_name = ? AND NOT EXISTS (SELECT 1 FROM app_owners x WHERE x.app = o.app AND x.user_name <> o.user_name) ORDER BY app')
        .all(name) as { app: string }[]).map((r) => r.app);
      if (sole.length > 0) {
        throw new SlipwayError('E_USER', `${name} is the only owner of ${sole.join(', ')}: add another owner first with \`slipway owners:add <app> <user>\``);
      }
      this.#db.prepare('DELETE FROM users WHERE name = ?').run(name);
      this.audit(o, 'users:remove', null, `user=${name}`);
    });
  }

  setRole(o: Origin, name: string, role: Role): void {
    this.tx(() => {
      this.#mustExist(name);
      if (name === BUILTIN_ADMIN && role !== 'admin') throw new SlipwayError('E_USER', 'the built-in admin user stays an admin: it is the local CLI\'s identity');
      this.#db.prepare('UPDATE users SET role = ? WHERE name = ?').run(role, name);
      this.audit(o, 'users:role', null, `user=${name} role=${role}`);
    });
  }

  setPasswordHash(o: Origin, name: string, hash: string): void {
    this.tx(() => {
      this.#mustExist(name);
      this.#db.prepare('UPDATE users SET password_hash = ? WHERE name = ?').run(hash, name);
      this.#endWebSessions(name);
      this.audit(o, 'users:passwd', null, `user=${name}`);
    });
  }

  setLocked(o: Origin, name: string, locked: boolean): void {
    this.tx(() => {
      this.#mustExist(name);
      if (name === BUILTIN_ADMIN && locked) throw new SlipwayError('E_USER', 'the built-in admin user cannot be locked: it is the local CLI\'s identity');
      this.#db.prepare('UPDATE users SET locked = ? WHERE name = ?').run(locked ? 1 : 0, name);
      if (locked) this.#endWebSessions(name);
      this.audit(o, locked ? 'users:lock' : 'users:unlock', null, `user=${name}`);
    });
  }

  /** A new password or a lock ends every web sign-in of the user at once (README, "Users and access"). */
  #endWebSessions(name: string): void {
    this.#db.prepare('DELETE FROM sessions WHERE user_name = ?').run(name);
  }

  #mustExist(name: string): void {
    if (!this.#row(name)) throw noUser(name);
  }

  // ---- groups ----

  createGroup(o: Origin, name: string): void {
    checkPrincipalName(name, 'group');
    this.tx(() => {
      if (this.#db.prepare('SELECT 1 FROM groups WHERE name = ?').get(name)) throw new SlipwayError('E_USER', `a group named "${name}" exists already`);
      this.#db.prepare('INSERT INTO groups (name, created_at) VALUES (?, ?)').run(name, this.#iso());
      this.audit(o, 'groups:create', null, `group=${name}`);
    });
  }

  destroyGroup(o: Origin, name: string): void {
    this.tx(() => {
      if (this.#db.prepare('DELETE FROM groups WHERE name = ?').run(name).changes === 0) throw noGroup(name);
      this.audit(o, 'groups:destroy', null, `group=${name}`);
    });
  }

  listGroups(): { name: string; members: string[] }[] {
    const groups = this.#db.prepare('SELECT name FROM groups ORDER BY name').all() as { name: string }[];
    const members = this.#db.prepare('SELECT user_name FROM memberships WHERE group_name = ? ORDER BY user_name');
    return groups.map((g) => ({ name: g.name, members: (members.all(g.name) as { user_name: string }[]).map((m) => m.user_name) }));
  }

  setMembers(o: Origin, group: string, users: readonly string[], add: boolean): void {
    this.tx(() => {
      if (!this.#db.prepare('SELECT 1 FROM groups WHERE name = ?').get(group)) throw noGroup(group);
      for (const u of users) this.#mustExist(u);
      const stmt = add
        ? this.#db.prepare('INSERT OR IGNORE INTO memberships (group_name, user_name) VALUES (?, ?)')
        : this.#db.prepare('DELETE FROM memberships WHERE group_name = ? AND user_name = ?');
      for (const u of users) stmt.run(group, u);
      this.audit(o, add ? 'groups:add' : 'groups:remove', null, `group=${group} users=${users.join(',')}`);
    });
  }

  // ---- apps: owners and access ----

  access(app: string): AppAccess {
    const level = (this.#db.prepare('SELECT level FROM app_access WHERE app = ?').get(app) as { level: AccessLevel } | undefined)?.level ?? 'restricted';
    const col = (sql: string) => (this.#db.prepare(sql).all(app) as { v: string }[]).map((r) => r.v);
    return {
      name: app,
      level,
      owners: col('SELECT user_name AS v FROM app_owners WHERE app = ? ORDER BY user_name'),
      users: col('SELECT user_name AS v FROM app_user_access WHERE app = ? ORDER BY user_name'),
      groups: col('SELECT group_name AS v FROM app_group_access WHERE app = ? ORDER BY group_name'),
    };
  }

  /** `access(app)` of every app with a record here, in four queries (listings of hundreds of apps). */
  accessOfAll(): Map<string, AppAccess> {
    const all = new Map<string, AppAccess>();
    const entry = (app: string) => {
      let a = all.get(app);
      if (!a) all.set(app, (a = { name: app, level: 'restricted', owners: [], users: [], groups: [] }));
      return a as { level: AccessLevel; owners: string[]; users: string[]; groups: string[] } & AppAccess;
    };
    for (const r of this.#db.prepare('SELECT app, level FROM app_access').all() as { app: string; level: AccessLevel }[]) entry(r.app).level = r.level;
    for (const [table, col, field] of [['app_owners', 'user_name', 'owners'], ['app_user_access', 'user_name', 'users'], ['app_group_access', 'group_name', 'groups']] as const) {
      for (const r of this.#db.prepare(`SELECT app, ${col} AS v FROM ${table} ORDER BY ${col}`).all() as { app: string; v: string }[]) entry(r.app)[field].push(r.v);
    }
    return all;
  }

  /** A new app: restricted, owned by its creator (README, "Users and access"). */
  appCreated(o: Origin, app: string, owner: string): void {
    this.tx(() => {
      this.#forget(app);
      this.#db.prepare('INSERT INTO app_access (app, level) VALUES (?, ?)').run(app, 'restricted');
      this.#db.prepare('INSERT INTO app_owners (app, user_name) VALUES (?, ?)').run(app, owner);
      this.audit(o, 'apps:create', app, `owner=${owner}`);
    });
  }

  appDestroyed(o: Origin, app: string): void {
    this.tx(() => {
      this.#forget(app);
      this.audit(o, 'apps:destroy', app);
    });
  }

  #forget(app: string): void {
    for (const table of ['app_access', 'app_owners', 'app_user_access', 'app_group_access']) {
      this.#db.prepare(`DELETE FROM ${table} WHERE app = ?`).run(app);
    }
  }

  setOwner(o: Origin, app: string, user: string, add: boolean): void {
    this.tx(() => {
      const row = this.#row(user);
      if (!row) throw noUser(user);
      if (add) {
        if (row.role === 'viewer') throw new SlipwayError('E_USER', `${user} is a viewer and cannot own apps: change the role first with \`slipway users:role ${user} developer\``);
        this.#db.prepare('INSERT OR IGNORE INTO app_owners (app, user_name) VALUES (?, ?)').run(app, user);
      } else {
        const owners = this.access(app).owners;
        if (!owners.includes(user)) throw new SlipwayError('E_USER', `${user} is not an owner of ${app}`);
        if (owners.length === 1) throw new SlipwayError('E_USER', `${user} is the only owner of ${app}: add another owner first`);
        this.#db.prepare('DELETE FROM app_owners WHERE app = ? AND user_name = ?').run(app, user);
      }
      this.audit(o, add ? 'owners:add' : 'owners:remove', app, `user=${user}`);
    });
  }

  setLevel(o: Origin, app: string, level: AccessLevel): void {
    this.tx(() => {
      this.#db.prepare('INSERT INTO app_access (app, level) VALUES (?, ?) ON CONFLICT (app) DO UPDATE SET level = excluded.level').run(app, level);
      this.audit(o, 'access:set', app, `level=${level}`);
    });
    for (const fn of this.#levelWatchers) fn(app, level);
  }

  /** Called after every access level change (the router serves public apps without a check). */
  watchLevels(fn: (app: string, level: AccessLevel) => void): void {
    this.#levelWatchers.push(fn);
  }

  /** Grants or revokes viewing: `name` for a user, `@name` for a group. All are checked first. */
  setGrants(o: Origin, app: string, principals: readonly string[], add: boolean): void {
    this.tx(() => {
      const parsed = principals.map((p) => (p.startsWith('@') ? { isGroup: true, name: checkPrincipalName(p.slice(1), 'group') } : { isGroup: false, name: checkPrincipalName(p, 'user') }));
      for (const p of parsed) {
        if (!p.isGroup) this.#mustExist(p.name);
        else if (!this.#db.prepare('SELECT 1 FROM groups WHERE name = ?').get(p.name)) throw noGroup(p.name);
      }
      for (const p of parsed) {
        const sql = p.isGroup
          ? add ? 'INSERT OR IGNORE INTO app_group_access (app, group_name) VALUES (?, ?)' : 'DELETE FROM app_group_access WHERE app = ? AND group_name = ?'
          : add ? 'INSERT OR IGNORE INTO app_user_access (app, user_name) VALUES (?, ?)' : 'DELETE FROM app_user_access WHERE app = ? AND user_name = ?';
        this.#db.prepare(sql).run(app, p.name);
      }
      this.audit(o, add ? 'access:add' : 'access:remove', app, principals.join(','));
    });
  }

  // ---- audit ----

  auditLog(f: { app?: string; actor?: string; limit: number }): AuditEntry[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (f.app !== undefined) {
      where.push('app = ?');
      args.push(f.app);
    }
    if (f.actor !== undefined) {
      where.push('actor = ?');
      args.push(f.actor);
    }
    const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.#db.prepare(sql).all(...args, f.limit) as AuditEntry[]).reverse();
  }
}
