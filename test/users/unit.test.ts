import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { can, type Actor, type AppAccess } from '../../core/access.js';
import { MIGRATIONS, openDb, schemaVersion, type Db } from '../../core/db.js';
import { importLegacyKeysAndTokens } from '../../core/legacy-state.js';
import { hashPassword, passwordFromStdin, verifyPassword } from '../../core/passwords.js';
import { UserStore, checkPrincipalName } from '../../core/users.js';
import { SshKeyStore } from '../../receiver/ssh-keys.js';
import { TokenStore, hashToken } from '../../receiver/tokens.js';

const origin = { actor: 'admin', source: 'test' };
const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8Q4m3Y0s6a3q4Wm0zJ1bq2n5v6Xc9Yk1d2e3f4g5h6 me@host';

describe('passwords', () => {
  it('hashes with scrypt N=2^15 and a random salt, and verifies in constant time', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('correct');
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    expect(await verifyPassword('correct horse battery', null)).toBe(false);
    expect(await verifyPassword('x', 'scrypt$1$1$1$$')).toBe(false);
  });

  it('refuses short passwords and reads one line from stdin', async () => {
    await expect(hashPassword('short')).rejects.toThrow(/at least 10 characters/);
    expect(passwordFromStdin('0123456789\nsecond line\n')).toBe('0123456789');
    expect(passwordFromStdin('0123456789\r\n')).toBe('0123456789');
    expect(() => passwordFromStdin('')).toThrow(/no password on standard input/);
    expect(() => passwordFromStdin('123456789\n')).toThrow(/at least 10/);
  });
});

describe('names', () => {
  it('follow the app-name rule', () => {
    expect(checkPrincipalName('alice', 'user')).toBe('alice');
    for (const bad of ['', 'Alice', '-a', 'a b', "a'--", 'a;drop', '../x', 'x'.repeat(31), '1abc', 'é']) {
      expect(() => checkPrincipalName(bad, 'user'), bad).toThrow(/invalid user name/);
    }
  });
});

describe('can(user, action, app)', () => {
  const user = (name: string, role: Actor['role'], o: Partial<Actor> = {}): Actor => ({ name, role, locked: false, groups: [], ...o });
  const app = (o: Partial<AppAccess> = {}): AppAccess => ({ name: 'web', level: 'restricted', owners: ['dev'], users: [], groups: [], ...o });
  const admin = user('root1', 'admin');
  const dev = user('dev', 'developer');
  const other = user('other', 'developer');
  const viewer = user('vic', 'viewer');

  it('lets admins do everything', () => {
    for (const a of ['any', 'admin', 'app:create', 'app:view', 'app:manage'] as const) expect(can(admin, a, app())).toBe('allow');
    expect(can(admin, 'app:manage', null)).toBe('allow');
  });

  it('lets developers create apps and manage the ones they own', () => {
    expect(can(dev, 'app:create')).toBe('allow');
    expect(can(dev, 'app:manage', app())).toBe('allow');
    expect(can(dev, 'admin')).toBe('denied');
  });

  it("hides another developer's restricted app, and refuses changes to one it may view", () => {
    expect(can(other, 'app:view', app())).toBe('not-found');
    expect(can(other, 'app:manage', app())).toBe('not-found');
    expect(can(other, 'app:manage', null)).toBe('not-found');
    expect(can(other, 'app:view', app({ users: ['other'] }))).toBe('allow');
    expect(can(other, 'app:manage', app({ users: ['other'] }))).toBe('denied');
    expect(can(other, 'app:manage', app({ owners: ['dev', 'other'] }))).toBe('allow');
  });

  it('lets viewers see what they may view and nothing more', () => {
    expect(can(viewer, 'app:create')).toBe('denied');
    expect(can(viewer, 'app:view', app())).toBe('not-found');
    expect(can(viewer, 'app:view', app({ level: 'authenticated' }))).toBe('allow');
    expect(can(user('vic', 'viewer', { groups: ['ops'] }), 'app:view', app({ groups: ['ops'] }))).toBe('allow');
    expect(can(viewer, 'app:manage', app({ level: 'public' }))).toBe('denied');
    // A viewer made owner still has no git and no changes.
    expect(can(viewer, 'app:manage', app({ owners: ['vic'] }))).toBe('denied');
  });

  it('refuses locked users everything', () => {
    for (const a of ['any', 'admin', 'app:create', 'app:view', 'app:manage'] as const) expect(can(user('root1', 'admin', { locked: true }), a, app())).toBe('denied');
  });
});

describe('database', () => {
  let dir: string;
  let db: Db;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-users-'));
    db = openDb(path.join(dir, 'state', 'slipway.db'));
  });
  afterEach(async () => {
    db.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('opens in WAL mode with foreign keys, at the latest schema version, with the built-in admin', async () => {
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(schemaVersion(db)).toBe(MIGRATIONS.length);
    expect(new UserStore(db).info('admin').role).toBe('admin');
    expect((await fs.stat(path.join(dir, 'state', 'slipway.db'))).mode & 0o777).toBe(0o600);
    // Opening again runs nothing twice.
    db.close();
    db = openDb(path.join(dir, 'state', 'slipway.db'));
    expect(new UserStore(db).list().map((u) => u.name)).toEqual(['admin']);
  });

  it('migrates step by step and refuses a database newer than the code', () => {
    const file = path.join(dir, 'steps.db');
    const one = openDb(file, ['CREATE TABLE a (x TEXT) STRICT;']);
    one.prepare('INSERT INTO a VALUES (?)').run('kept');
    one.close();
    const two = openDb(file, ['CREATE TABLE a (x TEXT) STRICT;', 'ALTER TABLE a ADD COLUMN y TEXT;']);
    expect(schemaVersion(two)).toBe(2);
    expect(two.prepare('SELECT x, y FROM a').get()).toEqual({ x: 'kept', y: null });
    two.close();
    expect(() => openDb(file, ['CREATE TABLE a (x TEXT) STRICT;'])).toThrow(/newer than this Slipway/);
    // A failing step leaves the previous version, not half a schema.
    expect(() => openDb(file, ['CREATE TABLE a (x TEXT) STRICT;', 'ALTER TABLE a ADD COLUMN y TEXT;', 'CREATE TABLE b (x TEXT); SELECT nope FROM nowhere;'])).toThrow();
    const again = openDb(file, ['CREATE TABLE a (x TEXT) STRICT;', 'ALTER TABLE a ADD COLUMN y TEXT;']);
    expect(schemaVersion(again)).toBe(2);
    expect(again.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get()).toBeUndefined();
    again.close();
  });

  it('moves keys and tokens from before users to admin, once, and they keep working', async () => {
    const stateDir = path.join(dir, 'state');
    const blob = ED25519.split(' ')[1]!;
    await fs.writeFile(path.join(stateDir, 'ssh-keys.json'), JSON.stringify([{ name: 'laptop', type: 'ssh-ed25519', fingerprint: 'SHA256:x', publicKey: `ssh-ed25519 ${blob}`, addedAt: '2024-01-01T00:00:00.000Z' }]));
    await fs.writeFile(path.join(stateDir, 'tokens.json'), JSON.stringify([{ name: 'ci', hash: hashToken('slw_old-token'), createdAt: '2024-01-01T00:00:00.000Z', lastUsedAt: null }]));
    expect(await importLegacyKeysAndTokens(db, stateDir)).toEqual({ keys: 1, tokens: 1 });
    expect(await importLegacyKeysAndTokens(db, stateDir)).toEqual({ keys: 0, tokens: 0 });
    const keys = new SshKeyStore(db);
    expect((await keys.list()).map((k) => [k.name, k.user])).toEqual([['laptop', 'admin']]);
    expect(await keys.match('ssh-ed25519', Buffer.from(blob, 'base64'))).not.toBeNull();
    expect(await new TokenStore(db).identify('slw_old-token')).toEqual({ name: 'ci', user: 'admin' });
    expect(await fs.readdir(stateDir)).toEqual(expect.arrayContaining(['ssh-keys.json.migrated', 'tokens.json.migrated']));
    expect(new UserStore(db).auditLog({ limit: 10 }).map((e) => e.action)).toEqual(['migrate']);
  });

  it('stores SQL metacharacters literally in every field', async () => {
    const users = new UserStore(db);
    const evil = `x'); DROP TABLE users; --`;
    users.add({ actor: evil, source: `"; DELETE FROM audit; --` }, { name: 'bob', role: 'developer', email: `o'hara"@ex.com`, passwordHash: evil });
    expect(users.info('bob').email).toBe(`o'hara"@ex.com`);
    expect(users.passwordHash('bob')).toBe(evil);
    const keys = new SshKeyStore(db);
    await keys.add("k'--", ED25519, { user: 'bob' }).catch(() => undefined); // refused by the key-name rule
    await keys.add('k1', ED25519, { user: 'bob', origin: { actor: evil, source: 'x' } });
    users.appCreated(origin, 'web', 'bob');
    expect(() => users.setGrants(origin, 'web', [`bob' OR '1'='1`], true)).toThrow(/invalid user name/);
    const log = users.auditLog({ actor: evil, limit: 10 });
    expect(log.map((e) => e.action)).toEqual(['users:add', 'ssh-keys:add']);
    expect(log[0]!.source).toBe(`"; DELETE FROM audit; --`);
    expect(users.list().map((u) => u.name)).toEqual(['admin', 'bob']);
  });

  it('refuses to remove the only owner of an app, naming it, and never a grant for nobody', () => {
    const users = new UserStore(db);
    users.add(origin, { name: 'dev', role: 'developer', email: null, passwordHash: null });
    users.add(origin, { name: 'dev2', role: 'developer', email: null, passwordHash: null });
    users.appCreated(origin, 'web', 'dev');
    expect(() => users.remove(origin, 'dev')).toThrow(/dev is the only owner of web: add another owner first/);
    users.setOwner(origin, 'web', 'dev2', true);
    users.remove(origin, 'dev');
    expect(users.access('web').owners).toEqual(['dev2']);
    expect(() => users.remove(origin, 'admin')).toThrow(/cannot be removed/);
    users.add(origin, { name: 'ops', role: 'admin', email: null, passwordHash: null });
    expect(() => users.remove({ actor: 'ops', source: 'web' }, 'ops')).toThrow(/ops cannot remove itself: another admin can, or the local CLI/);
    users.remove(origin, 'ops');
    expect(() => users.setLocked(origin, 'admin', true)).toThrow(/cannot be locked/);
    expect(() => users.setGrants(origin, 'web', ['@nogroup'], true)).toThrow(/no group named/);
    expect(users.access('web')).toMatchObject({ level: 'restricted', users: [], groups: [] });
  });

  it('drops keys and tokens of locked users from matching', async () => {
    const users = new UserStore(db);
    users.add(origin, { name: 'bob', role: 'developer', email: null, passwordHash: null });
    const keys = new SshKeyStore(db);
    const tokens = new TokenStore(db);
    await keys.add('k1', ED25519, { user: 'bob' });
    const { token } = await tokens.create('t1', { user: 'bob' });
    const blob = Buffer.from(ED25519.split(' ')[1]!, 'base64');
    expect(await keys.match('ssh-ed25519', blob)).not.toBeNull();
    users.setLocked(origin, 'bob', true);
    expect(await keys.match('ssh-ed25519', blob)).toBeNull();
    expect(await tokens.verify(token)).toBeNull();
    users.setLocked(origin, 'bob', false);
    expect(await tokens.verify(token)).toBe('t1');
  });
});
