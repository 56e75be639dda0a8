import fs from 'node:fs/promises';
import path from 'node:path';
import type { Db } from './db.js';
import { readJson } from './files.js';
import { BUILTIN_ADMIN, writeAudit } from './users.js';

interface LegacyKey {
  name: string;
  type: string;
  fingerprint: string;
  publicKey: string;
  addedAt: string;
}

interface LegacyToken {
  name: string;
  hash: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/**
 * Moves the SSH keys and tokens of a Slipway from before users (state/ssh-keys.json,
 * state/tokens.json) into the database, owned by the built-in admin, so every key and token
 * keeps working after the upgrade. Idempotent: rows that exist are kept, and each file is renamed
 * to `*.migrated` only after its rows committed, so a crash in between re-imports nothing twice.
 */
export async function importLegacyKeysAndTokens(db: Db, stateDir: string, now = new Date()): Promise<{ keys: number; tokens: number }> {
  const keysFile = path.join(stateDir, 'ssh-keys.json');
  const tokensFile = path.join(stateDir, 'tokens.json');
  const keys = await readJson<LegacyKey[] | null>(keysFile, null);
  const tokens = await readJson<LegacyToken[] | null>(tokensFile, null);
  const origin = { actor: 'slipway', source: 'upgrade' };
  const counted = { keys: 0, tokens: 0 };
  db.transaction(() => {
    const addKey = db.prepare('INSERT OR IGNORE INTO ssh_keys (name, user_name, type, fingerprint, public_key, added_at) VALUES (?, ?, ?, ?, ?, ?)');
    const addToken = db.prepare('INSERT OR IGNORE INTO tokens (name, user_name, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)');
    for (const k of keys ?? []) counted.keys += addKey.run(k.name, BUILTIN_ADMIN, k.type, k.fingerprint, k.publicKey, k.addedAt).changes;
    for (const t of tokens ?? []) counted.tokens += addToken.run(t.name, BUILTIN_ADMIN, t.hash, t.createdAt, t.lastUsedAt).changes;
    if (counted.keys + counted.tokens > 0) writeAudit(db, now, origin, 'migrate', null, `keys=${counted.keys} tokens=${counted.tokens} user=${BUILTIN_ADMIN}`);
  }).immediate();
  if (keys !== null) await fs.rename(keysFile, `${keysFile}.migrated`);
  if (tokens !== null) await fs.rename(tokensFile, `${tokensFile}.migrated`);
  return counted;
}
