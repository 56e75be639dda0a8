import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SlipwayError } from '../../core/errors.js';
import { openDb } from '../../core/db.js';
import { TokenStore, generateToken, hashToken } from '../../receiver/tokens.js';

describe('TokenStore', () => {
  let dir: string;
  let file: string;
  let clock: Date;
  let store: TokenStore;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-tokens-'));
    file = path.join(dir, 'slipway.db');
    clock = new Date('2025-01-01T00:00:00Z');
    store = new TokenStore(openDb(file), () => clock);
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('issues 256-bit slw_ tokens, distinct each time', () => {
    const a = generateToken();
    expect(a).toMatch(/^slw_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.slice(4), 'base64url')).toHaveLength(32);
    expect(generateToken()).not.toBe(a);
  });

  it('stores only a hash, in a database only its owner can read', async () => {
    const { token, info } = await store.create('ci');
    expect(info).toEqual({ name: 'ci', user: 'admin', createdAt: '2025-01-01T00:00:00.000Z', lastUsedAt: null });
    const text = (await fs.readFile(file)).toString('latin1') + (await fs.readFile(`${file}-wal`).catch(() => Buffer.alloc(0))).toString('latin1');
    expect(text).not.toContain(token);
    expect(text).toContain(hashToken(token));
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(await store.list())).not.toContain('sha256');
  });

  it('verifies the right token, refuses others, and records last use', async () => {
    const { token } = await store.create('ci');
    await store.create('laptop');
    expect(await store.verify('slw_nope')).toBeNull();
    expect(await store.verify('')).toBeNull();
    expect(await store.verify(`${token}x`)).toBeNull();
    expect(await store.verify('x'.repeat(10_000))).toBeNull();
    clock = new Date('2025-01-02T00:00:00Z');
    expect(await store.verify(token)).toBe('ci');
    expect((await store.list()).find((t) => t.name === 'ci')?.lastUsedAt).toBe('2025-01-02T00:00:00.000Z');
    // A fresh store reads what was written.
    expect((await new TokenStore(openDb(file)).list()).map((t) => t.name)).toEqual(['ci', 'laptop']);
  });

  it('revokes by name, after which the token fails', async () => {
    const { token } = await store.create('ci');
    await store.revoke('ci');
    expect(await store.verify(token)).toBeNull();
    expect(await store.list()).toEqual([]);
    await expect(store.revoke('ci')).rejects.toThrow(/no token named "ci"/);
  });

  it('refuses duplicate and malformed names with E_TOKEN', async () => {
    await store.create('ci');
    await expect(store.create('ci')).rejects.toThrow(/exists already/);
    for (const bad of ['', '-x', '../x', 'a..b', 'a b', 'a;b', 'x'.repeat(65), 'é']) {
      const err = await store.create(bad).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(SlipwayError);
      expect((err as SlipwayError).code).toBe('E_TOKEN');
    }
    expect((await store.list()).map((t) => t.name)).toEqual(['ci']);
  });

  it('keeps every one of many concurrent creates', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.create(`t${i}`)));
    expect(await new TokenStore(openDb(file)).list()).toHaveLength(20);
  });
});
