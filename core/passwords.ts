import crypto from 'node:crypto';
import { SlipwayError } from './errors.js';

/**
 * scrypt with N=2^15, r=8, p=1: 32 MiB and roughly 100 ms per hash, the memory-hard setting
 * OWASP lists for scrypt. The parameters are stored with each hash so they can be raised later.
 */
export const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keylen: 32 } as const;
export const MIN_PASSWORD_LENGTH = 10;
/** Longer than any passphrase; bounds the work an attacker can make us do. */
export const MAX_PASSWORD_LENGTH = 1024;

function scrypt(password: string, salt: Buffer, o: { N: number; r: number; p: number; keylen: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFC'), salt, o.keylen, { N: o.N, r: o.r, p: o.p, maxmem: 128 * o.N * o.r * 2 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export function checkPassword(password: string): string {
  if ([...password].length < MIN_PASSWORD_LENGTH) throw new SlipwayError('E_USAGE', `the password is too short: use at least ${MIN_PASSWORD_LENGTH} characters`, { exitCode: 2 });
  if (password.length > MAX_PASSWORD_LENGTH) throw new SlipwayError('E_USAGE', `the password is too long: use at most ${MAX_PASSWORD_LENGTH} characters`, { exitCode: 2 });
  return password;
}

/** `scrypt$N$r$p$<salt b64>$<hash b64>`, with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<string> {
  checkPassword(password);
  const salt = crypto.randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** True when `password` matches `stored`; constant-time comparison, false for anything malformed. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (stored === null || password.length > MAX_PASSWORD_LENGTH) return false;
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0) || N > 2 ** 20 || r > 32 || p > 16) return false;
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length < 16) return false;
  const key = await scrypt(password, Buffer.from(parts[4]!, 'base64'), { N, r, p, keylen: expected.length });
  return crypto.timingSafeEqual(key, expected);
}

/** The first line of what `--password-stdin` received, without its line end. */
export function passwordFromStdin(text: string): string {
  const line = text.split('\n')[0]!.replace(/\r$/, '');
  if (line.length === 0) throw new SlipwayError('E_USAGE', 'no password on standard input: pipe one line, e.g. `read -rs P; printf "%s\\n" "$P" | slipway users:add ... --password-stdin`', { exitCode: 2 });
  return checkPassword(line);
}
