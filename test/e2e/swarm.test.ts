import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectFrom, hostConnects, startHostService } from '../support/host-service.js';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// The docker-swarm scheduler end to end: an app pushed on docker-local moves to the swarm
// without a failed request, then scale, config, rollback and logs work the same way.
describe('docker-swarm scheduler (e2e)', () => {
  let platform: TestPlatform;
  const app = uniqueApp('swarm');
  let wc: string;

  const cli = (args: string[], code = 0) => platform.expectCli(args, code);
  const body = async () => (await platform.fetchApp(app, { by: 'host' })).body;
  const ps = async () => (await cli(['ps', app])).stdout.trim().split('\n');
  const services = async () => (await run('docker', ['service', 'ls', '--filter', `label=slipway.app=${app}`, '--format', '{{.Name}} {{.Replicas}}'])).stdout.trim();

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    wc = await platform.workingCopy('node-ops');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
  }, 600_000);

  afterAll(async () => {
    await platform?.stop();
    // apps:destroy removed the app's services.
    expect(await services()).toBe('');
  }, 180_000);

  it('moves a running app from docker-local to docker-swarm without a failed request', async () => {
    expect((await cli(['scheduler', app])).stdout).toBe('docker-local\n');
    expect(await ps()).toEqual([`${app}.web.1 running v1`]);
    // No app on docker-swarm yet: status says nothing of the swarm or the registry.
    expect((await cli(['status'])).stdout).not.toMatch(/^(swarm|registry) /m);
    const bad = await cli(['scheduler:set', app, 'k8s'], 2);
    expect(bad.stderr).toMatch(/unknown scheduler "k8s": use docker-local or docker-swarm/);

    let stop = false;
    const failures: string[] = [];
    let requests = 0;
    const load = (async () => {
      while (!stop) {
        const r = await platform.fetchApp(app, { by: 'host' }).catch((err: Error) => ({ status: 0, body: err.message }));
        requests++;
        if (r.status !== 200) failures.push(`${r.status} ${r.body.slice(0, 80)}`);
      }
    })();
    const moved = await cli(['scheduler:set', app, 'docker-swarm']);
    stop = true;
    await load;
    expect(moved.stdout).toContain(`${app} runs on docker-swarm`);
    expect(requests).toBeGreaterThan(10);
    expect(failures).toEqual([]);

    expect((await cli(['scheduler', app])).stdout).toBe('docker-swarm\n');
    expect(await ps()).toEqual([`${app}.web.1 running v1`]);
    expect(await services()).toBe(`${app}_web 1/1`);
    // Nothing left on docker-local: the only containers are the service's task (`<app>_web.1.<id>`).
    const names = (await run('docker', ['ps', '-a', '--filter', `label=slipway.app=${app}`, '--format', '{{.Names}}'])).stdout.trim().split('\n');
    expect(names).toEqual([expect.stringMatching(new RegExp(`^${app}_web\\.1\\.`))]);
    expect(await body()).toContain('dyno=web.1');
  }, 300_000);

  it('scales 1 -> 3 and the router spreads over every replica', async () => {
    await cli(['ps:scale', app, 'web=3']);
    expect(await ps()).toEqual([1, 2, 3].map((n) => `${app}.web.${n} running v1`));
    // The route is the app's stable front (platform/fronts.ts): the kernel spreads nginx's new
    // upstream connections over the replicas, and a kept one stays with its replica. Bursts of
    // concurrent requests make nginx open connections, as load does.
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 3; i++) {
      for (const b of await Promise.all(Array.from({ length: 12 }, () => body()))) seen.add(/dyno=(\S+)/.exec(b)?.[1] ?? '?');
    }
    expect([...seen].sort()).toEqual(['web.1', 'web.2', 'web.3']);
  }, 300_000);

  it('a task cannot reach a service the host runs on every interface', async () => {
    const { server, port } = await startHostService();
    try {
      // Tasks reach the host through docker_gwbridge, which the host firewall covers (platform/firewall.ts).
      const bridge = JSON.parse((await run('docker', ['network', 'inspect', 'docker_gwbridge'])).stdout)[0] as { IPAM: { Config: { Gateway: string }[] } };
      const gateway = bridge.IPAM.Config[0]!.Gateway;
      expect(await hostConnects(gateway, port)).toBe(true);
      const tasks = (await run('docker', ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${app}_web`])).stdout.trim().split('\n');
      expect(tasks.length).toBeGreaterThan(0);
      expect(await connectFrom(tasks[0]!, gateway, port)).not.toBe(0);
      // The router still reaches every replica through the same bridge.
      expect(await body()).toContain('dyno=web.');
    } finally {
      server.close();
    }
  }, 60_000);

  it('config:set rolls out a release; rollback brings the old one back', async () => {
    const set = await cli(['config:set', app, 'GREETING=swarm-hi']);
    expect(set.stdout).toContain('Released v2 (config set GREETING)');
    expect(await body()).toContain('greeting=swarm-hi');
    expect(await ps()).toEqual([1, 2, 3].map((n) => `${app}.web.${n} running v2`));
    const back = await cli(['rollback', app, 'v1']);
    expect(back.stdout).toContain('Released v3 (rollback to v1)');
    expect(await body()).toContain('greeting=-');
    expect(await ps()).toEqual([1, 2, 3].map((n) => `${app}.web.${n} running v3`));
  }, 300_000);

  it('logs merge every replica; nodes:list and nodes:join-command describe the swarm', async () => {
    const logs = await cli(['logs', app, '-n', '200']);
    for (const n of [1, 2, 3]) expect(logs.stdout).toContain(`${app}.web.${n}: `);
    const nodes = JSON.parse((await cli(['nodes:list', '--json'])).stdout) as { role: string; state: string; availability: string }[];
    expect(nodes.some((n) => n.role === 'manager' && n.state === 'ready' && n.availability === 'active')).toBe(true);
    expect((await cli(['nodes:join-command'])).stdout).toMatch(/^docker swarm join --token SWMTKN-\S+ \S+:2377\n$/);
    const status = (await cli(['status'])).stdout;
    expect(status).toMatch(/^swarm +active, manager, [0-9]+ nodes? \([0-9]+ ready\)$/m);
    expect(status).toMatch(/^registry +running on 127\.0\.0\.1:[0-9]+$/m);
    const s = JSON.parse((await cli(['status', '--json'])).stdout) as { swarm?: string; registry?: string };
    expect(s.registry).toMatch(/^running on /);
  }, 120_000);
});
