import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// Garbage at every entry point of a real running daemon (issue 9, High 2): SSH exec stdin, SSH
// pushes over maxPushBytes, HTTP git bodies, the admin socket and the hook wire. Whatever the
// client does, it gets an error or a closed connection and the daemon keeps serving.
const MAX_PUSH = 200_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program feeding it raw bytes (not text) on stdin; a program that stops reading is fine. */
function runBytes(cmd: string, args: string[], input: Buffer, o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env, cwd: o.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/**
 * Sends raw bytes on a fresh connection and collects what comes back until the peer closes.
 * After sending, the client keeps the connection open (`keep`, the default: how the CLI and the
 * hook talk), half-closes it (`end`: on the admin socket that is hanging up) or vanishes.
 */
function raw(connect: () => net.Socket, chunks: Array<Buffer | string>, o: { end?: 'keep' | 'end' | 'destroy'; waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect();
    let reply = '';
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(finish, o.waitMs ?? 5000);
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', finish);
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
      if (o.end === 'destroy') setTimeout(() => socket.destroy(), 100);
      else if (o.end === 'end') socket.end();
    });
  });
}

describe('garbage at every entry point leaves the daemon up', () => {
  let platform: TestPlatform;
  let token: string;
  const app = uniqueApp('junk');
  let socketPath: string;

  const authorization = () => `Basic ${Buffer.from(`x:${token}`).toString('base64')}`;
  const admin = () => net.connect(socketPath);
  const router = () => net.connect(platform.httpPort, '127.0.0.1');

  /** SSH commands, HTTP git and the admin socket all still answer. */
  async function expectAlive(): Promise<void> {
    const ssh = await platform.ssh(['apps:list']);
    expect(ssh.stderr).toBe('');
    expect(ssh.code).toBe(0);
    expect(ssh.stdout).toContain(app);
    const refs = await httpGit('GET', `/_git/${app}.git/info/refs?service=git-upload-pack`, {});
    expect(refs.status).toBe(200);
    const cli = await platform.cli(['apps:list']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(app);
  }

  function httpGit(method: string, urlPath: string, headers: http.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: platform.httpPort, method, path: urlPath, headers: { authorization: authorization(), ...headers }, agent: false },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString('latin1')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error('timed out')));
      req.end(body);
    });
  }

  const sshGit = (verb: string, input: Buffer) => runBytes('ssh', [...platform.sshArgs(), 'git@127.0.0.1', `${verb} '${app}'`], input);

  beforeAll(async () => {
    platform = await TestPlatform.start({ config: { maxPushBytes: MAX_PUSH } });
    socketPath = path.join(platform.home, 'slipway.sock');
    await platform.createApp(app);
    const created = await platform.cli(['tokens:create', 'junk']);
    if (created.code !== 0) throw new Error(`tokens:create failed: ${created.stderr}`);
    token = created.stdout.trim();
    await expectAlive();
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it.each(['git-upload-pack', 'git-receive-pack'])('SSH %s: 300 KB of random bytes on stdin', async (verb) => {
    for (let i = 0; i < 3; i++) {
      const r = await sshGit(verb, crypto.randomBytes(300_000));
      expect(r.code).not.toBe(0);
    }
    await expectAlive();
  });

  it.each(['git-upload-pack', 'git-receive-pack'])('SSH %s: 3 MB of pkt-line-shaped junk, then the client vanishes', async (verb) => {
    const junk = Buffer.concat(Array.from({ length: 800 }, () => Buffer.concat([Buffer.from('0ff0'), crypto.randomBytes(4076)])));
    const r = await sshGit(verb, junk);
    expect(r.code).not.toBe(0);
    await expectAlive();
  });

  it('SSH push over maxPushBytes is refused and changes nothing', async () => {
    const wc = await fs.mkdtemp(path.join(platform.home, 'big-'));
    await fs.writeFile(path.join(wc, 'noise.bin'), crypto.randomBytes(MAX_PUSH * 3));
    await platform.git(wc, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(wc, 'too big');
    for (let i = 0; i < 3; i++) {
      const push = await platform.push(wc, platform.sshRemote(app));
      expect(push.code).not.toBe(0);
    }
    const heads = await run('git', ['ls-remote', platform.sshRemote(app)], { env: platform.gitEnv() });
    expect(heads).toMatchObject({ code: 0, stdout: '' });
    await expectAlive();
  }, 120_000);

  it('HTTP git: garbage pkt-lines, random bodies and oversize bodies', async () => {
    for (const service of ['git-upload-pack', 'git-receive-pack']) {
      const headers = { 'content-type': `application/x-${service}-request` };
      const bodies = [
        Buffer.from('zzzz garbage that is not a pkt-line\n'),
        Buffer.from('0032want 0000000000000000000000000000000000000000\n00000009done\n'),
        Buffer.concat([Buffer.from('ffff'), crypto.randomBytes(70_000)]),
        crypto.randomBytes(150_000),
        crypto.randomBytes(MAX_PUSH * 2),
      ];
      for (const body of bodies) {
        const r = await httpGit('POST', `/_git/${app}.git/${service}`, headers, body);
        expect(r.status).not.toBe(502);
        expect(r.status).not.toBe(503);
      }
      const gz = await httpGit('POST', `/_git/${app}.git/${service}`, { ...headers, 'content-encoding': 'gzip' }, crypto.randomBytes(20_000));
      expect(gz.status).toBe(400);
    }
    await expectAlive();
  }, 120_000);

  it('HTTP git: truncated bodies and clients that vanish mid-body', async () => {
    for (const service of ['git-upload-pack', 'git-receive-pack']) {
      const head = [
        `POST /_git/${app}.git/${service} HTTP/1.1`,
        `Host: 127.0.0.1:${platform.httpPort}`,
        `Authorization: ${authorization()}`,
        `Content-Type: application/x-${service}-request`,
      ];
      // Declares more than it sends, then half-closes.
      await raw(router, [`${head.join('\r\n')}\r\nContent-Length: 100000\r\n\r\n`, crypto.randomBytes(30_000)], { end: 'end', waitMs: 3000 });
      // Chunked, then the client vanishes mid-chunk.
      await raw(router, [`${head.join('\r\n')}\r\nTransfer-Encoding: chunked\r\n\r\n8000\r\n`, crypto.randomBytes(20_000)], { end: 'destroy' });
      // Declares more than maxPushBytes, sends a bit and vanishes.
      await raw(router, [`${head.join('\r\n')}\r\nContent-Length: ${MAX_PUSH * 10}\r\n\r\n`, crypto.randomBytes(50_000)], { end: 'destroy' });
    }
    await sleep(500);
    await expectAlive();
  }, 120_000);

  it('admin socket: garbage, half-lines, oversize lines and early hang-ups', async () => {
    const refused = await raw(admin, ['this is not json\n']);
    expect(refused).toMatch(/^\{"t":"err","d":"slipway: [^\n]*\\n"\}\n\{"t":"exit","code":1\}\n$/);
    expect(await raw(admin, ['null\n'])).toContain('malformed request');
    expect(await raw(admin, ['{"op":"command","argv":[1,2]}\n'])).toContain('malformed request');
    expect(await raw(admin, [crypto.randomBytes(200_000), '\n'])).toContain('"t":"exit","code":1');
    // A half-line: the daemon waits for the rest; the client hangs up (half-close or vanishing).
    expect(await raw(admin, ['{"op":"command","argv":["apps:li'], { waitMs: 1000 })).toBe('');
    expect(await raw(admin, ['{"op":"command","argv":["apps:li'], { end: 'end' })).toBe('');
    await raw(admin, ['{"op":"command","argv":["apps:li'], { end: 'destroy' });
    // Over the 4 MB request limit without a line end: the daemon hangs up.
    await raw(admin, [Buffer.alloc(5 * 1024 * 1024, 'a')]);
    await raw(admin, ['{"op":"command","argv":["apps:list"]}\n'], { end: 'destroy' });
    await raw(admin, [`{"op":"command","argv":["logs","${app}","--follow"]}\n`], { end: 'destroy' });
    await raw(admin, [`{"op":"command","argv":["logs","${app}","--follow"]}\n`], { end: 'end' });
    await sleep(300);
    await expectAlive();
  }, 60_000);

  it('hook wire: malformed push frames and a hook that hangs up', async () => {
    const zero = '0'.repeat(40);
    const sha = 'a'.repeat(40);
    const push = (o: Record<string, unknown>) => `${JSON.stringify({ op: 'push', app, pusher: 'x', gitEnv: {}, refs: [], ...o })}\n`;
    expect(await raw(admin, [push({ refs: 'refs/heads/main' })])).toContain('malformed request');
    expect(await raw(admin, [push({ gitEnv: { A: 1 } })])).toContain('malformed request');
    expect(await raw(admin, [push({ refs: [{ oldRev: 'x', newRev: 'y', ref: '--help' }] })])).toContain('malformed ref update');
    expect(await raw(admin, [push({ app: '../../etc', refs: [{ oldRev: zero, newRev: sha, ref: 'refs/heads/main' }] })])).toContain('"code":1');
    expect(await raw(admin, [push({ app: 'no-such-app', refs: [{ oldRev: zero, newRev: sha, ref: 'refs/heads/main' }] })])).toContain('"code":1');
    // A push for an object that does not exist, from a hook that hangs up at once.
    await raw(admin, [push({ refs: [{ oldRev: zero, newRev: sha, ref: 'refs/heads/main' }] })], { end: 'destroy' });
    await raw(admin, [push({ refs: [{ oldRev: zero, newRev: sha, ref: 'refs/heads/main' }] }).slice(0, 40)], { end: 'destroy' });
    await sleep(1000);
    await expectAlive();
  }, 60_000);

  it('afterwards, normal pushes and clones over SSH and HTTP go through the same relay intact', async () => {
    const wc = await fs.mkdtemp(path.join(platform.home, 'ok-'));
    await fs.writeFile(path.join(wc, 'README'), crypto.randomBytes(50_000).toString('base64'));
    await platform.git(wc, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(wc, 'small');
    // Branches other than main are kept, not deployed: no build needed.
    const ssh = await platform.push(wc, platform.sshRemote(app), 'main:keep-ssh');
    expect(ssh.code).toBe(0);
    const httpRemote = `http://x:${token}@127.0.0.1:${platform.httpPort}/_git/${app}.git`;
    const overHttp = await platform.push(wc, httpRemote, 'main:keep-http');
    expect(overHttp.code).toBe(0);
    const head = (await platform.git(wc, ['rev-parse', 'HEAD'])).stdout.trim();
    for (const remote of [platform.sshRemote(app), httpRemote]) {
      const clone = path.join(await fs.mkdtemp(path.join(platform.home, 'clone-')), 'c');
      const r = await run('git', ['clone', '-q', '--branch', 'keep-ssh', remote, clone], { env: platform.gitEnv() });
      expect(r.code).toBe(0);
      expect(await fs.readFile(path.join(clone, 'README'), 'utf8')).toBe(await fs.readFile(path.join(wc, 'README'), 'utf8'));
      expect((await run('git', ['rev-parse', 'origin/keep-http'], { cwd: clone })).stdout.trim()).toBe(head);
    }
    await expectAlive();
    // Every error above was handled where it arose: none reached the last-resort handler.
    const log = await fs.readFile(path.join(platform.home, 'logs', 'slipway.log'), 'utf8');
    expect(log).not.toContain('without an error handler');
    expect(log).not.toContain('uncaught error');
  }, 120_000);
});
