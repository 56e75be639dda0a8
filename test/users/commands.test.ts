import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { commands, runCommand, type CommandIO } from '../../receiver/commands/index.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

// The permission gate every command passes, driven through the real command table.
describe('command permissions', () => {
  let mini: MiniPlatform;
  const origin = { actor: 'admin', source: 'test' };

  const as = async (user: string | undefined, argv: string[], stdin = '') => {
    let out = '';
    let err = '';
    const io: CommandIO = { out: (d) => void (out += d), err: (d) => void (err += d), readStdin: async () => stdin, signal: new AbortController().signal, actor: user ?? 'k', local: false, ...(user === undefined ? {} : { user }) };
    const code = await runCommand(commands, argv, io, mini.platform);
    return { code, out, err };
  };

  beforeEach(async () => {
    mini = await miniPlatform();
    mini.platform.users.add(origin, { name: 'dev', role: 'developer', email: null, passwordHash: null });
    mini.platform.users.add(origin, { name: 'vic', role: 'viewer', email: null, passwordHash: null });
  });
  afterEach(() => mini.close());

  it('gives a caller without a user no rights at all, and admins-only to commands that say nothing', async () => {
    expect((await as(undefined, ['whoami'])).err).toMatch(/^slipway: permission denied/);
    expect((await as('ghost', ['apps:list'])).err).toMatch(/^slipway: permission denied/);
    for (const argv of [['mirror:status'], ['users:list'], ['groups:create', 'ops'], ['stack:build'], ['audit']]) {
      const r = await as('dev', argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.err).toMatch(/^slipway: permission denied/);
    }
  });

  it('makes the creator the owner of a restricted app, hidden from others', async () => {
    expect((await as('dev', ['apps:create', 'web'])).code).toBe(0);
    expect(mini.platform.users.access('web')).toMatchObject({ level: 'restricted', owners: ['dev'] });
    expect((await as('vic', ['apps:list'])).out).not.toContain('web');
    expect((await as('vic', ['apps:info', 'web'])).err).toBe((await as('vic', ['apps:info', 'nope'])).err.replaceAll('nope', 'web'));
    expect((await as('dev', ['access:add', 'web', 'vic'])).code).toBe(0);
    expect((await as('vic', ['apps:info', 'web'])).code).toBe(0);
    expect((await as('vic', ['git:set', 'web', 'deploy-branch', 'x'])).err).toMatch(/^slipway: permission denied/);
  });

  it('forbids public apps when allowPublicApps is false', async () => {
    await as('dev', ['apps:create', 'web']);
    (mini.platform.config as { allowPublicApps: boolean }).allowPublicApps = false;
    const r = await as('dev', ['access:set', 'web', 'public']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^slipway: permission denied: public apps are turned off/);
    expect(mini.platform.users.access('web').level).toBe('restricted');
    expect((await as('dev', ['access:set', 'web', 'authenticated'])).code).toBe(0);
    (mini.platform.config as { allowPublicApps: boolean }).allowPublicApps = true;
    expect((await as('dev', ['access:set', 'web', 'public'])).code).toBe(0);
  });

  it('lets users manage only their own keys and tokens', async () => {
    const created = await as('dev', ['tokens:create', 'mine']);
    expect(created.code, created.err).toBe(0);
    expect((await as('vic', ['tokens:revoke', 'mine'])).err).toMatch(/no token named "mine"/);
    expect((await as('vic', ['tokens:list', '--json'])).out).toBe('[]\n');
    expect((await as('vic', ['tokens:create', 'x', '--user', 'dev'])).err).toMatch(/^slipway: permission denied/);
    expect((await as('dev', ['tokens:revoke', 'mine'])).code).toBe(0);
  });
});
