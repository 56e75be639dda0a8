import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackImageRef } from '../../runtime/stack.js';
import { TestPlatform, repoRoot, run, uniqueApp } from '../support/platform.js';
import { SwarmCluster } from '../support/swarm-cluster.js';

// Issue 10 item 5: docker-swarm on more than one machine. A cluster of its own (two Docker
// engines in containers on a test network, test/support/swarm-cluster.ts) driven by a real
// `slipway server` whose DOCKER_HOST is the manager: the platform makes the swarm, a worker joins
// with `nodes:join-command`, an app pushed with git runs there, release images reach the worker through the platform registry bound
// on the network's gateway (`registryAddress`), and the host's router serves replicas on both
// nodes. Slow (a node image build the first time, a build in a fresh engine): long timeouts.
describe('docker-swarm on two nodes (e2e, slow)', () => {
  let cluster: SwarmCluster | undefined;
  let platform: TestPlatform | undefined;
  let home = '';
  const app = uniqueApp('multi');

  const cli = (args: string[], code = 0) => platform!.expectCli(args, code);

  beforeAll(async () => {
    const stack = stackImageRef();
    const present = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', stack]);
    if (present.code !== 0) throw new Error(`the stack image ${stack} is missing on the host engine: run ./slipway setup (./scripts/test does)`);
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-e2e-'));
    const mirror = process.env.SLIPWAY_TEST_MIRROR ?? path.join(repoRoot, '.cache', 'test-mirror');
    await fs.mkdir(mirror, { recursive: true });
    // What builds bind-mount, at the same paths: the home (scratch, caches; its `mirror` links to
    // the shared one), the source tree (driver.sh, the built-in buildpacks), the mirror.
    cluster = await SwarmCluster.start({
      sharedPaths: [
        { path: home, readOnly: false },
        { path: repoRoot, readOnly: true },
        { path: await fs.realpath(mirror), readOnly: true },
      ],
    });
    // A fresh engine has no stack image; the platform would build it with mmdebstrap otherwise.
    await cluster.loadIntoManager(stack);
    platform = await TestPlatform.start({
      home,
      env: { DOCKER_HOST: cluster.dockerHost },
      // The swarm the platform makes advertises the manager's address on the test network; the
      // registry binds the gateway, the host as every node sees it.
      config: { swarmAdvertiseAddr: cluster.managerIp, registryAddress: cluster.gateway },
    });
    // The worker joins with the command the platform prints, as an operator would run it.
    const join = (await cli(['nodes:join-command'])).stdout.trim().split(' ');
    expect(join.slice(0, 3)).toEqual(['docker', 'swarm', 'join']);
    expect(join.at(-1)).toBe(`${cluster.managerIp}:2377`);
    await cluster.onWorker(join.slice(1));
    // The join returns once the manager accepted the node; its first heartbeat makes it ready.
    for (let i = 0; i < 120; i++) {
      const nodes = JSON.parse((await cli(['nodes:list', '--json'])).stdout) as { state: string }[];
      if (nodes.length === 2 && nodes.every((n) => n.state === 'ready')) break;
      await new Promise((r) => setTimeout(r, 500));
    }

    await platform.createApp(app);
    // Before the first push: docker-local would publish on the manager's loopback, which this
    // machine's router cannot reach (docker-local wants the engine on this machine).
    expect((await cli(['scheduler:set', app, 'docker-swarm'])).stdout).toContain(`${app} runs on docker-swarm`);
    const wc = await platform.workingCopy('node-ops');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
  }, 1_200_000);

  afterAll(async () => {
    // The platform first: destroying the app needs the manager's engine.
    await platform?.stop();
    if (platform === undefined && home) await fs.rm(home, { recursive: true, force: true });
    await cluster?.remove();
  }, 300_000);

  it('nodes:list shows the manager and the worker that joined, both ready', async () => {
    const nodes = JSON.parse((await cli(['nodes:list', '--json'])).stdout) as { hostname: string; role: string; state: string; availability: string; address: string }[];
    expect(nodes.map((n) => [n.hostname, n.role, n.state, n.availability, n.address])).toEqual([
      [cluster!.manager, 'manager', 'ready', 'active', cluster!.managerIp],
      [cluster!.worker, 'worker', 'ready', 'active', cluster!.workerIp],
    ]);
    expect((await cli(['status'])).stdout).toMatch(/^swarm +active, manager, 2 nodes \(2 ready\)$/m);
  }, 120_000);

  it('scaled to 4 on the swarm, replicas run on both nodes and each serves through the router', async () => {
    expect((await cli(['ps', app])).stdout).toBe(`${app}.web.1 running v1\n`);
    await cli(['ps:scale', app, 'web=4']);
    expect((await cli(['ps', app])).stdout.trim().split('\n')).toEqual([1, 2, 3, 4].map((n) => `${app}.web.${n} running v1`));

    // Where the swarm placed each replica: `<app>_web.<slot> <node hostname>`.
    const placed = (await cluster!.onManager(['service', 'ps', `${app}_web`, '--filter', 'desired-state=running', '--format', '{{.Name}} {{.Node}} {{.CurrentState}}'])).stdout.trim().split('\n');
    const nodeOfDyno = new Map(placed.map((line) => line.split(' ')).map(([name, node]) => [`web.${name!.split('.').at(-1)}`, node!]));
    expect([...new Set(nodeOfDyno.values())].sort()).toEqual([cluster!.manager, cluster!.worker].sort());
    for (const line of placed) expect(line).toMatch(/ Running /);

    // The worker pulled the release from the platform registry on the gateway.
    const registry = (await cli(['status'])).stdout.match(/^registry +running on (\S+)$/m)?.[1];
    expect(registry).toMatch(new RegExp(`^${cluster!.gateway.replaceAll('.', '\\.')}:[0-9]+$`));
    const workerImages = (await cluster!.onWorker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout;
    expect(workerImages).toContain(`${registry}/slipway/${app}:v1`);

    // Every replica answers through the host's router: the dynos seen cover both nodes.
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < 4; i++) {
      const r = await platform!.fetchApp(app, { by: 'host' });
      expect(r.status, r.body).toBe(200);
      seen.add(/dyno=(\S+)/.exec(r.body)?.[1] ?? '?');
    }
    expect([...seen].sort()).toEqual(['web.1', 'web.2', 'web.3', 'web.4']);
    expect([...new Set([...seen].map((d) => nodeOfDyno.get(d)))].sort()).toEqual([cluster!.manager, cluster!.worker].sort());
    // The route table dials each task at its node's address (the node's Status.Addr).
    const conf = await fs.readFile(path.join(home, 'router', 'nginx.conf'), 'utf8');
    const block = new RegExp(`upstream app_${app} \\{([^}]*)\\}`).exec(conf)?.[1] ?? '';
    const hosts = [...block.matchAll(/server ([0-9.]+):[0-9]+;/g)].map((m) => m[1]!);
    expect(hosts).toHaveLength(4);
    expect([...new Set(hosts)].sort()).toEqual([cluster!.managerIp, cluster!.workerIp].sort());
  }, 600_000);
});
