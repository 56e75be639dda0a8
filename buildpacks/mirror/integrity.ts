import { createHash } from 'node:crypto';

/**
 * Subresource Integrity strings as npm writes them (`sha512-<base64>`, several separated by
 * spaces). Pure: no I/O.
 */
const STRENGTH = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
type Algorithm = (typeof STRENGTH)[number];

export interface SriHash {
  algorithm: Algorithm;
  digest: string;
}

export function parseSri(sri: string): SriHash[] {
  const out: SriHash[] = [];
  for (const token of sri.trim().split(/\s+/)) {
    const m = /^(sha1|sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(token);
    if (m) out.push({ algorithm: m[1] as Algorithm, digest: m[2]! });
  }
  return out;
}

/**
 * True when `data` matches one of the strongest hashes in `sri`, as npm's ssri does: a weak hash
 * next to a strong one is not allowed to vouch for the data on its own. An SRI string with no
 * hash we know is a mismatch, never a pass.
 */
export function integrityMatches(data: Uint8Array, sri: string): boolean {
  const hashes = parseSri(sri);
  if (hashes.length === 0) return false;
  const best = Math.max(...hashes.map((h) => STRENGTH.indexOf(h.algorithm)));
  const algorithm = STRENGTH[best]!;
  const actual = createHash(algorithm).update(data).digest('base64');
  return hashes.some((h) => h.algorithm === algorithm && h.digest === actual);
}

export function sha512Sri(data: Uint8Array): string {
  return `sha512-${createHash('sha512').update(data).digest('base64')}`;
}

/** The SRI form of a registry `shasum` (hex sha1), for packuments that carry nothing better. */
export function sha1HexToSri(hex: string): string | null {
  return /^[0-9a-f]{40}$/i.test(hex) ? `sha1-${Buffer.from(hex, 'hex').toString('base64')}` : null;
}

/** `integrityMatches` for data hashed as it streamed by: `digest(algorithm)` gives its base64 digest. */
export function integrityMatchesDigests(sri: string, digest: (algorithm: Algorithm) => string): boolean {
  const hashes = parseSri(sri);
  if (hashes.length === 0) return false;
  const algorithm = STRENGTH[Math.max(...hashes.map((h) => STRENGTH.indexOf(h.algorithm)))]!;
  const actual = digest(algorithm);
  return hashes.some((h) => h.algorithm === algorithm && h.digest === actual);
}

/** Hashes a stream of chunks with every algorithm an SRI string may name. */
export class MultiHash {
  readonly #hashes = new Map(STRENGTH.map((a) => [a, createHash(a)] as const));
  #digests: Map<Algorithm, string> | null = null;
  size = 0;

  update(chunk: Uint8Array): void {
    this.size += chunk.byteLength;
    for (const h of this.#hashes.values()) h.update(chunk);
  }

  digest(algorithm: Algorithm, encoding: 'base64' | 'hex' = 'base64'): string {
    this.#digests ??= new Map([...this.#hashes].map(([a, h]) => [a, h.digest('base64')]));
    const b64 = this.#digests.get(algorithm)!;
    return encoding === 'base64' ? b64 : Buffer.from(b64, 'base64').toString('hex');
  }
}
