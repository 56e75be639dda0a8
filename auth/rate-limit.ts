import type { Db } from '../core/db.js';

/**
 * Sign-in attempts, limited per user name and per client address and kept in the database so
 * a restart does not reset them (docs/security.md). Failures against one user name block only
 * that name; an address that guesses across many names is blocked as an address. A success
 * clears its user name's count and does not count against its address.
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

  /**
   * Asks to try a password. When blocked: how many seconds until the block ends, nothing counted.
   * Otherwise the attempt counts as a failure at once, in one transaction with the check, so
   * concurrent guesses cannot all pass the check before the first is counted; `succeeded`
   * takes it back.
   */
  attempt(user: string, address: string): number | null {
    return this.#db.transaction((): number | null => {
      const waits = [this.#wait(`user:${user}`, this.#limits.user), this.#wait(`addr:${address}`, this.#limits.address)].filter((w): w is number => w !== null);
      if (waits.length > 0) return Math.max(...waits);
      const now = this.#now();
      this.#count(`user:${user}`, this.#limits.user, now);
      this.#count(`addr:${address}`, this.#limits.address, now);
      // Old windows go as new ones come: the table stays as small as the recent attack.
      const oldest = now - Math.max(this.#limits.user.windowMs, this.#limits.address.windowMs);
      this.#db.prepare('DELETE FROM sign_in_failures WHERE window_start < ?').run(oldest);
      return null;
    }).immediate();
  }

  /** The attempt was right: the user's count starts over, the address's loses this attempt. */
  succeeded(user: string, address: string): void {
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM sign_in_failures WHERE key = ?').run(`user:${user}`);
      this.#db.prepare('UPDATE sign_in_failures SET failures = max(failures - 1, 0) WHERE key = ?').run(`addr:${address}`);
    }).immediate();
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
