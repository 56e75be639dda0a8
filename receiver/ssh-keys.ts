import crypto from 'node:crypto';
import ssh2 from 'ssh2';
import { SlipwayError } from '../core/errors.js';
import { readJson, writeJsonAtomic } from '../core/files.js';

const { utils } = ssh2;

export interface StoredKey {
  name: string;
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

/** SSH public keys allowed to push and run commands; stored in one atomically written file. */
export class SshKeyStore {
  readonly #file: string;
  #cache: StoredKey[] | null = null;
  readonly #removed = new Set<(key: StoredKey) => void>();

  constructor(file: string) {
    this.#file = file;
  }

  async list(): Promise<StoredKey[]> {
    this.#cache ??= await readJson<StoredKey[]>(this.#file, []);
    return this.#cache;
  }

  async add(name: string, keyText: string, now = new Date()): Promise<StoredKey> {
    checkKeyName(name);
    const { type, blob } = parsePublicKey(keyText);
    const keys = await this.list();
    if (keys.some((k) => k.name === name)) {
      throw new SlipwayError('E_KEY', `a key named "${name}" exists already: remove it first with \`slipway ssh-keys:remove ${name}\``);
    }
    const fingerprint = fingerprintOf(blob);
    const dup = keys.find((k) => k.fingerprint === fingerprint);
    if (dup) throw new SlipwayError('E_KEY', `this key is already added as "${dup.name}"`);
    const key: StoredKey = { name, type, fingerprint, publicKey: `${type} ${blob.toString('base64')}`, addedAt: now.toISOString() };
    await this.#save([...keys, key]);
    return key;
  }

  async remove(name: string): Promise<void> {
    const keys = await this.list();
    if (!keys.some((k) => k.name === name)) throw new SlipwayError('E_KEY', `no key named "${name}": see \`slipway ssh-keys:list\``);
    const gone = keys.find((k) => k.name === name)!;
    await this.#save(keys.filter((k) => k.name !== name));
    for (const listener of this.#removed) listener(gone);
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
   * Finds the stored key whose blob equals the offered one. Every stored key is compared in
   * constant time, so timing tells nothing about which prefix matched.
   */
  async match(algo: string, blob: Buffer): Promise<{ key: StoredKey; verify: (data: Buffer, sig: Buffer, hash?: string) => boolean } | null> {
    let found: StoredKey | null = null;
    for (const key of await this.list()) {
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

  async #save(keys: StoredKey[]): Promise<void> {
    await writeJsonAtomic(this.#file, keys);
    this.#cache = keys;
  }
}
