import crypto from 'node:crypto';
import ssh2 from 'ssh2';
import { SlipwayError } from '../core/errors.js';
import type { Db } from '../core/db.js';
import { BUILTIN_ADMIN, writeAudit, type Origin } from '../core/users.js';

const { utils } = ssh2;

export interface StoredKey {
  name: string;
  /** The user the key signs in as. */
  user: string;
  type: string;
  fingerprint: string;
  /** `<type> <base64 blob>`, the authorized_keys form without a comment. */
  publicKey: string;
  addedAt: string;
}

export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function checkKeyName(name: string): string {
  if (!KEY_NAME_PATTERN.test(name)) {
    throw new SlipwayError('E_KEY', `invalid key name ${JSON.stringify(name.slice(0, 64))}: use 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit`);
  }
  return name;
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Parses one OpenSSH public key line; refuses private keys and anything else. */
export function parsePublicKey(text: string): { type: string; blob: Buffer } {
  const line = text.trim();
  if (line.includes('PRIVATE KEY')) {
    throw new SlipwayError('E_KEY', 'that is a private key: give the public key (the .pub file)');
  }
  if (line.length === 0 || line.split('\n').length > 1) {
    throw new SlipwayError('E_KEY', 'expected exactly one public key line such as "ssh-ed25519 AAAA... comment"');
  }
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) {
    throw new SlipwayError('E_KEY', 'not an OpenSSH public key: expected a line such as "ssh-ed25519 AAAA... comment"');
  }
  return { type: parsed.type, blob: parsed.getPublicSSH() };
}

interface KeyRow {
  name: string;
  user_name: string;
  type: string;
  fingerprint: string;
  public_key: string;
  added_at: string;
}

const fromRow = (r: KeyRow): StoredKey => ({ name: r.name, user: r.user_name, type: r.type, fingerprint: r.fingerprint, publicKey: r.public_key, addedAt: r.added_at });

/**
 * SSH public keys allowed to push and run commands, each belonging to a user, in the platform
 * database (core/db.ts). Keys of locked users never match.
 */
export class SshKeyStore {
  readonly #db: Db;
  readonly #removed = new Set<(key: StoredKey) => void>();

  constructor(db: Db) {
    this.#db = db;
  }

  async list(user?: string): Promise<StoredKey[]> {
    const rows = (user === undefined
      ? this.#db.prepare('SELECT * FROM ssh_keys ORDER BY added_at, name').all()
      : this.#db.prepare('SELECT * FROM ssh_keys WHERE user_name = ? ORDER BY added_at, name').all(user)) as KeyRow[];
    return rows.map(fromRow);
  }

  async get(name: string): Promise<StoredKey | null> {
    const row = this.#db.prepare('SELECT * FROM ssh_keys WHERE name = ?').get(name) as KeyRow | undefined;
    return row ? fromRow(row) : null;
  }

  async add(name: string, keyText: string, o: { user?: string; origin?: Origin; now?: Date } = {}): Promise<StoredKey> {
    checkKeyName(name);
    const { type, blob } = parsePublicKey(keyText);
    const now = o.now ?? new Date();
    const user = o.user ?? BUILTIN_ADMIN;
    const fingerprint = fingerprintOf(blob);
    const key: StoredKey = { name, user, type, fingerprint, publicKey: `${type} ${blob.toString('base64')}`, addedAt: now.toISOString() };
    this.#db.transaction(() => {
      if (this.#db.prepare('SELECT 1 FROM ssh_keys WHERE name = ?').get(name)) {
        throw new SlipwayError('E_KEY', `a key named "${name}" exists already: remove it first with \`slipway ssh-keys:remove ${name}\``);
      }
      const dup = this.#db.prepare('SELECT name FROM ssh_keys WHERE fingerprint = ?').get(fingerprint) as { name: string } | undefined;
      if (dup) throw new SlipwayError('E_KEY', `this key is already added as "${dup.name}"`);
      if (!this.#db.prepare('SELECT 1 FROM users WHERE name = ?').get(user)) throw new SlipwayError('E_KEY', `no user named ${JSON.stringify(user)}: see \`slipway users:list\``);
      this.#db
        .prepare('INSERT INTO ssh_keys (name, user_name, type, fingerprint, public_key, added_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(key.name, key.user, key.type, key.fingerprint, key.publicKey, key.addedAt);
      if (o.origin) writeAudit(this.#db, now, o.origin, 'ssh-keys:add', null, `key=${name} user=${user} ${fingerprint}`);
    }).immediate();
    return key;
  }

  async remove(name: string, o: { origin?: Origin; onlyUser?: string } = {}): Promise<void> {
    const gone = await this.get(name);
    if (!gone || (o.onlyUser !== undefined && gone.user !== o.onlyUser)) throw new SlipwayError('E_KEY', `no key named "${name}": see \`slipway ssh-keys:list\``);
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM ssh_keys WHERE name = ?').run(name);
      if (o.origin) writeAudit(this.#db, new Date(), o.origin, 'ssh-keys:remove', null, `key=${name} user=${gone.user}`);
    }).immediate();
    this.notifyRemoved(gone);
  }

  /** Tells listeners a key stopped counting (removed, or its user locked or removed). */
  notifyRemoved(key: StoredKey): void {
    for (const listener of this.#removed) listener(key);
  }

  /**
   * Calls `listener` after a key is removed, so whoever holds sessions signed in with it can end
   * them (a removed key must not keep a `logs --follow` open). Returns the unsubscribe function.
   */
  onRemoved(listener: (key: StoredKey) => void): () => void {
    this.#removed.add(listener);
    return () => this.#removed.delete(listener);
  }

  /**
   * Finds the stored key whose blob equals the offered one, among keys of users who are not
   * locked. Every candidate is compared in constant time, so timing tells nothing about which
   * prefix matched.
   */
  async match(algo: string, blob: Buffer): Promise<{ key: StoredKey; verify: (data: Buffer, sig: Buffer, hash?: string) => boolean } | null> {
    let found: StoredKey | null = null;
    const rows = this.#db.prepare('SELECT k.* FROM ssh_keys k JOIN users u ON u.name = k.user_name WHERE u.locked = 0').all() as KeyRow[];
    for (const key of rows.map(fromRow)) {
      const stored = Buffer.from(key.publicKey.split(' ')[1] ?? '', 'base64');
      const same = stored.length === blob.length && crypto.timingSafeEqual(stored, blob);
      if (same && key.type === algo) found = key;
    }
    if (!found) return null;
    const parsed = utils.parseKey(found.publicKey);
    if (parsed instanceof Error || Array.isArray(parsed)) return null;
    return {
      key: found,
      verify: (data, sig, hash) => parsed.verify(data, sig, hash as never) === true,
    };
  }
}
