import type { Db } from '../core/db.js';

/**
 * Sign-in attempts, limited per user name and per client address and kept in the database so
 * a restart does not reset them (docs/security.md). Failures against one user name block only
 * that name; an address that guesses across many names is blocked as an address. A success
 * clears its user name's count, not its address's.
 */
export interface Limit {
  failures: number;
  windowMs: number;
}

export const SIGN_IN_LIMITS = {
  user: { failures: 10, windowMs: 15 * 60_000 },
  address: { failures: 100, windowMs: 15 * 60_000 },
} as const satisfies Record<string, Limit>;

interface Row {
  failures: number;
  window_start: number;
}

export class SignInLimiter {
  readonly #db: Db;
  readonly #limits: { user: Limit; address: Limit };
  readonly #now: () => number;

  constructor(db: Db, limits: { user: Limit; address: Limit } = SIGN_IN_LIMITS, now: () => number = Date.now) {
    this.#db = db;
    this.#limits = limits;
    this.#now = now;
  }

  /** When blocked: how many seconds until the oldest window ends; null when attempts may go on. */
  blocked(user: string, address: string): number | null {
    const waits = [this.#wait(`user:${user}`, this.#limits.user), this.#wait(`addr:${address}`, this.#limits.address)].filter((w): w is number => w !== null);
    return waits.length === 0 ? null : Math.max(...waits);
  }

  failed(user: string, address: string): void {
    const now = this.#now();
    this.#db.transaction(() => {
      this.#count(`user:${user}`, this.#limits.user, now);
      this.#count(`addr:${address}`, this.#limits.address, now);
      // Old windows go as new ones come: the table stays as small as the recent attack.
      const oldest = now - Math.max(this.#limits.user.windowMs, this.#limits.address.windowMs);
      this.#db.prepare('DELETE FROM sign_in_failures WHERE window_start < ?').run(oldest);
    }).immediate();
  }

  succeeded(user: string): void {
    this.#db.prepare('DELETE FROM sign_in_failures WHERE key = ?').run(`user:${user}`);
  }

  #wait(key: string, limit: Limit): number | null {
    const row = this.#db.prepare('SELECT failures, window_start FROM sign_in_failures WHERE key = ?').get(key) as Row | undefined;
    if (!row || row.failures < limit.failures) return null;
    const left = row.window_start + limit.windowMs - this.#now();
    return left > 0 ? Math.ceil(left / 1000) : null;
  }

  #count(key: string, limit: Limit, now: number): void {
    const row = this.#db.prepare('SELECT failures, window_start FROM sign_in_failures WHERE key = ?').get(key) as Row | undefined;
    if (!row || now - row.window_start >= limit.windowMs) {
      this.#db.prepare('INSERT INTO sign_in_failures (key, failures, window_start) VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET failures = 1, window_start = excluded.window_start').run(key, now);
    } else {
      this.#db.prepare('UPDATE sign_in_failures SET failures = failures + 1 WHERE key = ?').run(key);
    }
  }
}
