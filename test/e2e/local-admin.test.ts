import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackImageRef } from '../../runtime/stack.js';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// What only the local admin (root, over the admin socket) may do, tried over the real OpenSSH
// client: with an ordinary key and with a key named `cli`, the actor name the local CLI uses.
// Also: long SSH commands end when the client goes, and the per-app deploy branch, over real git.
describe('local-admin rights, SSH cancellation and the deploy branch', () => {
  let platform: TestPlatform;
  let cliKey: string;
  const app = uniqueApp('branch');
  const oneLine = (text: string) => expect(text).toMatch(/^slipway: [^\n]+\n$/);
  const stackId = async () => (await run('docker', ['image', 'inspect', '-f', '{{.Id}}', stackImageRef()])).stdout.trim();

  beforeAll(async () => {
    // Its own empty mirror: nothing here may write to the shared one.
    platform = await TestPlatform.start({ sharedMirror: false });
    cliKey = path.join(platform.home, 'key-named-cli');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', cliKey]);
    const added = await platform.cli(['ssh-keys:add', 'cli', `${cliKey}.pub`]);
    expect(added.code, added.stderr).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('refuses stack:build over SSH in one line, for any key, and leaves the stack image alone', async () => {
    const before = await stackId();
    for (const key of [platform.keyFile, cliKey]) {
      const r = await platform.ssh(['stack:build'], { key });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe('slipway: permission denied: stack:build runs only for the local admin; run `slipway stack:build` on the server as root\n');
    }
    expect(await stackId()).toBe(before);
  });

  it('gives a key named `cli` no local rights: server paths and upstream changes stay refused', async () => {
    const upstream = (await platform.cli(['mirror:upstream', 'npm'])).stdout;
    const attempts: [string[], RegExp][] = [
      [['mirror:upstream', 'npm', 'http://127.0.0.1:9/'], /run it on the server, as the local admin/],
      [['mirror:import', '/etc/hostname'], /reads and writes files on the server/],
      [['mirror:export', '/tmp/slipway-stolen-mirror.tar'], /reads and writes files on the server/],
      [['stack:export', '/tmp/slipway-stolen-stack.tar'], /reads and writes files on the server/],
      [['buildpacks:install', '/etc'], /works only for the local admin/],
      [['ssh-keys:add', 'sneaky', '/etc/ssh/ssh_host_ed25519_key.pub'], /over SSH, pass the key on standard input/],
    ];
    for (const [argv, why] of attempts) {
      const r = await platform.ssh(argv, { key: cliKey });
      expect(r.code, argv.join(' ')).not.toBe(0);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(why);
    }
    expect((await platform.cli(['mirror:upstream', 'npm'])).stdout).toBe(upstream);
    expect((await platform.cli(['ssh-keys:list'])).stdout).not.toContain('sneaky');
    for (const f of ['/tmp/slipway-stolen-mirror.tar', '/tmp/slipway-stolen-stack.tar']) await expect(fs.access(f)).rejects.toThrow();
  });

  it('cancels mirror:add when the SSH client goes away: the upstream request is dropped at once', async () => {
    // An upstream that accepts requests and never answers, on loopback.
    let arrived!: () => void;
    let closed!: () => void;
    const requested = new Promise<void>((r) => (arrived = r));
    const dropped = new Promise<void>((r) => (closed = r));
    const server = http.createServer((req) => {
      arrived();
      req.socket.on('close', () => closed());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const set = await platform.cli(['mirror:upstream', 'npm', `http://127.0.0.1:${port}/`]);
      expect(set.code, set.stderr).toBe(0);
      const client = spawn('ssh', [...platform.sshArgs(), 'git@127.0.0.1', 'mirror:add', 'npm', 'left-pad@1.3.0'], { stdio: 'ignore' });
      await requested;
      client.kill('SIGKILL');
      // Without cancellation the daemon keeps waiting for the upstream (two minutes per request).
      const outcome = await Promise.race([dropped.then(() => 'dropped'), new Promise((r) => setTimeout(() => r('still waiting'), 10_000))]);
      expect(outcome).toBe('dropped');
      // The daemon still answers, and nothing landed in the mirror.
      expect((await platform.cli(['status'])).stdout).toContain('daemon');
      expect((await platform.cli(['mirror:status', '--json'])).stdout).toMatch(/"npm": \{\s*"count": 0/);
    } finally {
      await platform.cli(['mirror:upstream', 'npm', 'off']);
      server.closeAllConnections();
      server.close();
    }
  });

  it('deploys from one branch: a push to master is kept with a note, git:set moves the deploy branch', async () => {
    await platform.createApp(app);
    const wc = await platform.workingCopy('node-hello');
    const info = async () => JSON.parse((await platform.cli(['apps:info', app, '--json'])).stdout) as { deployBranch: string; release: string | null };
    expect((await info()).deployBranch).toBe('main');

    const master = await platform.push(wc, platform.sshRemote(app), 'main:master');
    expect(master.code, master.stderr).toBe(0);
    expect(master.stderr).toContain('not deployed: this app deploys from main');
    expect(master.stderr).not.toContain('Building');
    const heads = (await run('git', ['ls-remote', '--heads', platform.sshRemote(app)], { env: platform.gitEnv() })).stdout;
    expect(heads).toContain('refs/heads/master');
    expect((await info()).release).toBeNull();

    for (const bad of ['-x', '--upload-pack=touch /tmp/p', 'a..b']) {
      const r = await platform.ssh(['git:set', app, 'deploy-branch', bad]);
      expect(r.code).toBe(2);
      oneLine(r.stderr);
    }
    const unknown = await platform.ssh(['git:set', app, 'keep-git-dir', 'true']);
    expect(unknown.code).toBe(2);
    expect((await info()).deployBranch).toBe('main');

    const set = await platform.ssh(['git:set', app, 'deploy-branch', 'production']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(`${app} now deploys from production (was main)`);
    expect((await info()).deployBranch).toBe('production');
    const main = await platform.push(wc, platform.sshRemote(app), 'main');
    expect(main.code, main.stderr).toBe(0);
    expect(main.stderr).toContain('not deployed: this app deploys from production');
    expect((await info()).release).toBeNull();
  });
});
