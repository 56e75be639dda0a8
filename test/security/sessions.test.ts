import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, uniqueApp } from '../support/platform.js';

// SSH command edge cases and session lifetime, with the real OpenSSH client against a real
// daemon (issue 9, Low): unterminated quoting, commands over the size limits (including over
// ssh2's packet limit), and a `logs --follow` that must end when its key is removed.
describe('SSH commands and sessions', () => {
  let platform: TestPlatform;
  const app = uniqueApp('sess');

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  const configOf = async () => (await platform.cli(['config', app, '--json'])).stdout;

  it.each([
    [[`K='a b`, '--no-restart'], `slipway: unterminated ' quote in the command: close it, or escape it with a backslash\n`],
    [[`K="a b`, '--no-restart'], `slipway: unterminated " quote in the command: close it, or escape it with a backslash\n`],
    [['--no-restart', 'K=a\\'], 'slipway: the command ends in a backslash: escape it as \\\\ or quote it\n'],
  ])('refuses unterminated quoting %j in one line, exit 2, nothing set', async (args, line) => {
    const before = await configOf();
    const r = await platform.ssh(['config:set', app, ...args]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: line });
    expect(await configOf()).toBe(before);
  });

  it('refuses a command over the length limit in one line, exit 2', async () => {
    const r = await platform.ssh(['config:set', app, `K=${'x'.repeat(20_000)}`]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `slipway: command too long (${20_000 + 2 + 11 + app.length + 1} bytes, at most 8192)\n` });
  });

  it('refuses a command over the SSH packet limit in one line, exit 2, not a dropped connection', async () => {
    const r = await platform.ssh(['config:set', app, `K=${'x'.repeat(40_000)}`]);
    expect(r.stderr.split('\n')[0]).toBe('slipway: command too long (over 35000 bytes, at most 8192)');
    expect(r.code).toBe(2);
    // The daemon still serves.
    expect((await platform.ssh(['apps:list'])).code).toBe(0);
  });

  it('ends a `logs --follow` session within seconds once its key is removed', async () => {
    const follow = spawn('ssh', [...platform.sshArgs(), 'git@127.0.0.1', 'logs', app, '--follow'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    follow.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    follow.stdin.on('error', () => undefined);
    const ended = new Promise<number | null>((resolve) => follow.on('close', (code) => resolve(code)));
    try {
      // Still following after a while: nothing ends it but the key removal below.
      const early = await Promise.race([ended, new Promise((r) => setTimeout(() => r('running'), 2000))]);
      expect(early).toBe('running');
      const removed = await platform.cli(['ssh-keys:remove', 'tester']);
      expect(removed.code).toBe(0);
      const at = Date.now();
      const code = await Promise.race([ended, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
      expect(code).toBe(1);
      expect(Date.now() - at).toBeLessThan(5000);
      expect(stderr).toBe('slipway: the SSH key "tester" was removed: this session ends\n');
      // And the key no longer signs in.
      const again = await platform.ssh(['apps:list']);
      expect(again.code).toBe(255);
    } finally {
      follow.kill('SIGKILL');
    }
  }, 60_000);
});
