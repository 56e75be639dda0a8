import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.js';
import { initBareRepo } from '../../receiver/git.js';
import { createGitHttpHandler, routeGitRequest } from '../../receiver/git-http.js';
import { FailureLimiter } from '../../receiver/http-auth.js';
import { pktLine } from '../../receiver/pkt-line.js';
import { TokenStore } from '../../receiver/tokens.js';
import { openDb } from '../../core/db.js';
import { run } from '../support/platform.js';

// The smart HTTP handler in front of the real git, without Docker or the router: a temp bare
// repository, a temp token store, and a pre-receive hook that only reports who pushed.
const APP = 'web-app';

interface Server {
  url: string;
  close(): Promise<void>;
}

async function serve(handler: http.RequestListener): Promise<Server> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(base: string, o: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | ((req: http.ClientRequest) => void) }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // Host and port from the base, the path as written: a URL object would normalise `..` away.
    const { hostname, port } = new URL(base);
    const req = http.request({ host: hostname, port, path: o.path, method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof o.body === 'function') o.body(req);
    else req.end(o.body);
  });
}

const basic = (secret: string, user = 'x') => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

describe('git over smart HTTP', () => {
  let dir: string;
  let repo: string;
  let wc: string;
  let token: string;
  let tokens: TokenStore;
  let server: Server;
  let small: Server;
  let strict: Server;
  const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@example.invalid' };
  const git = async (cwd: string, args: string[]) => run('git', args, { cwd, env: gitEnv });
  const remote = (secret: string, base = server.url) => base.replace('http://', `http://anyone:${secret}@`) + `/_git/${APP}.git`;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-git-http-'));
    repo = path.join(dir, `${APP}.git`);
    await initBareRepo(repo);
    const hooks = path.join(dir, 'hooks');
    await fs.mkdir(hooks);
    await fs.writeFile(path.join(hooks, 'pre-receive'), '#!/bin/sh\necho "-----> hook saw $SLIPWAY_PUSHER"\n', { mode: 0o755 });
    tokens = new TokenStore(openDb(path.join(dir, 'slipway.db')));
    token = (await tokens.create('ci')).token;
    const deps = (maxPushBytes: number, limiter = new FailureLimiter()) => ({
      findApp: async (name: string) => (name === APP ? {} : null),
      verifyToken: (s: string) => tokens.verify(s),
      limiter,
      repoDir: (app: string) => path.join(dir, `${app}.git`),
      hooksDir: hooks,
      maxPushBytes,
      hookEnv: (app: string, pusher: string) => ({ SLIPWAY_APP: app, SLIPWAY_PUSHER: pusher }),
      logger: createLogger('silent'),
    });
    server = await serve(createGitHttpHandler(deps(1024 ** 3)));
    small = await serve(createGitHttpHandler(deps(64 * 1024)));
    strict = await serve(createGitHttpHandler(deps(1024 ** 3, new FailureLimiter({ maxFailures: 3, windowMs: 60_000, blockMs: 60_000 }))));
    wc = path.join(dir, 'wc');
    await fs.mkdir(wc);
    await git(wc, ['init', '-q', '--initial-branch=main']);
    await fs.writeFile(path.join(wc, 'README'), 'hello\n');
    await git(wc, ['add', '-A']);
    await git(wc, ['commit', '-q', '-m', 'first']);
  });

  afterAll(async () => {
    await Promise.all([server?.close(), small?.close(), strict?.close()]);
    await fs.rm(dir, { recursive: true, force: true });
  });

  const head = async () => (await git(repo, ['for-each-ref', '--format=%(refname) %(objectname)'])).stdout;

  it('routes only the smart protocol, refusing dumb HTTP and wrong methods', () => {
    expect(routeGitRequest('GET', '/_git/a.git/info/refs?service=git-upload-pack')).toEqual({ kind: 'advertise', repo: 'a.git', service: 'git-upload-pack' });
    expect(routeGitRequest('POST', '/_git/a/git-receive-pack')).toEqual({ kind: 'rpc', repo: 'a', service: 'git-receive-pack' });
    expect(routeGitRequest('GET', '/_git/a.git/info/refs')).toMatchObject({ kind: 'refuse', status: 403 });
    expect(routeGitRequest('GET', '/_git/a.git/info/refs?service=git-archive')).toMatchObject({ kind: 'refuse', status: 403 });
    expect(routeGitRequest('GET', '/_git/a.git/HEAD')).toMatchObject({ kind: 'refuse', status: 404 });
    expect(routeGitRequest('GET', '/_git/a.git/objects/info/packs')).toMatchObject({ kind: 'refuse', status: 404 });
    expect(routeGitRequest('POST', '/_git/a.git/info/refs?service=git-upload-pack')).toMatchObject({ kind: 'refuse', status: 405, allow: 'GET' });
    expect(routeGitRequest('GET', '/_git/a.git/git-upload-pack')).toMatchObject({ kind: 'refuse', status: 405, allow: 'POST' });
    expect(routeGitRequest('GET', '/_git/')).toMatchObject({ kind: 'refuse', status: 404 });
    // Never decoded or normalised: these stay part of the name and fail the app-name check later.
    expect(routeGitRequest('GET', '/_git/%2e%2e/info/refs?service=git-upload-pack')).toMatchObject({ kind: 'advertise', repo: '%2e%2e' });
  });

  it('asks for credentials with 401 and a Basic challenge, and refuses a wrong token', async () => {
    const p = `/_git/${APP}.git/info/refs?service=git-upload-pack`;
    const none = await request(server.url, { path: p });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="Slipway"/);
    const wrong = await request(server.url, { path: p, headers: { authorization: basic('slw_wrong') } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.toString()).toContain('wrong token');
    // Without a token nobody learns whether an app exists.
    const ghost = await request(server.url, { path: '/_git/ghost.git/info/refs?service=git-upload-pack' });
    expect(ghost.status).toBe(401);
  });

  it('advertises refs with the service header, pkt-line framed, uncached', async () => {
    const r = await request(server.url, { path: `/_git/${APP}.git/info/refs?service=git-receive-pack`, headers: { authorization: basic(token) } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-git-receive-pack-advertisement');
    expect(r.headers['cache-control']).toContain('no-cache');
    expect(r.body.subarray(0, 35).toString()).toBe('001f# service=git-receive-pack\n0000');
    expect(r.body.toString()).toContain('report-status');
  });

  it('answers protocol v2 without the service header, as git-http-backend does', async () => {
    const r = await request(server.url, { path: `/_git/${APP}.git/info/refs?service=git-upload-pack`, headers: { authorization: basic(token), 'git-protocol': 'version=2' } });
    expect(r.status).toBe(200);
    expect(r.body.subarray(0, 14).toString()).toBe('000eversion 2\n');
  });

  it('takes a push from the real git client, with hook output relayed and the token name as pusher', async () => {
    const push = await git(wc, ['push', remote(token), 'main']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain('remote: -----> hook saw ci');
    const sha = (await git(wc, ['rev-parse', 'HEAD'])).stdout.trim();
    expect(await head()).toContain(`refs/heads/main ${sha}`);
  });

  it('clones over protocol v2 and v0', async () => {
    for (const version of ['2', '0']) {
      const target = path.join(dir, `clone-v${version}`);
      const r = await run('git', ['-c', `protocol.version=${version}`, 'clone', '-q', remote(token), target], { env: gitEnv });
      expect(r.code, r.stderr).toBe(0);
      expect(await fs.readFile(path.join(target, 'README'), 'utf8')).toBe('hello\n');
    }
  });

  it('fails git cleanly with a wrong token and changes nothing', async () => {
    const before = await head();
    await fs.writeFile(path.join(wc, 'README'), 'changed\n');
    await git(wc, ['commit', '-q', '-am', 'second']);
    const push = await git(wc, ['push', remote('slw_not-a-token'), 'main']);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/Authentication failed/);
    expect(await head()).toBe(before);
  });

  it('accepts a gzip-compressed upload-pack request', async () => {
    const sha = (await git(repo, ['rev-parse', 'main'])).stdout.trim();
    const body = zlib.gzipSync(Buffer.concat([pktLine(`want ${sha}\n`), Buffer.from('0000'), pktLine('done\n')]));
    const r = await request(server.url, {
      method: 'POST',
      path: `/_git/${APP}.git/git-upload-pack`,
      headers: { authorization: basic(token), 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip' },
      body,
    });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-git-upload-pack-result');
    expect(r.body.toString('latin1')).toContain('PACK');
  });

  it('refuses a garbage gzip body and a truncated pack without moving any ref', async () => {
    const before = await head();
    const headers = { authorization: basic(token), 'content-type': 'application/x-git-receive-pack-request' };
    const garbage = await request(server.url, { method: 'POST', path: `/_git/${APP}.git/git-receive-pack`, headers: { ...headers, 'content-encoding': 'gzip' }, body: Buffer.from('this is not gzip at all') });
    expect(garbage.status).toBe(400);
    expect(garbage.body.toString()).toMatch(/^unreadable request body .*nothing was changed\n$/);

    // A real push body, cut in half: git must not take what arrived.
    const old = (await git(repo, ['rev-parse', 'main'])).stdout.trim();
    const next = (await git(wc, ['rev-parse', 'HEAD'])).stdout.trim();
    const pack = (await runBuffer('git', ['pack-objects', '--stdout', '--revs'], wc, `${next}\n^${old}\n`));
    const full = Buffer.concat([pktLine(`${old} ${next} refs/heads/main\0report-status\n`), Buffer.from('0000'), pack]);
    const cut = await request(server.url, { method: 'POST', path: `/_git/${APP}.git/git-receive-pack`, headers, body: full.subarray(0, full.length - 20) });
    expect(cut.body.toString()).toContain('ng refs/heads/main unpacker error');
    expect(await head()).toBe(before);

    const garbled = await request(server.url, { method: 'POST', path: `/_git/${APP}.git/git-receive-pack`, headers, body: Buffer.from('zzzz garbage that is no pkt-line') });
    expect(garbled.status).toBe(400);
    expect(garbled.body.toString()).toMatch(/^git refused the request: fatal: protocol error.*\n$/);
    expect(await head()).toBe(before);
  });

  it('refuses a push over maxPushBytes by Content-Length and by counting a chunked body', async () => {
    const headers = { authorization: basic(token), 'content-type': 'application/x-git-receive-pack-request' };
    const declared = await request(small.url, { method: 'POST', path: `/_git/${APP}.git/git-receive-pack`, headers: { ...headers, 'content-length': String(1024 * 1024) }, body: (req) => req.end() });
    expect(declared.status).toBe(413);
    expect(declared.body.toString()).toMatch(/^push too large: 1048576 bytes is over the limit of 65536/);

    const chunked = await request(small.url, {
      method: 'POST',
      path: `/_git/${APP}.git/git-receive-pack`,
      headers: { ...headers, 'transfer-encoding': 'chunked' },
      body: (req) => {
        // Commands first, then far more "pack" than allowed, streamed in 16 KiB pieces.
        req.write(Buffer.concat([pktLine(`${'0'.repeat(40)} ${'1'.repeat(40)} refs/heads/huge\0report-status side-band-64k\n`), Buffer.from('0000')]));
        let left = 64;
        const more = (): void => {
          while (left-- > 0) if (!req.write(Buffer.alloc(16 * 1024, 7))) return void req.once('drain', more);
          req.end();
        };
        more();
      },
    }).catch((err: Error) => ({ status: -1, headers: {}, body: Buffer.from(err.message) }));
    // The server may hang up before the client has written everything; either way, nothing is stored.
    if (chunked.status !== -1) {
      // This client asked for side-band, so the refusal comes as a fatal message on band 3.
      expect(chunked.status).toBe(200);
      expect(chunked.body.toString()).toMatch(/^[0-9a-f]{4}\x03push too large: \d+ bytes is over the limit of 65536/);
    }
    expect(await head()).not.toContain('refs/heads/huge');
  });

  it('fails a real git push over maxPushBytes and stores nothing of it', async () => {
    const before = await head();
    await git(wc, ['checkout', '-q', '-b', 'big']);
    await fs.writeFile(path.join(wc, 'blob.bin'), crypto.randomBytes(200 * 1024));
    await git(wc, ['add', 'blob.bin']);
    await git(wc, ['commit', '-q', '-m', 'big']);
    const push = await git(wc, ['push', remote(token, small.url), 'big']);
    expect(push.code).not.toBe(0);
    // On side-band, so git shows our words rather than a bare "HTTP 413".
    expect(push.stderr).toMatch(/remote: push too large: \d+ bytes is over the limit of 65536 \(maxPushBytes in config.json\)/);
    expect(await head()).toBe(before);
    await git(wc, ['checkout', '-q', 'main']);
  });

  it('refuses dumb HTTP, wrong methods, bad names and unknown apps with one clear line', async () => {
    const auth = { authorization: basic(token) };
    const dumb = await request(server.url, { path: `/_git/${APP}.git/info/refs`, headers: auth });
    expect(dumb.status).toBe(403);
    expect(dumb.body.toString()).toMatch(/^dumb HTTP is not supported.*\n$/);
    expect((await request(server.url, { path: `/_git/${APP}.git/HEAD`, headers: auth })).status).toBe(404);
    const method = await request(server.url, { path: `/_git/${APP}.git/git-upload-pack`, headers: auth });
    expect(method.status).toBe(405);
    expect(method.headers.allow).toBe('POST');
    for (const bad of ['..', '%2e%2e', 'Web-App', '-x.git', 'a;b']) {
      const r = await request(server.url, { path: `/_git/${bad}/info/refs?service=git-upload-pack`, headers: auth });
      expect(r.status, bad).toBe(404);
      expect(r.body.toString()).toMatch(/^app not found: invalid app name/);
    }
    const ghost = await request(server.url, { path: '/_git/ghost.git/info/refs?service=git-upload-pack', headers: auth });
    expect(ghost.status).toBe(404);
    expect(ghost.body.toString()).toContain('app not found');
    const type = await request(server.url, { method: 'POST', path: `/_git/${APP}.git/git-upload-pack`, headers: { ...auth, 'content-type': 'text/plain' }, body: Buffer.from('x') });
    expect(type.status).toBe(415);
  });

  it('blocks a client after repeated wrong tokens with 429, even with the right token, but not others', async () => {
    const p = `/_git/${APP}.git/info/refs?service=git-upload-pack`;
    const from = (addr: string, secret: string) => request(strict.url, { path: p, headers: { authorization: basic(secret), 'x-forwarded-for': `10.9.9.9, ${addr}` } });
    for (let i = 0; i < 3; i++) expect((await from('192.0.2.1', `slw_guess${i}`)).status).toBe(401);
    const blocked = await from('192.0.2.1', token);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await from('192.0.2.2', token)).status).toBe(200);
  });
});

function runBuffer(cmd: string, args: string[], cwd: string, input: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${cmd} exited ${code}`))));
    child.stdin.end(input);
  });
}
