import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainLines, frontTargets, instanceIdOf, isFront } from '../support/fronts.js';
import { TestPlatform, uniqueApp } from '../support/platform.js';

const exec = promisify(execFile);

/**
 * Each app's route is a stable front address the kernel forwards to its containers
 * (platform/fronts.ts, docs/router.md "Stable fronts"): a deploy, a restart and a scale change
 * the NAT rules, not the router's config, so nginx is not reloaded and a keep-alive client that
 * never resends (Node's http.Agent) loses nothing.
 */
describe('stable app fronts (real kernel, Docker and nginx)', () => {
  let platform: TestPlatform;
  let id: string;
  const app = uniqueApp('front');
  /** The contract's answer for an app with nothing healthy (README "Routing"). */
  const idleText = `app ${app} has no running web process: deploy it or run ps:start/ps:scale\n`;

  const route = async (): Promise<string[]> =>
    (JSON.parse(await fs.readFile(path.join(platform.home, 'routes.json'), 'utf8')) as { apps: Record<string, { upstreams: string[] }> }).apps[app]?.upstreams ?? [];
  /** The loopback upstreams of the running web processes: docker-local containers, or swarm tasks publishing on this node. */
  const webPorts = async (scheduler: 'local' | 'swarm' = 'local'): Promise<string[]> => {
    const filters = scheduler === 'local' ? ['--filter', `label=slipway.app=${app}`, '--filter', 'label=slipway.type=web'] : ['--filter', `label=com.docker.swarm.service.name=${app}_web`];
    const { stdout } = await exec('docker', ['ps', ...filters, '--format', '{{.Ports}}']);
    return stdout
      .split('\n')
      .filter(Boolean)
      .map((p) => `127.0.0.1:${/:(\d+)->/.exec(p)![1]}`)
      .sort();
  };
  /** The router as nginx runs it: its config and its worker processes (a reload replaces them). */
  const router = async () => {
    const prefix = path.join(platform.home, 'router');
    const master = (await fs.readFile(path.join(prefix, 'nginx.pid'), 'utf8')).trim();
    // Workers only: nginx's cache loader exits by itself a minute after a start.
    const children = (await exec('ps', ['--ppid', master, '-o', 'pid=,args=']).catch(() => ({ stdout: '' }))).stdout.split('\n');
    const workers = children.filter((l) => l.includes('worker process')).map((l) => l.trim().split(/\s+/)[0]!).sort();
    return { config: await fs.readFile(path.join(prefix, 'nginx.conf'), 'utf8'), loaded: await fs.readFile(path.join(prefix, 'loaded.json'), 'utf8'), workers };
  };

  /**
   * Keep-alive GETs through the router on 8 sockets until stopped; no request is ever resent.
   * idleOk: the app's idle 503 is a right answer too (counted apart).
   */
  const load = (o: { idleOk?: boolean } = {}) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let stop = false;
    const failures: string[] = [];
    let ok = 0;
    let idle = 0;
    const one = () =>
      new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: platform.httpPort, path: '/', agent, headers: { host: `${app}.localhost:${platform.httpPort}` } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += String(c)));
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else if (o.idleOk && res.statusCode === 503 && body === idleText) idle++;
            else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          failures.push(err.code ?? err.message);
          resolve();
        });
      });
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) await one();
    });
    return {
      idleSoFar: () => idle,
      async end() {
        stop = true;
        await Promise.all(loops);
        agent.destroy();
        return { ok, idle, failures };
      },
    };
  };

  beforeAll(async () => {
    platform = await TestPlatform.start();
    id = await instanceIdOf(platform.home);
    await platform.createApp(app);
    const wc = await platform.workingCopy('node-hello');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
    // Teardown leaves nothing of this instance in the kernel (and touches no other instance's chain).
    if (id) expect(await chainLines(id)).toEqual([]);
  }, 120_000);

  it('the route is one front, and the kernel sends it to the web container', async () => {
    const [front, ...rest] = await route();
    expect(rest).toEqual([]);
    expect(isFront(front!)).toBe(true);
    expect(await frontTargets(platform.home, front!)).toEqual(await webPorts());
    expect((await platform.fetchApp(app, { by: 'host' })).body).toContain('hello from node-hello');
    // Jumped from OUTPUT in nat and filter, in chains named after this instance.
    expect((await chainLines(id)).filter((l) => l.startsWith('-A OUTPUT'))).toHaveLength(2);
  });

  it('a restart and a scale keep the front and the router (no reload), and a client that never resends loses nothing', async () => {
    const front = await route();
    const before = await router();
    expect(before.workers.length).toBeGreaterThan(0);
    const client = load();

    await platform.expectCli(['ps:restart', app]);
    expect(await route()).toEqual(front);
    const afterRestart = await webPorts();
    expect(await frontTargets(platform.home, front[0]!)).toEqual(afterRestart);

    await platform.expectCli(['ps:scale', app, 'web=3']);
    expect(await route()).toEqual(front);
    const scaled = await webPorts();
    expect(scaled).toHaveLength(3);
    expect(await frontTargets(platform.home, front[0]!)).toEqual(scaled);

    await platform.expectCli(['ps:scale', app, 'web=1']);
    const { ok, failures } = await client.end();
    expect(await frontTargets(platform.home, front[0]!)).toEqual(await webPorts());
    expect(ok).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    expect(await router()).toEqual(before);
  }, 300_000);

  it('the last healthy process leaving and the first coming back change the kernel\'s rules only: the idle 503, then answers, no reload', async () => {
    const front = await route();
    const before = await router();
    const client = load({ idleOk: true });

    await platform.expectCli(['ps:scale', app, 'web=0']);
    expect(await route()).toEqual(front);
    expect(await frontTargets(platform.home, front[0]!)).toEqual([]);
    const idle = await platform.fetchApp(app, { by: 'host' });
    expect(idle).toEqual({ status: 503, body: idleText });
    expect(await platform.fetchApp(app, { by: 'path', path: '/x' })).toEqual({ status: 503, body: idleText });
    // The client kept its connections: it sees the idle 503 on them, never a reset.
    for (let i = 0; i < 50 && client.idleSoFar() === 0; i++) await new Promise((r) => setTimeout(r, 100));

    await platform.expectCli(['ps:scale', app, 'web=1']);
    expect(await route()).toEqual(front);
    expect(await frontTargets(platform.home, front[0]!)).toEqual(await webPorts());
    expect((await platform.fetchApp(app, { by: 'host' })).body).toContain('hello from node-hello');
    const { ok, idle: idled, failures } = await client.end();
    expect(failures).toEqual([]);
    expect(idled).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    expect(await router()).toEqual(before);
  }, 300_000);

  it('a daemon restart does not reload the router, and a client that never resends loses nothing', async () => {
    const front = await route();
    const before = await router();
    const client = load();
    await platform.restartDaemon();
    expect(await route()).toEqual(front);
    const { ok, failures } = await client.end();
    expect(ok).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    // The git and web sockets stay in the table while the daemon is down (nginx says 503 for
    // them), so the restarted daemon renders the config nginx has: same workers, no reload.
    const after = await router();
    expect(after.config).toEqual(before.config);
    expect(after.workers).toEqual(before.workers);
  }, 300_000);

  it('a daemon restart keeps the front and rewrites the chain from what it adopts', async () => {
    const front = await route();
    const address = front[0]!.slice(0, front[0]!.lastIndexOf(':'));
    const kept = await frontTargets(platform.home, front[0]!);
    // A rule the adopted containers do not explain (left by a daemon killed mid-change, say).
    await exec('iptables', ['-w', '-t', 'nat', '-I', `SLWF-${id}`, '1', '-d', `${address}/32`, '-p', 'tcp', '-m', 'tcp', '--dport', front[0]!.split(':')[1]!, '-j', 'DNAT', '--to-destination', '127.0.0.1:1']);
    expect(await frontTargets(platform.home, front[0]!)).toEqual(['127.0.0.1:1', ...kept]);
    await platform.restartDaemon();
    expect(await route()).toEqual(front);
    expect(await frontTargets(platform.home, front[0]!)).toEqual(await webPorts());
    expect(await frontTargets(platform.home, front[0]!)).toEqual(kept);
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
  }, 300_000);

  it('docker-swarm (tasks publishing on this node) goes through the same front, and its rolling restart loses nothing either', async () => {
    const front = await route();
    await platform.expectCli(['scheduler:set', app, 'docker-swarm']);
    await platform.expectCli(['ps:scale', app, 'web=2']);
    expect(await route()).toEqual(front);
    expect(await frontTargets(platform.home, front[0]!)).toEqual(await webPorts('swarm'));
    const before = await router();
    const client = load();
    await platform.expectCli(['ps:restart', app]);
    const { ok, failures } = await client.end();
    expect(await route()).toEqual(front);
    // The replaced tasks stop after the restart returns; the front already left them.
    for (let i = 0; i < 120 && (await webPorts('swarm')).length > 2; i++) await new Promise((r) => setTimeout(r, 500));
    expect(await frontTargets(platform.home, front[0]!)).toEqual(await webPorts('swarm'));
    expect(ok).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    expect(await router()).toEqual(before);
  }, 600_000);
});
