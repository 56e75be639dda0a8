import { spawn, execFile, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { pathsFor } from '../../core/paths.js';
import { removeFrontsOfHome } from '../../platform/fronts.js';
import { INSTANCE_ID_PATTERN } from '../../core/instance-id.js';
import { pruneInstance } from '../../hooks/prune.js';
import { createDocker } from '../../runtime/host-setup.js';
import { scopeToInstance } from '../../runtime/instance-engine.js';

const exec = promisify(execFile);
export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const slipwayBin = path.join(repoRoot, 'slipway');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export const uniqueApp = (prefix: string): string => `${prefix}-${crypto.randomBytes(3).toString('hex')}`;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with argv (never a shell) and collects its output; never throws on exit code. */
export function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: o.env ?? process.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000);
    child.on('error', reject);
    // A program that exits without reading its input (git clone, git push) must not crash the test run with EPIPE.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    // A child that exits without reading its input (git push, ssh) must not fail the test with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(o.input ?? '');
  });
}

/**
 * A real Slipway server in a throw-away SLIPWAY_HOME on free loopback ports, driven through the
 * real CLI, git and OpenSSH clients. `stop()` ends only the processes it started, by pid, and
 * destroys the apps it created.
 */
export class TestPlatform {
  readonly home: string;
  readonly sshPort: number;
  readonly httpPort: number;
  readonly keyFile: string;
  readonly #extraEnv: Record<string, string>;
  #server: ChildProcess | null = null;
  #serverLog = '';
  readonly #apps = new Set<string>();

  private constructor(home: string, sshPort: number, httpPort: number, extraEnv: Record<string, string>) {
    this.home = home;
    this.sshPort = sshPort;
    this.httpPort = httpPort;
    this.keyFile = path.join(home, 'test-client-key');
    this.#extraEnv = extraEnv;
  }

  /**
   * `sharedMirror: false` gives the platform an empty mirror of its own (to test imports).
   * `home`: an empty folder made by the caller (removed by `stop()`); `env`: added to the
   * server's and the CLI's environment (`DOCKER_HOST` of another engine).
   */
  static async start(o: { config?: Record<string, unknown>; sharedMirror?: boolean; home?: string; env?: Record<string, string> } = {}): Promise<TestPlatform> {
    const home = o.home ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-e2e-')));
    const p = new TestPlatform(home, await freePort(), await freePort(), o.env ?? {});
    if (o.sharedMirror !== false) {
      // Share one mirror between test platforms: the Node runtime is large, fetch it once per machine.
      const shared = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repoRoot, '.cache', 'test-mirror');
      await fs.mkdir(shared, { recursive: true });
      await fs.symlink(shared, path.join(home, 'mirror'));
    }
    // No runtime preparation at start (README `prepareRuntimes`): test platforms start many times and
    // most never push a Node app; the tests of the preparation turn it on.
    // A strict mirror (no npm upstream): tests reach nothing beyond loopback, and a push would
    // otherwise ask the host's npm registry for the newest Node.js on every build. Tests of the
    // pull-through set an upstream on loopback.
    await fs.writeFile(path.join(home, 'config.json'), JSON.stringify({ healthSettleMs: 500, drainMs: 500, stopGraceSeconds: 2, prepareRuntimes: false, npmUpstream: null, ...o.config }));
    await p.#startServer();
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', p.keyFile]);
    const added = await p.cli(['ssh-keys:add', 'tester', `${p.keyFile}.pub`]);
    if (added.code !== 0) throw new Error(`ssh-keys:add failed: ${added.stderr}`);
    return p;
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.#extraEnv, SLIPWAY_HOME: this.home };
  }

  async #startServer(): Promise<void> {
    const child = spawn(slipwayBin, ['server', '--ssh-port', String(this.sshPort), '--http-port', String(this.httpPort)], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#server = child;
    child.stdout!.on('data', (d: Buffer) => (this.#serverLog += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.#serverLog += d.toString()));
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`slipway server exited ${child.exitCode}:\n${this.#serverLog}`);
      if (this.#serverLog.includes('Ready.')) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`slipway server did not become ready:\n${this.#serverLog}`);
  }

  get serverLog(): string {
    return this.#serverLog;
  }

  /** Stops the daemon (SIGTERM, by pid) and starts it again: apps and router keep running. */
  async restartDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stopDaemon(signal);
    this.#serverLog = '';
    await this.#startServer();
  }

  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#server;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    this.#server = null;
  }

  cli(args: string[], input?: string): Promise<RunResult> {
    return run(slipwayBin, args, { env: this.env, ...(input === undefined ? {} : { input }) });
  }

  /** `cli`, checked: fails the test with the command's stderr when it exits with anything but `code`. */
  async expectCli(args: string[], code = 0, input?: string): Promise<RunResult> {
    const r = await this.cli(args, input);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
    return r;
  }

  sshArgs(key = this.keyFile): string[] {
    return ['-i', key, '-p', String(this.sshPort), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  }

  ssh(command: string[], o: { key?: string; input?: string } = {}): Promise<RunResult> {
    return run('ssh', [...this.sshArgs(o.key), 'git@127.0.0.1', ...command], { ...(o.input === undefined ? {} : { input: o.input }) });
  }

  gitEnv(key = this.keyFile): NodeJS.ProcessEnv {
    return {
      ...process.env,
      GIT_SSH_COMMAND: ['ssh', ...this.sshArgs(key)].join(' '),
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.invalid',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.invalid',
      GIT_TERMINAL_PROMPT: '0',
    };
  }

  sshRemote(app: string): string {
    return `ssh://git@127.0.0.1:${this.sshPort}/${app}`;
  }

  /**
   * New apps are restricted (sign-in required at the router); most tests are about deploys and
   * open theirs to anyone, as the README's quick start does. `private: true` leaves it restricted.
   */
  async createApp(name: string, o: { private?: boolean } = {}): Promise<void> {
    const r = await this.cli(['apps:create', name]);
    if (r.code !== 0) throw new Error(`apps:create ${name} failed: ${r.stderr}`);
    this.#apps.add(name);
    if (o.private) return;
    const open = await this.cli(['access:set', name, 'public']);
    if (open.code !== 0) throw new Error(`access:set ${name} public failed: ${open.stderr}`);
  }

  /** Destroys an app created another way (through the web pages) when the platform stops. */
  adopt(name: string): void {
    this.#apps.add(name);
  }

  /**
   * Pushes the node-hello fixture to `app` changed to tell what the router passed on: the
   * identity headers and the cookies (`user ...`, `groups ...`, `cookie ...` lines).
   */
  async pushIdentityEcho(app: string): Promise<RunResult> {
    const wc = await this.workingCopy('node-hello');
    const server = path.join(wc, 'server.js');
    const text = await fs.readFile(server, 'utf8');
    const echo = text.replace("x-forwarded-host ${req.headers['x-forwarded-host']}\\n`", "x-forwarded-host ${req.headers['x-forwarded-host']}\\nuser ${req.headers['x-slipway-user']}\\ngroups ${req.headers['x-slipway-groups']}\\ncookie ${req.headers.cookie}\\n`");
    if (echo === text) throw new Error('fixtures/apps/node-hello/server.js changed: the identity echo no longer applies');
    await fs.writeFile(server, echo);
    await this.commitAll(wc, 'echo identity');
    return this.push(wc, this.sshRemote(app));
  }

  /** Makes a git working copy from a fixture app, committed on main. */
  async workingCopy(fixture: string): Promise<string> {
    const dir = await fs.mkdtemp(path.join(this.home, 'wc-'));
    await fs.cp(path.join(repoRoot, 'fixtures', 'apps', fixture), dir, { recursive: true });
    await this.git(dir, ['init', '-q', '--initial-branch=main']);
    await this.commitAll(dir, 'initial');
    return dir;
  }

  async commitAll(dir: string, message: string): Promise<void> {
    await this.git(dir, ['add', '-A']);
    await this.git(dir, ['commit', '-q', '-m', message]);
  }

  async git(dir: string, args: string[]): Promise<RunResult> {
    const r = await run('git', args, { cwd: dir, env: this.gitEnv() });
    if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
    return r;
  }

  push(dir: string, remote: string, refspec = 'main'): Promise<RunResult> {
    return run('git', ['push', remote, refspec], { cwd: dir, env: this.gitEnv() });
  }

  /** GET through the router, by host name or by path. (fetch() may not set Host, so node:http.) */
  fetchApp(app: string, o: { by: 'host' | 'path'; path?: string } = { by: 'host' }): Promise<{ status: number; body: string }> {
    const p = o.path ?? '/';
    return httpGet(this.httpPort, o.by === 'host' ? p : `/${app}${p}`, o.by === 'host' ? `${app}.localhost:${this.httpPort}` : `127.0.0.1:${this.httpPort}`);
  }

  async stop(): Promise<void> {
    // Destroying apps needs the daemon; a test may have left it stopped.
    if (!this.#server && this.#apps.size > 0) await this.#startServer().catch(() => undefined);
    for (const app of this.#apps) await this.cli(['apps:destroy', app, '--force']).catch(() => undefined);
    await this.stopDaemon();
    // The router (this home's own nginx), the auth server and the image registry (docker-swarm
    // apps): stopped by their pid files, never another instance's.
    for (const file of [path.join(this.home, 'router', 'nginx.pid'), path.join(this.home, 'run', 'auth.pid'), path.join(this.home, 'registry', 'registry.pid')]) {
      const pid = Number(await fs.readFile(file, 'utf8').catch(() => ''));
      if (Number.isInteger(pid) && pid > 1) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
    // This instance's front NAT chains (platform/fronts.ts), as `slipway router:stop` removes them.
    await removeFrontsOfHome(pathsFor(this.home)).catch(() => undefined);
    // With the daemon stopped nothing builds: what `slipway prune --all` removes, here without a
    // daemon, so prepared runtime images kept for future apps go too (a test platform has none).
    const instance = (await fs.readFile(pathsFor(this.home).instanceIdFile, 'utf8').catch(() => '')).trim();
    if (INSTANCE_ID_PATTERN.test(instance)) {
      await pruneInstance({ docker: scopeToInstance(createDocker(), instance), runtimesDir: pathsFor(this.home).runtimesDir, keep: null, progress: () => undefined }).catch(() => undefined);
    }
    await fs.rm(this.home, { recursive: true, force: true }).catch(() => undefined);
  }
}

export function httpGet(port: number, urlPath: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

export { exec };
