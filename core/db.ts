import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SlipwayError } from './errors.js';

export type Db = Database.Database;

/**
 * The schema, one step per version. Step N takes a database at user_version N-1 to N inside one
 * transaction; steps are never edited once released, only appended (README, "Users and access").
 */
export const MIGRATIONS: readonly string[] = [
  // 1: users, groups, keys and tokens owned by users, app owners and access, the audit log.
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    email TEXT,
    password_hash TEXT,
    locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    created_at TEXT NOT NULL
  ) STRICT;
  INSERT INTO users (name, role, created_at) VALUES ('admin', 'admin', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
  ) STRICT;
  CREATE TABLE memberships (
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_name)
  ) STRICT;
  CREATE TABLE ssh_keys (
    name TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    type TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    added_at TEXT NOT NULL
  ) STRICT;
  CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
  ) STRICT;
  CREATE TABLE app_access (
    app TEXT PRIMARY KEY,
    level TEXT NOT NULL CHECK (level IN ('restricted', 'authenticated', 'public'))
  ) STRICT;
  CREATE TABLE app_owners (
    app TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (app, user_name)
  ) STRICT;
  CREATE TABLE app_user_access (
    app TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (app, user_name)
  ) STRICT;
  CREATE TABLE app_group_access (
    app TEXT NOT NULL,
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    PRIMARY KEY (app, group_name)
  ) STRICT;
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    app TEXT,
    detail TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL
  ) STRICT;
  CREATE INDEX audit_app ON audit(app, id);
  CREATE INDEX audit_actor ON audit(actor, id);
  `,
  // 2: single sign-on. One OpenID Connect provider (row id 1, absent when off), and which
  // provider account (issuer, subject) each SSO user is, so a changed or reused name at the
  // provider never signs into someone else's Slipway user (README, "Single sign-on").
  `
  CREATE TABLE oidc_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    user_claim TEXT NOT NULL,
    groups_claim TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    updated_at TEXT NOT NULL
  ) STRICT;
  CREATE TABLE sso_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_name TEXT NOT NULL UNIQUE REFERENCES users(name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
  ) STRICT;
  `,
  // 3: backing services (README "Services"): their credentials, owners and links to apps.
  `
  CREATE TABLE services (
    kind TEXT NOT NULL CHECK (kind IN ('postgres', 'redis')),
    name TEXT NOT NULL,
    password TEXT NOT NULL,
    image TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
  ) STRICT;
  CREATE TABLE service_owners (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (kind, name, user_name),
    FOREIGN KEY (kind, name) REFERENCES services(kind, name) ON DELETE CASCADE
  ) STRICT;
  CREATE TABLE service_links (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    app TEXT NOT NULL,
    var TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, app),
    FOREIGN KEY (kind, name) REFERENCES services(kind, name) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX service_links_app ON service_links(app);
  `,
  // 4: web sign-in sessions (ids stored only as sha256) and persistent sign-in rate limits.
  `
  CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    address TEXT NOT NULL
  ) STRICT;
  CREATE INDEX sessions_user ON sessions(user_name);
  CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL
  ) STRICT;
  `,
];

/**
 * Opens (creating if needed) the platform database: WAL so the daemon and other processes may
 * read while one writes, foreign keys on, a busy timeout instead of SQLITE_BUSY, and the schema
 * brought up to date. A database newer than this code is refused rather than guessed at.
 */
export function openDb(file: string, migrations: readonly string[] = MIGRATIONS): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  try {
    if (file !== ':memory:') fs.chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL');
    migrate(db, migrations);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function migrate(db: Db, migrations: readonly string[]): void {
  const current = schemaVersion(db);
  if (current > migrations.length) {
    throw new SlipwayError('E_STATE', `the database is at schema version ${current}, newer than this Slipway (${migrations.length}): run the newer version`);
  }
  for (let v = current; v < migrations.length; v++) {
    // Each step and its version number commit together: a crash leaves the old or the new schema.
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
