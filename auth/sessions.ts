import crypto from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Db } from '../core/db.js';

/**
 * Web sign-in sessions (README "Users and access", docs/security.md). The browser holds a
 * 256-bit random id; the database holds only its sha256, so a copy of the database signs no one
 * in. A session ends after `idleMs` without use or `maxMs` after it began, whichever is first.
 */
export const SESSION_COOKIE = 'slipway_session';

export interface SessionLimits {
  idleMs: number;
  maxMs: number;
}

/** Last-use times are written at most this often: a check on every request must stay a read. */
const TOUCH_EVERY_MS = 60_000;
const ID = /^[A-Za-z0-9_-]{43}$/;

const hashId = (id: string): string => crypto.createHash('sha256').update(id).digest('hex');

interface Row {
  user_name: string;
  created_at: number;
  last_seen_at: number;
}

export class SessionStore {
  readonly #db: Db;
  readonly #limits: SessionLimits;
  readonly #now: () => number;
  // Prepared once: the router's check reads a session on every uncached request.
  readonly #get: Database.Statement<[string], Row>;
  readonly #delete: Database.Statement<[string]>;
  readonly #touch: Database.Statement<[number, string]>;

  constructor(db: Db, limits: SessionLimits, now: () => number = Date.now) {
    this.#db = db;
    this.#limits = limits;
    this.#now = now;
    this.#get = db.prepare('SELECT user_name, created_at, last_seen_at FROM sessions WHERE id_hash = ?');
    this.#delete = db.prepare('DELETE FROM sessions WHERE id_hash = ?');
    this.#touch = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?');
  }

  /**
   * A new session for `user`. `previous` (the cookie the browser came with, if any) is ended in
   * the same step: an id set before sign-in never becomes a signed-in one (no fixation).
   */
  create(user: string, address: string, previous?: string): string {
    const id = crypto.randomBytes(32).toString('base64url');
    const now = this.#now();
    this.#db.transaction(() => {
      if (previous !== undefined) this.revoke(previous);
      this.#db.prepare('DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?').run(now - this.#limits.idleMs, now - this.#limits.maxMs);
      this.#db.prepare('INSERT INTO sessions (id_hash, user_name, created_at, last_seen_at, address) VALUES (?, ?, ?, ?, ?)').run(hashId(id), user, now, now, address);
    }).immediate();
    return id;
  }

  /** The user of a live session, or null for a malformed, unknown, expired or revoked id. */
  user(id: string | undefined): string | null {
    if (id === undefined || !ID.test(id)) return null;
    const key = hashId(id);
    const row = this.#get.get(key);
    if (!row) return null;
    const now = this.#now();
    if (now - row.last_seen_at > this.#limits.idleMs || now - row.created_at > this.#limits.maxMs) {
      this.#delete.run(key);
      return null;
    }
    if (now - row.last_seen_at > TOUCH_EVERY_MS) this.#touch.run(now, key);
    return row.user_name;
  }

  /** Ends one session; true when it existed. */
  revoke(id: string | undefined): boolean {
    if (id === undefined || !ID.test(id)) return false;
    return this.#delete.run(hashId(id)).changes > 0;
  }
}
