/**
 * The pure parts of authenticating git over HTTP: reading Basic credentials, telling clients
 * apart behind the router, and slowing down whoever keeps guessing.
 */

export interface BasicCredentials {
  user: string;
  password: string;
}

/** Headers this long are not credentials we issued; refuse before decoding. */
const MAX_AUTHORIZATION_LENGTH = 1024;

/**
 * Parses `Authorization: Basic base64(user:password)` (RFC 7617). The user may be empty or
 * anything: only the password (the token) counts. Returns null for a missing, non-Basic or
 * malformed header, so the caller answers 401 either way.
 */
export function parseBasicAuth(header: string | undefined): BasicCredentials | null {
  if (header === undefined || header.length > MAX_AUTHORIZATION_LENGTH) return null;
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (!match) return null;
  const encoded = match[1]!;
  if (encoded.length % 4 !== 0) return null;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return null;
  // Control characters never occur in tokens and have no business in a user name.
  if (/[\0-\x1f\x7f]/.test(decoded)) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The address of the client as the router saw it. The daemon's socket is reachable only by the
 * router (mode 0600), and the router appends the peer it accepted to X-Forwarded-For, so the
 * last entry is the one that cannot be forged; earlier entries come from the client.
 */
export function clientAddress(forwardedFor: string | string[] | undefined): string {
  const joined = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  const last = joined.split(',').map((s) => s.trim()).filter(Boolean).pop();
  return last ?? 'local';
}

export interface LimiterOptions {
  /** Failures allowed within `windowMs` before the client is blocked. */
  maxFailures: number;
  windowMs: number;
  /** How long a blocked client is refused. */
  blockMs: number;
  /** Clients tracked at most; the oldest are forgotten first, so a flood cannot grow memory. */
  maxClients: number;
}

export const DEFAULT_LIMITS: LimiterOptions = { maxFailures: 10, windowMs: 60_000, blockMs: 5 * 60_000, maxClients: 10_000 };

interface Entry {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

/** Counts failed logins per client in fixed windows; pure apart from the clock it is given. */
export class FailureLimiter {
  readonly #o: LimiterOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(o: Partial<LimiterOptions> = {}, now: () => number = Date.now) {
    this.#o = { ...DEFAULT_LIMITS, ...o };
    this.#now = now;
  }

  /** Milliseconds the client must still wait, or 0 when it may try. */
  blockedFor(client: string): number {
    const e = this.#entries.get(client);
    return e ? Math.max(0, e.blockedUntil - this.#now()) : 0;
  }

  /** Records one failure; returns true when this failure blocks the client. */
  fail(client: string): boolean {
    const now = this.#now();
    let e = this.#entries.get(client);
    if (!e || now - e.windowStart >= this.#o.windowMs) {
      e = { windowStart: now, failures: 0, blockedUntil: e?.blockedUntil ?? 0 };
    }
    e.failures += 1;
    const blocks = e.failures >= this.#o.maxFailures;
    if (blocks) {
      e.blockedUntil = now + this.#o.blockMs;
      e.failures = 0;
      e.windowStart = now;
    }
    // Re-insert so Map order is least-recently-failed first.
    this.#entries.delete(client);
    this.#entries.set(client, e);
    for (const key of this.#entries.keys()) {
      if (this.#entries.size <= this.#o.maxClients) break;
      this.#entries.delete(key);
    }
    return blocks;
  }
}
