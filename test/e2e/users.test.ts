import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// Users, roles and per-app access through the real doors: the ssh client, git over SSH and over
// HTTP (through the router), and the local CLI as the built-in admin.
describe('users, roles and access', () => {
  let platform: TestPlatform;
  const app = uniqueApp('own');
  const keys: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  let wc: string;

  const cli = (args: string[], code = 0, input?: string) => platform.expectCli(args, code, input);
  const as = (user: string, args: string[], input?: string) => platform.ssh(args, { key: keys[user]!, ...(input === undefined ? {} : { input }) });
  const httpRemote = (secret: string) => `http://x:${secret}@127.0.0.1:${platform.httpPort}/_git/${app}.git`;
  const gitAs = (user: string, args: string[]) => run('git', args, { cwd: wc, env: platform.gitEnv(keys[user]!) });

  beforeAll(async () => {
    platform = await TestPlatform.start();
    wc = await platform.workingCopy('node-hello');
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('moves SSH keys and tokens from before users to admin on the first start', async () => {
    // Make this home look like an older Slipway: keys and tokens in JSON files, no database.
    const keysBefore = JSON.parse((await cli(['ssh-keys:list', '--json'])).stdout) as { name: string; type: string; fingerprint: string; addedAt: string }[];
    const pub = (await fs.readFile(`${platform.keyFile}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    await platform.stopDaemon();
    const state = path.join(platform.home, 'state');
    for (const f of ['slipway.db', 'slipway.db-wal', 'slipway.db-shm']) await fs.rm(path.join(state, f), { force: true });
    const legacyToken = 'slw_legacy-token-from-an-older-version-0000000';
    const { hashToken } = await import('../../receiver/tokens.js');
    await fs.writeFile(path.join(state, 'ssh-keys.json'), JSON.stringify(keysBefore.map((k) => ({ ...k, publicKey: pub }))));
    await fs.writeFile(path.join(state, 'tokens.json'), JSON.stringify([{ name: 'old-ci', hash: hashToken(legacyToken), createdAt: '2024-01-01T00:00:00.000Z', lastUsedAt: null }]));
    await platform.restartDaemon();
    const who = await platform.ssh(['whoami']);
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toBe('admin (admin)\n');
    const listed = JSON.parse((await cli(['tokens:list', '--json'])).stdout) as { name: string; user: string }[];
    expect(listed).toEqual([expect.objectContaining({ name: 'old-ci', user: 'admin' })]);
    await platform.createApp(app, { private: true });
    const lsRemote = await run('git', ['ls-remote', httpRemote(legacyToken)], { env: platform.gitEnv() });
    expect(lsRemote.code, lsRemote.stderr).toBe(0);
    expect(await fs.readdir(state)).toEqual(expect.arrayContaining(['ssh-keys.json.migrated', 'tokens.json.migrated']));
  }, 300_000);

  it('adds users with a password from stdin only, and keys and tokens for them', async () => {
    for (const [name, role] of [['dev1', 'developer'], ['dev2', 'developer'], ['vic', 'viewer']] as const) {
      await cli(['users:add', name, '--role', role, '--email', `${name}@example.invalid`, '--password-stdin'], 0, 'a long enough password\n');
      keys[name] = path.join(platform.home, `key-${name}`);
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keys[name]!]);
      expect((await cli(['ssh-keys:add', `k-${name}`, `${keys[name]}.pub`, '--user', name])).stdout).toContain(`for ${name}`);
      tokens[name] = (await cli(['tokens:create', `t-${name}`, '--user', name])).stdout.trim();
    }
    expect((await cli(['users:add', 'weak', '--password-stdin'], 2, 'short\n')).stderr).toMatch(/^slipway: the password is too short/);
    expect((await cli(['users:add', 'Bad_Name', '--password-stdin'], 2, 'a long enough password\n')).stderr).toMatch(/^slipway: invalid user name/);
    expect((await cli(['users:add', 'nopass'], 2)).stderr).toMatch(/needs --password-stdin/);
    expect((await as('dev1', ['whoami'])).stdout).toBe('dev1 (developer)\n');
    expect((await as('vic', ['whoami'])).stdout).toBe('vic (viewer)\n');
    const list = (await cli(['users:list'])).stdout;
    expect(list).toMatch(/dev1\s+developer\s+active/);
    expect(list).not.toContain('a long enough password');
  }, 120_000);

  it("hides another developer's app: app not found, the same words as for no app at all", async () => {
    const mine = uniqueApp('dev');
    const created = await as('dev1', ['apps:create', mine]);
    expect(created.code, created.stderr).toBe(0);
    expect((await as('dev1', ['owners', mine])).stdout).toBe('dev1\n');
    expect((await as('dev1', ['access', mine])).stdout).toMatch(/level\s+restricted/);
    const ghost = uniqueApp('ghost');
    for (const args of [['apps:info', mine], ['config:set', mine, 'A=1'], ['ps', mine], ['apps:destroy', mine, '--force'], ['access:set', mine, 'public'], ['logs', mine]]) {
      const hidden = await as('dev2', args);
      const none = await as('dev2', args.map((a) => (a === mine ? ghost : a)));
      expect(hidden.code, args.join(' ')).toBe(1);
      expect(hidden.stderr.replaceAll(mine, 'X')).toBe(none.stderr.replaceAll(ghost, 'X'));
      expect(hidden.stderr).toMatch(/^slipway: app ".*" does not exist/);
    }
    expect((await as('dev2', ['apps:list'])).stdout).not.toContain(mine);
    // Allowed to view, still not to change.
    expect((await as('dev1', ['access:add', mine, 'dev2'])).code).toBe(0);
    expect((await as('dev2', ['apps:info', mine])).code).toBe(0);
    const change = await as('dev2', ['config:set', mine, 'A=1']);
    expect(change.code).toBe(1);
    expect(change.stderr).toMatch(/^slipway: permission denied/);
    expect((await cli(['config', mine])).stdout).toContain('no config vars');
    // Viewers create nothing; only admins manage users.
    expect((await as('vic', ['apps:create', uniqueApp('vic')])).stderr).toMatch(/^slipway: permission denied/);
    expect((await as('dev1', ['users:add', 'sneak', '--password-stdin'], 'a long enough password\n')).stderr).toMatch(/^slipway: permission denied/);
    expect((await as('dev1', ['tokens:create', 'x', '--user', 'admin'])).stderr).toMatch(/^slipway: permission denied/);
    // The only owner cannot be removed; the refusal names the app.
    expect((await cli(['users:remove', 'dev1'], 1)).stderr).toContain(`dev1 is the only owner of ${mine}`);
    expect((await cli(['apps:destroy', mine, '--force'])).code).toBe(0);
  }, 300_000);

  it("refuses a viewer's push and a non-owner's git over SSH and HTTP, changing nothing", async () => {
    await cli(['access:add', app, 'vic', 'dev2']);
    const sshPush = await gitAs('vic', ['push', platform.sshRemote(app), 'main']);
    expect(sshPush.code).not.toBe(0);
    expect(sshPush.stderr).toContain('permission denied');
    const httpPush = await run('git', ['push', httpRemote(tokens.vic!), 'main'], { cwd: wc, env: platform.gitEnv() });
    expect(httpPush.code).not.toBe(0);
    expect(httpPush.stderr).toMatch(/permission denied|403/);
    const httpFetch = await run('git', ['ls-remote', httpRemote(tokens.dev2!)], { env: platform.gitEnv() });
    expect(httpFetch.code).not.toBe(0);
    // dev1 may not even see this app: git gets the answer of a missing app.
    const hidden = await run('git', ['ls-remote', httpRemote(tokens.dev1!)], { env: platform.gitEnv() });
    expect(hidden.code).not.toBe(0);
    expect(hidden.stderr).toMatch(/app not found|404/);
    const sshHidden = await gitAs('dev1', ['ls-remote', platform.sshRemote(app)]);
    expect(sshHidden.stderr).toContain(`app "${app}" does not exist`);
    // Nothing arrived.
    const refs = await run('git', ['ls-remote', platform.sshRemote(app)], { env: platform.gitEnv() });
    expect(refs.code, refs.stderr).toBe(0);
    expect(refs.stdout).toBe('');
  }, 120_000);

  it("refuses a locked user's key and token at once, and takes them back on unlock", async () => {
    await cli(['owners:add', app, 'dev1']);
    expect((await run('git', ['ls-remote', httpRemote(tokens.dev1!)], { env: platform.gitEnv() })).code).toBe(0);
    await cli(['users:lock', 'dev1']);
    const ssh = await as('dev1', ['whoami']);
    expect(ssh.code).toBe(255);
    expect(ssh.stderr).toMatch(/Permission denied \(publickey\)/);
    const http = await run('git', ['ls-remote', httpRemote(tokens.dev1!)], { env: platform.gitEnv() });
    expect(http.code).not.toBe(0);
    expect(http.stderr).toMatch(/401|wrong token|Authentication failed/);
    await cli(['users:unlock', 'dev1']);
    expect((await as('dev1', ['whoami'])).stdout).toBe('dev1 (developer)\n');
  }, 120_000);

  it('stores SQL metacharacters literally in every field', async () => {
    const evilEmail = `o'x";DROP-TABLE-users;--@e.com`;
    const evilPassword = `pa'ss"; DROP TABLE users; --`;
    await cli(['users:add', 'sqli', '--email', evilEmail, '--password-stdin'], 0, `${evilPassword}\n`);
    const info = JSON.parse((await cli(['users:info', 'sqli', '--json'])).stdout) as { email: string };
    expect(info.email).toBe(evilEmail);
    for (const bad of [`x'; DROP TABLE users; --`, `a" OR "1"="1`, 'a%', 'a_b']) {
      expect((await cli(['users:add', bad, '--password-stdin'], 2, 'a long enough password\n')).stderr).toMatch(/^slipway: invalid user name/);
      expect((await cli(['groups:create', bad], 2)).stderr).toMatch(/^slipway: invalid group name/);
      expect((await cli(['access:add', app, bad], 2)).stderr).toMatch(/^slipway: invalid (user|group) name/);
      expect((await cli(['audit', '--user', bad], 2)).stderr).toMatch(/^slipway: invalid user name/);
    }
    expect((await cli(['audit', '--app', `x' OR 1=1 --`], 1)).stderr).toMatch(/^slipway: invalid app name/);
    const users = JSON.parse((await cli(['users:list', '--json'])).stdout) as { name: string }[];
    expect(users.map((u) => u.name).sort()).toEqual(['admin', 'dev1', 'dev2', 'sqli', 'vic']);
  }, 120_000);

  it('records who did what, where from, in the audit log, never a password', async () => {
    const log = JSON.parse((await cli(['audit', '-n', '500', '--json'])).stdout) as { actor: string; action: string; app: string | null; detail: string; source: string }[];
    const actions = log.map((e) => e.action);
    for (const a of ['migrate', 'users:add', 'ssh-keys:add', 'tokens:create', 'access:add', 'owners:add', 'users:lock', 'users:unlock', 'apps:create', 'apps:destroy']) expect(actions, a).toContain(a);
    expect(log.find((e) => e.action === 'apps:create' && e.actor === 'dev1')?.source).toMatch(/^ssh 127\.0\.0\.1 key=k-dev1$/);
    expect(log.find((e) => e.action === 'users:add')?.source).toBe('local socket');
    expect(JSON.stringify(log)).not.toMatch(/long enough password|pa'ss/);
    const mine = JSON.parse((await cli(['audit', '--app', app, '--json'])).stdout) as { app: string }[];
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((e) => e.app === app)).toBe(true);
    expect((await as('dev1', ['audit'])).stderr).toMatch(/^slipway: permission denied/);
  }, 60_000);
});
