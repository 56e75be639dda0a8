import crypto from 'node:crypto';

/**
 * CSRF tokens for the JSON API (docs/web.md). A token is an HMAC of the user and the session
 * cookie under a secret the web server draws when it starts: it binds to one sign-in, needs no
 * storage, and a page from another site can neither read it nor send the custom header that
 * carries it without a CORS preflight, which this server never grants.
 */
export class Csrf {
  readonly #secret: Buffer;

  constructor(secret: Buffer = crypto.randomBytes(32)) {
    this.#secret = secret;
  }

  token(user: string, session: string): string {
    return crypto.createHmac('sha256', this.#secret).update(`${user}\n${session}`).digest('base64url');
  }

  check(user: string, session: string, given: string | undefined): boolean {
    if (given === undefined) return false;
    const want = Buffer.from(this.token(user, session));
    const got = Buffer.from(given);
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  }
}

/** The session cookie's value (set by the sign-in server), or '' when there is none. */
export function sessionOf(cookieHeader: string | undefined): string {
  for (const part of (cookieHeader ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === 'slipway_session') return part.slice(eq + 1).trim();
  }
  return '';
}
