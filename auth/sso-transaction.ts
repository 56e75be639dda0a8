import crypto from 'node:crypto';
import path from 'node:path';
import fs from 'node:fs/promises';
import { SlipwayError } from '../core/errors.js';
import { createFileOnce } from '../core/files.js';

/**
 * One single sign-on round trip, kept by the browser between `begin` and `finish` in the
 * `slipway_sso` cookie. It holds the PKCE verifier, so it is sealed with AES-256-GCM: the browser
 * can neither read nor change it, and any change fails the tag check (docs/security.md).
 */
export interface SsoTransaction {
  state: string;
  nonce: string;
  /** The PKCE code verifier (S256). */
  verifier: string;
  next: string;
  /** The redirect_uri sent to the provider; the token request must repeat it exactly. */
  callback: string;
  /** The issuer it was started with: a round trip begun before `auth:oidc` changed is refused. */
  issuer: string;
  /** Milliseconds since the epoch. */
  expires: number;
}

/** Long enough to sign in at the provider, short enough that a stolen cookie soon goes stale. */
export const SSO_TRANSACTION_TTL_MS = 10 * 60 * 1000;

const VERSION = 'v1';
const AAD = Buffer.from('slipway sso transaction v1');

const refused = (why: string) => new SlipwayError('E_SSO_TRANSACTION', `single sign-on ${why}: start again from the sign-in page`);

export function sealTransaction(key: Buffer, t: SsoTransaction): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(AAD);
  const body = Buffer.concat([cipher.update(JSON.stringify(t), 'utf8'), cipher.final()]);
  return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
}

/** The transaction inside `sealed`; refuses one that is missing, altered, foreign or expired. */
export function openTransaction(key: Buffer, sealed: string, now: number): SsoTransaction {
  if (sealed === '') throw refused('has no sign-in in progress (its cookie is missing or expired)');
  const [version, payload] = sealed.split('.');
  const raw = version === VERSION && payload !== undefined && sealed.length < 4096 ? Buffer.from(payload, 'base64url') : Buffer.alloc(0);
  if (raw.length < 12 + 16 + 2) throw refused('got a malformed sign-in cookie');
  let t: SsoTransaction;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(AAD);
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    t = JSON.parse(Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8')) as SsoTransaction;
  } catch {
    throw refused('got a sign-in cookie that was altered or sealed by another key');
  }
  if (!(typeof t.expires === 'number' && t.expires > now)) throw refused('took too long (over 10 minutes)');
  return t;
}

/**
 * The sealing key, `$SLIPWAY_HOME/state/sso.key` (0600): 32 random bytes made on first use and
 * shared by every process of the instance. Removing it only cancels sign-ins in progress.
 */
export async function loadSsoKey(file: string): Promise<Buffer> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const text = (await createFileOnce(file, Buffer.from(`${crypto.randomBytes(32).toString('hex')}\n`), 0o600)).toString('utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new SlipwayError('E_STATE', `${file} is not a single sign-on key: remove it (a new one is made; sign-ins in progress restart)`);
  return Buffer.from(text, 'hex');
}
