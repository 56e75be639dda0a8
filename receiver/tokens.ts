import crypto from 'node:crypto';
import { SlipwayError } from '../core/errors.js';
import type { Db } from '../core/db.js';
import { BUILTIN_ADMIN, writeAudit, type Origin } from '../core/users.js';

/** What is kept of a token: never the token itself, only its hash. */
export interface StoredToken {
  name: string;
  /** The user the token acts as. */
  user: string;
  /** `sha256:<hex>` of the whole token string. */
  hash: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/** What listings show: everything but the hash. */
export type TokenInfo = Omit<StoredToken, 'hash'>;

export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
export const TOKEN_PREFIX = 'slw_';
/** Longer than any token we issue; anything longer is refused before hashing. */
const MAX_TOKEN_LENGTH = 256;
/** lastUsedAt is a hint, not an audit log: write it at most this often per token. */
const LAST_USED_RESOLUTION_MS = 60_000;

export function checkTokenName(name: string): string {
  // Names never reach a path, but `..` in one is a probe, not a name: refuse it like app names.
  if (!TOKEN_NAME_PATTERN.test(name) || name.includes('..')) {
    throw new SlipwayError('E_TOKEN', `invalid token name ${JSON.stringify(name.slice(0, 64))}: use 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit, no ".."`);
  }
  return name;
}

/** 256 random bits, base64url: `slw_` + 43 characters. The prefix makes leaked tokens easy to grep for. */
export function generateToken(): string {
  return `${TOKEN_PREFIX}${crypto.randomBytes(32).toString('base64url')}`;
}

/**
 * A plain sha256 is enough here: tokens carry 256 random bits, so there is nothing for a slow
 * password hash to protect against, and checking stays cheap on every git request.
 */
export function hashToken(token: string): string {
  return `sha256:${crypto.createHash('sha256').update(token).digest('hex')}`;
}

interface TokenRow {
  name: string;
  user_name: string;
  hash: string;
  created_at: string;
  last_used_at: string | null;
}

const infoOf = (r: TokenRow): TokenInfo => ({ name: r.name, user: r.user_name, createdAt: r.created_at, lastUsedAt: r.last_used_at });

/** Access tokens for git over HTTP, each belonging to a user, in the platform database. */
export class TokenStore {
  readonly #db: Db;
  readonly #now: () => Date;

  constructor(db: Db, now: () => Date = () => new Date()) {
    this.#db = db;
    this.#now = now;
  }

  async list(user?: string): Promise<TokenInfo[]> {
    const rows = (user === undefined
      ? this.#db.prepare('SELECT * FROM tokens ORDER BY created_at, name').all()
      : this.#db.prepare('SELECT * FROM tokens WHERE user_name = ? ORDER BY created_at, name').all(user)) as TokenRow[];
    return rows.map(infoOf);
  }

  /** The user a token acts as; null when there is no such token. */
  userOf(name: string): string | null {
    return (this.#db.prepare('SELECT user_name FROM tokens WHERE name = ?').get(name) as { user_name: string } | undefined)?.user_name ?? null;
  }

  /** Returns the new token: the only time it exists outside the client. */
  async create(name: string, o: { user?: string; origin?: Origin } = {}): Promise<{ token: string; info: TokenInfo }> {
    checkTokenName(name);
    const user = o.user ?? BUILTIN_ADMIN;
    const token = generateToken();
    const now = this.#now();
    const info: TokenInfo = { name, user, createdAt: now.toISOString(), lastUsedAt: null };
    this.#db.transaction(() => {
      if (this.#db.prepare('SELECT 1 FROM tokens WHERE name = ?').get(name)) {
        throw new SlipwayError('E_TOKEN', `a token named "${name}" exists already: revoke it first with \`slipway tokens:revoke ${name}\``);
      }
      if (!this.#db.prepare('SELECT 1 FROM users WHERE name = ?').get(user)) throw new SlipwayError('E_TOKEN', `no user named ${JSON.stringify(user)}: see \`slipway users:list\``);
      this.#db.prepare('INSERT INTO tokens (name, user_name, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, NULL)').run(name, user, hashToken(token), info.createdAt);
      if (o.origin) writeAudit(this.#db, now, o.origin, 'tokens:create', null, `token=${name} user=${user}`);
    }).immediate();
    return { token, info };
  }

  async revoke(name: string, o: { origin?: Origin; onlyUser?: string } = {}): Promise<void> {
    this.#db.transaction(() => {
      const row = this.#db.prepare('SELECT * FROM tokens WHERE name = ?').get(name) as TokenRow | undefined;
      if (!row || (o.onlyUser !== undefined && row.user_name !== o.onlyUser)) {
        throw new SlipwayError('E_TOKEN', `no token named ${JSON.stringify(name.slice(0, 64))}: see \`slipway tokens:list\``);
      }
      this.#db.prepare('DELETE FROM tokens WHERE name = ?').run(name);
      if (o.origin) writeAudit(this.#db, this.#now(), o.origin, 'tokens:revoke', null, `token=${name} user=${row.user_name}`);
    }).immediate();
  }

  /**
   * The name of the token that matches, or null; tokens of locked users never match. Every
   * candidate hash is compared, in constant time, so the timing says nothing about which token
   * (or which prefix) came close.
   */
  async verify(presented: string): Promise<string | null> {
    return (await this.identify(presented))?.name ?? null;
  }

  /** Like `verify`, with the token's user. */
  async identify(presented: string): Promise<{ name: string; user: string } | null> {
    if (presented.length === 0 || presented.length > MAX_TOKEN_LENGTH) return null;
    const offered = Buffer.from(hashToken(presented));
    let found: TokenRow | null = null;
    const rows = this.#db.prepare('SELECT t.* FROM tokens t JOIN users u ON u.name = t.user_name WHERE u.locked = 0').all() as TokenRow[];
    for (const t of rows) {
      const stored = Buffer.from(t.hash);
      if (stored.length === offered.length && crypto.timingSafeEqual(stored, offered)) found = t;
    }
    if (!found) return null;
    this.#touch(found);
    return { name: found.name, user: found.user_name };
  }

  #touch(t: TokenRow): void {
    const now = this.#now();
    if (t.last_used_at && now.getTime() - Date.parse(t.last_used_at) < LAST_USED_RESOLUTION_MS) return;
    this.#db.prepare('UPDATE tokens SET last_used_at = ? WHERE name = ?').run(now.toISOString(), t.name);
  }
}
