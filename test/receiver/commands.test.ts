import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../receiver/commands/index.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

// The command surface as a whole: every command answers --help, refuses unknown flags and
// wrong arity as usage errors (exit 2), in one `slipway: ` line.
describe('every command', () => {
  let mini: MiniPlatform;
  beforeAll(async () => {
    mini = await miniPlatform();
  });
  afterAll(() => mini?.close());

  it('has a unique name and a summary', () => {
    const names = commands.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const c of commands) expect(c.summary, c.name).not.toBe('');
  });

  it.each(commands.map((c) => c.name))('%s: --help, -h and `help %s` print its usage and exit 0', async (name) => {
    for (const argv of [[name, '--help'], [name, '-h'], ['help', name], [name, 'x', '--help']]) {
      const r = await mini.run(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out).toMatch(new RegExp(`^usage: slipway ${name}`));
      expect(r.err).toBe('');
    }
  });

  it.each(commands.map((c) => c.name))('%s: an unknown flag is a usage error (exit 2)', async (name) => {
    for (const flag of ['--no-such-flag', '-Z', '--json=yes-please']) {
      const r = await mini.run([name, flag]);
      // --json=... is only unknown where --json is not a flag; it is a bad value where it is.
      expect(r.code, `${name} ${flag}`).toBe(2);
      expect(r.err).toMatch(/^slipway: [^\n]*\n$/);
    }
  });

  it.each(commands.filter((c) => c.args[1] < 5).map((c) => c.name))('%s: too many arguments is a usage error (exit 2)', async (name) => {
    const command = commands.find((c) => c.name === name)!;
    const r = await mini.run([name, ...Array.from({ length: command.args[1] + 1 }, (_, i) => `arg${i}`)]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^slipway: usage: slipway ${name}`));
  });

  it('answers `help` with the list and an unknown command with exit 2', async () => {
    const help = await mini.run(['help']);
    expect(help.code).toBe(0);
    for (const c of commands) expect(help.out).toContain(c.name);
    const unknown = await mini.run(['apps:frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toBe('slipway: unknown command "apps:frobnicate": run `slipway help` for the list\n');
  });

  it('left nothing behind', async () => {
    expect(mini.unexpected).toEqual([]);
    expect(await mini.platform.apps.list()).toEqual([]);
  });
});
