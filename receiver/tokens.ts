import crypto from 'node:crypto';
import { SlipwayError } from '../core/errors.js';
import { readJson, writeJsonAtomic } from '../core/files.js';

/** What is kept of a token: never the token itself, only its hash. */
export interface StoredToken {
  name: string;
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

/** Access tokens for git over HTTP; one atomically written file, mode 0600. */
export class TokenStore {
  readonly #file: string;
  readonly #now: () => Date;
  #cache: StoredToken[] | null = null;
  /** Changes run one at a time so concurrent creates and last-used updates never lose a write. */
  #writing: Promise<unknown> = Promise.resolve();

  constructor(file: string, now: () => Date = () => new Date()) {
    this.#file = file;
    this.#now = now;
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.#load()).map(({ hash: _hash, ...info }) => info);
  }

  /** Returns the new token: the only time it exists outside the client. */
  async create(name: string): Promise<{ token: string; info: TokenInfo }> {
    checkTokenName(name);
    return this.#change(async (tokens) => {
      if (tokens.some((t) => t.name === name)) {
        throw new SlipwayError('E_TOKEN', `a token named "${name}" exists already: revoke it first with \`slipway tokens:revoke ${name}\``);
      }
      const token = generateToken();
      const stored: StoredToken = { name, hash: hashToken(token), createdAt: this.#now().toISOString(), lastUsedAt: null };
      const { hash: _hash, ...info } = stored;
      return { next: [...tokens, stored], result: { token, info } };
    });
  }

  revoke(name: string): Promise<void> {
    return this.#change(async (tokens) => {
      if (!tokens.some((t) => t.name === name)) {
        throw new SlipwayError('E_TOKEN', `no token named ${JSON.stringify(name.slice(0, 64))}: see \`slipway tokens:list\``);
      }
      return { next: tokens.filter((t) => t.name !== name), result: undefined };
    });
  }

  /**
   * The name of the token that matches, or null. Every stored hash is compared, in constant
   * time, so the timing says nothing about which token (or which prefix) came close.
   */
  async verify(presented: string): Promise<string | null> {
    if (presented.length === 0 || presented.length > MAX_TOKEN_LENGTH) return null;
    const offered = Buffer.from(hashToken(presented));
    let found: StoredToken | null = null;
    for (const t of await this.#load()) {
      const stored = Buffer.from(t.hash);
      if (stored.length === offered.length && crypto.timingSafeEqual(stored, offered)) found = t;
    }
    if (!found) return null;
    await this.#touch(found.name);
    return found.name;
  }

  async #touch(name: string): Promise<void> {
    const now = this.#now();
    const t = (await this.#load()).find((x) => x.name === name);
    if (t?.lastUsedAt && now.getTime() - Date.parse(t.lastUsedAt) < LAST_USED_RESOLUTION_MS) return;
    await this.#change(async (tokens) => ({
      next: tokens.map((x) => (x.name === name ? { ...x, lastUsedAt: now.toISOString() } : x)),
      result: undefined,
    }));
  }

  async #load(): Promise<StoredToken[]> {
    this.#cache ??= await readJson<StoredToken[]>(this.#file, []);
    return this.#cache;
  }

  #change<T>(fn: (tokens: StoredToken[]) => Promise<{ next: StoredToken[]; result: T }>): Promise<T> {
    const run = this.#writing.catch(() => undefined).then(async () => {
      const { next, result } = await fn(await this.#load());
      await writeJsonAtomic(this.#file, next);
      this.#cache = next;
      return result;
    });
    this.#writing = run;
    return run;
  }
}
