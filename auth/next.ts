import { isValidAppName } from '../core/app-name.js';

/**
 * Where a sign-in may send the browser afterwards (contract, "Users and access"): a path on the
 * same host, or an http(s) URL on the platform's domain or an app host directly under it.
 * Anything else goes to `/`, so the sign-in page is never an open redirect.
 */
export function safeNext(next: string | null | undefined, domain: string): string {
  if (typeof next !== 'string' || next.length === 0 || next.length > 2048) return '/';
  // Browsers drop tabs and newlines and read `\` as `/` in URLs: "/\t/evil" and "/\evil" are
  // "//evil", another host. No whitespace, control character or backslash passes at all.
  if (/[\0-\x20\x7f\\]/.test(next)) return '/';
  if (next.startsWith('/')) return next.startsWith('//') ? '/' : next;
  let url: URL;
  try {
    url = new URL(next);
  } catch {
    return '/';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return '/';
  if (url.username !== '' || url.password !== '') return '/';
  return isPlatformHost(url.hostname, domain) ? url.href : '/';
}

/** The platform's domain itself or `<app>.<domain>`: exact labels, never a suffix match. */
export function isPlatformHost(hostname: string, domain: string): boolean {
  const host = hostname.toLowerCase();
  const d = domain.toLowerCase();
  if (host === d) return true;
  if (!host.endsWith(`.${d}`)) return false;
  return isValidAppName(host.slice(0, -(d.length + 1)));
}
