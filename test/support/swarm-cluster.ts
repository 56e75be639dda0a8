import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, run, type RunResult } from './platform.js';

/**
 * A Docker cluster of its own for the multi-node test: two containers of the swarm node image
 * (scripts/node-image.mjs), each with its own dockerd, on a bridge network the test creates. The
 * host engine's swarm advertises 127.0.0.1 and other tests use it, so it is never touched: a
 * worker in its own network namespace could not reach it anyway.
 *
 * The manager's dockerd also listens on a socket in a host folder, so a `slipway server` run with
 * `DOCKER_HOST=unix://<socket>` drives it as its engine. Builds bind-mount host paths into their
 * containers, so the paths a build names (the platform home, the source tree, the test mirror)
 * are bind-mounted into the manager at the same place.
 */
export class SwarmCluster {
  readonly network: string;
  readonly socketDir: string;
  readonly manager: string;
  readonly worker: string;
  /** The bridge's gateway: the host as the nodes see it (the registry binds it). */
  gateway = '';
  subnet = '';
  managerIp = '';
  workerIp = '';
  #created: string[] = [];
  #networkCreated = false;

  private constructor(id: string, socketDir: string) {
    this.network = `slipway-test-mn-${id}`;
    this.manager = `slipway-test-mn-${id}-manager`;
    this.worker = `slipway-test-mn-${id}-worker`;
    this.socketDir = socketDir;
  }

  get socket(): string {
    return path.join(this.socketDir, 'docker.sock');
  }

  /** `DOCKER_HOST` for the manager's engine. */
  get dockerHost(): string {
    return `unix://${this.socket}`;
  }

  /** `docker` against the manager's engine, checked. */
  async onManager(args: string[], o: { timeoutMs?: number } = {}): Promise<RunResult> {
    return checked(await run('docker', ['-H', this.dockerHost, ...args], { timeoutMs: o.timeoutMs ?? 120_000 }), `docker -H manager ${args.join(' ')}`);
  }

  /** `docker` inside the worker, checked. */
  async onWorker(args: string[]): Promise<RunResult> {
    return checked(await run('docker', ['exec', this.worker, 'docker', ...args]), `docker (worker) ${args.join(' ')}`);
  }

  /**
   * Builds (or finds, by recipe hash) the node image, creates the network and both nodes, and
   * waits for both engines. `sharedPaths` are bind-mounted into the manager at the same place.
   */
  static async start(o: { sharedPaths: { path: string; readOnly: boolean }[] }): Promise<SwarmCluster> {
    const image = (checked(await run('node', [path.join(repoRoot, 'scripts', 'node-image.mjs')], { timeoutMs: 900_000 }), 'scripts/node-image.mjs').stdout.trim());
    const c = new SwarmCluster(crypto.randomBytes(3).toString('hex'), await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-mn-')));
    try {
      checked(await run('docker', ['network', 'create', '--label', 'slipway.test=swarm-multinode', c.network]), 'docker network create');
      c.#networkCreated = true;
      const ipam = JSON.parse(checked(await run('docker', ['network', 'inspect', '--format', '{{json .IPAM.Config}}', c.network]), 'network inspect').stdout) as { Subnet: string; Gateway: string }[];
      c.subnet = ipam[0]!.Subnet;
      c.gateway = ipam[0]!.Gateway;
      // Every engine of the cluster trusts the platform registry on the gateway without TLS, as
      // an operator's daemon.json `insecure-registries` does (README "Schedulers").
      const dockerd = ['--insecure-registry', c.subnet];
      const mounts = o.sharedPaths.flatMap((m) => ['--mount', `type=bind,source=${m.path},target=${m.path}${m.readOnly ? ',readonly' : ''}`]);
      await c.#node(c.manager, image, [...mounts, '--mount', `type=bind,source=${c.socketDir},target=/run/slipway-node`], ['-H', 'unix:///var/run/docker.sock', '-H', 'unix:///run/slipway-node/docker.sock', ...dockerd]);
      await c.#node(c.worker, image, [], dockerd);
      c.managerIp = await c.#ip(c.manager);
      c.workerIp = await c.#ip(c.worker);
      await c.#waitFor(() => run('docker', ['-H', c.dockerHost, 'version']));
      await c.#waitFor(() => run('docker', ['exec', c.worker, 'docker', 'version']));
      return c;
    } catch (err) {
      await c.remove();
      throw err;
    }
  }

  async #node(name: string, image: string, extra: string[], dockerdArgs: string[]): Promise<void> {
    // Not --privileged (see the node image's entry point): every capability the host has, no
    // seccomp or AppArmor profile, /proc and /sys unmasked. /var/lib/docker on an anonymous
    // volume: overlay2 cannot sit on the container's own overlay file system.
    const args = ['run', '-d', '--name', name, '--hostname', name, '--label', 'slipway.test=swarm-multinode', '--network', this.network];
    args.push('--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined');
    args.push('--mount', 'type=volume,target=/var/lib/docker', ...extra, image, ...dockerdArgs);
    this.#created.push(name);
    checked(await run('docker', args), `docker run ${name}`);
  }

  async #ip(name: string): Promise<string> {
    const r = checked(await run('docker', ['inspect', '--format', `{{(index .NetworkSettings.Networks "${this.network}").IPAddress}}`, name]), 'docker inspect');
    return r.stdout.trim();
  }

  async #waitFor(probe: () => Promise<RunResult>): Promise<void> {
    let last: RunResult | null = null;
    for (let i = 0; i < 240; i++) {
      last = await probe();
      if (last.code === 0) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`a node's dockerd did not answer within 60 s: ${last?.stderr}\n${(await run('docker', ['logs', '--tail', '30', this.manager])).stderr}`);
  }

  /** Copies an image of the host engine into the manager's (`docker save | docker load`). */
  async loadIntoManager(ref: string): Promise<void> {
    const save = spawn('docker', ['save', ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    const load = spawn('docker', ['-H', this.dockerHost, 'load', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    save.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    load.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    save.stdout.pipe(load.stdin);
    const codes = await Promise.all([save, load].map((p) => new Promise<number | null>((resolve) => p.on('close', resolve))));
    if (codes.some((c) => c !== 0)) throw new Error(`docker save ${ref} | docker load failed (${codes.join(', ')}): ${stderr}`);
  }

  /** Removes the nodes with their volumes, the network and the socket folder; the node image stays (cached by recipe hash). */
  async remove(): Promise<void> {
    for (const name of this.#created) await run('docker', ['rm', '-f', '-v', name]);
    if (this.#networkCreated) await run('docker', ['network', 'rm', this.network]);
    await fs.rm(this.socketDir, { recursive: true, force: true });
  }
}

function checked(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r;
}
