import crypto from 'node:crypto';
import { readTextIfExists, writeFileAtomicText } from '../core/files.js';

/**
 * CSRF tokens for the sign-in forms (docs/security.md): the form carries HMAC(secret, binding),
 * where `binding` is a random pre-session cookie (`slipway_csrf`, HttpOnly, path /_auth/). Any
 * app under the platform's domain could set that cookie for its siblings, but without the
 * server's secret it cannot make the matching form token.
 */
export const CSRF_COOKIE = 'slipway_csrf';

/** The server secret, created once (32 random bytes, mode 0600) and kept across restarts. */
export async function loadSecret(file: string): Promise<Buffer> {
  const existing = await readTextIfExists(file);
  if (existing !== null && /^[A-Za-z0-9_-]{43}$/.test(existing.trim())) return Buffer.from(existing.trim(), 'base64url');
  const secret = crypto.randomBytes(32);
  await writeFileAtomicText(file, `${secret.toString('base64url')}\n`, 0o600);
  return secret;
}

export const newBinding = (): string => crypto.randomBytes(32).toString('base64url');

export function csrfToken(secret: Buffer, binding: string): string {
  return crypto.createHmac('sha256', secret).update(`csrf:${binding}`).digest('base64url');
}

/** True only for a well-formed binding and its own token; constant-time comparison. */
export function checkCsrf(secret: Buffer, binding: string | undefined, token: string | undefined): boolean {
  if (!binding || !token || !/^[A-Za-z0-9_-]{43}$/.test(binding)) return false;
  const expected = Buffer.from(csrfToken(secret, binding));
  const given = Buffer.from(token);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

/**
 * The App Manager's one-click sign-out (docs/web.md, "Signing out"): a token bound to the session
 * itself, which the platform's pages (served by the daemon, which reads this server's secret)
 * put in their `Sign out` form. The pre-session cookie above is scoped to /_auth/ and never
 * reaches those pages, so they could not make the usual token. Only a holder of the secret and
 * of the HttpOnly session cookie can make this one, and it can do nothing but end that session.
 */
export function signOutToken(secret: Buffer, session: string): string {
  return crypto.createHmac('sha256', secret).update(`sign-out:${session}`).digest('base64url');
}

export function checkSignOutToken(secret: Buffer, session: string | undefined, token: string | undefined): boolean {
  if (!session || !token) return false;
  const expected = Buffer.from(signOutToken(secret, session));
  const given = Buffer.from(token);
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}
