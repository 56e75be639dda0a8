import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, repoRoot, run, uniqueApp } from '../support/platform.js';
import { stopWithServices } from '../support/services.js';

/**
 * Runs a command with its stdin kept open: `steps` are written one by one, each after the
 * output so far matches the step's `after`; stdin closes after the last. Output is stdout and
 * stderr together, as a terminal shows them.
 */
function converse(cmd: string, args: string[], steps: { after: RegExp; send: string }[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let next = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answer in time; output so far:\n${output}`));
    }, o.timeoutMs ?? 60_000);
    const advance = () => {
      while (next < steps.length && steps[next]!.after.test(output)) {
        child.stdin.write(steps[next]!.send);
        next++;
        if (next === steps.length) child.stdin.end();
      }
    };
    const take = (d: Buffer) => {
      output += d.toString();
      advance();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.stdin.on('error', () => undefined);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    advance();
  });
}

// README "Services" (connect): psql and redis-cli in the service's container, through the real
// CLI and the real ssh client, with and without a terminal; rights as for the service's links.
describe('services: connect', () => {
  let platform: TestPlatform;
  const app = uniqueApp('conn-app');
  const pg = uniqueApp('cpg');
  const rd = uniqueApp('crd');
  const keys: Record<string, string> = {};
  let redisPassword = '';

  const as = (user: string, args: string[], o: { input?: string; tty?: boolean } = {}) =>
    run('ssh', [...(o.tty ? ['-tt'] : []), ...platform.sshArgs(keys[user]), 'git@127.0.0.1', ...args], { ...(o.input === undefined ? {} : { input: o.input }) });

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    for (const [kind, name] of [['postgres', pg], ['redis', rd]] as const) {
      const created = await platform.cli([`${kind}:create`, name]);
      expect(created.code, created.stderr).toBe(0);
      const linked = await platform.cli([`${kind}:link`, name, app]);
      expect(linked.code, linked.stderr).toBe(0);
    }
    redisPassword = JSON.parse((await platform.cli(['redis:info', rd, '--json', '--reveal'])).stdout).url.match(/:([0-9a-f]{48})@/)[1];
    // dev1 co-owns the linked app; dev2 has no rights; vic may see the app but not change it.
    for (const [user, role] of [['dev1', 'developer'], ['dev2', 'developer'], ['vic', 'viewer']] as const) {
      expect((await platform.cli(['users:add', user, '--role', role, '--password-stdin'], 'a long enough password\n')).code).toBe(0);
      keys[user] = path.join(platform.home, `key-${user}`);
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keys[user]!]);
      expect((await platform.cli(['ssh-keys:add', `k-${user}`, `${keys[user]}.pub`, '--user', user])).code).toBe(0);
    }
    expect((await platform.cli(['owners:add', app, 'dev1'])).code).toBe(0);
    expect((await platform.cli(['access:add', app, 'vic'])).code).toBe(0);
  }, 600_000);

  afterAll(async () => {
    await stopWithServices(platform, [['postgres', pg], ['redis', rd]], [app]);
  }, 300_000);

  it('runs piped SQL for the local admin and, over ssh, for an owner of a linked app', async () => {
    const local = await platform.cli(['postgres:connect', pg], 'CREATE TABLE t (n int); INSERT INTO t VALUES (40), (2);\n');
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toContain('INSERT 0 2');

    const remote = await as('dev1', ['postgres:connect', pg], { input: 'SELECT sum(n) AS total FROM t;\n' });
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toMatch(/total\s*\n-+\s*\n\s*42\s*\n\(1 row\)/);

    // psql's errors come back on stderr, and its exit code with them.
    const failing = await as('dev1', ['postgres:connect', pg], { input: '\\set ON_ERROR_STOP 1\nSELECT nope FROM t;\n' });
    expect(failing.code).toBe(3);
    expect(failing.stderr).toMatch(/column "nope" does not exist/);
  }, 120_000);

  it('gives ssh -tt a pty: psql is interactive (prompt, echo) and quits on \\q', async () => {
    const session = await converse('ssh', ['-tt', ...platform.sshArgs(keys.dev1), 'git@127.0.0.1', 'postgres:connect', pg], [
      { after: new RegExp(`${pg}=# `), send: 'select 1 + 1 as two;\n' },
      { after: /\(1 row\)/, send: '\\q\n' },
    ]);
    expect(session.code, session.output).toBe(0);
    // The prompt shows only when psql's input is a terminal; the pty turns \n into \r\n.
    expect(session.output).toMatch(/ two \r\n-----\r\n +2\r\n\(1 row\)/);
    // Other commands are refused the pty (which OpenSSH takes as the end with -t), as before.
    const plain = await as('dev1', ['whoami'], { tty: true });
    expect(plain.stderr).toMatch(/PTY allocation request failed/);
    expect(plain.stdout).toBe('');
    expect((await as('dev1', ['whoami'])).stdout).toBe('dev1 (developer)\n');
  }, 120_000);

  it('gives the local CLI at a terminal a pty too (raw mode, the terminal size)', async () => {
    // `script` gives the CLI a real terminal of its own.
    const bin = path.join(repoRoot, 'slipway');
    const session = await converse('script', ['-qfec', `stty rows 33 cols 101; ${bin} postgres:connect ${pg}`, '/dev/null'], [
      { after: new RegExp(`${pg}=# `), send: '\\! stty size\n' },
      { after: new RegExp(`${pg}=# [^]*${pg}=# `), send: "select current_setting('server_version_num')::int > 0 as ok;\n" },
      { after: /\(1 row\)/, send: '\\q\n' },
    ], { env: platform.env });
    expect(session.code, session.output).toBe(0);
    expect(session.output).toMatch(/ ok \r*\n----\r*\n t\r*\n\(1 row\)/);
    // The pty in the container has the CLI's terminal size.
    expect(session.output).toMatch(/33 101\r*\n/);
  }, 120_000);

  it('refuses those without rights: no such service for others, permission denied for an owner without the role', async () => {
    // dev2 may see the (public) app but not change it; vic is on its access list.
    for (const [user, kind, name] of [['dev2', 'postgres', pg], ['vic', 'redis', rd]] as const) {
      const refused = await as(user, [`${kind}:connect`, name], { input: 'select 1;\n' });
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toBe(`slipway: no ${kind} service named "${name}": see \`slipway ${kind}:list\`\n`);
      expect(refused.stdout).toBe('');
    }
    expect((await platform.cli(['users:role', 'dev1', 'viewer'])).code).toBe(0);
    try {
      const demoted = await as('dev1', ['postgres:connect', pg], { input: 'select 1;\n' });
      expect(demoted.code).toBe(1);
      expect(demoted.stderr).toMatch(/^slipway: permission denied: dev1 \(viewer\) may not connect to postgres/);
    } finally {
      expect((await platform.cli(['users:role', 'dev1', 'developer'])).code).toBe(0);
    }
  }, 60_000);

  it('runs redis-cli: PING over ssh and the CLI, the password nowhere', async () => {
    const remote = await as('dev1', ['redis:connect', rd], { input: 'PING\nSET k v\nGET k\n' });
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stdout).toBe('PONG\nOK\nv\n');
    const local = await platform.cli(['redis:connect', rd], 'GET k\n');
    expect(local.stdout).toBe('v\n');
    expect(remote.stdout + remote.stderr + local.stdout + local.stderr + platform.serverLog).not.toContain(redisPassword);
    // No argv in the container carries it either.
    const ps = await run('docker', ['exec', `slipway.redis.${rd}`, 'sh', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
    expect(ps.stdout).not.toContain(redisPassword);
    const audit = await platform.cli(['audit', '--json']);
    expect(audit.stdout).toContain('redis:connect');
  }, 60_000);
});
