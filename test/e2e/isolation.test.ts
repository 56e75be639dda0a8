import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectFrom, startHostService } from '../support/host-service.js';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';

interface Inspected {
  Id: string;
  HostConfig: { SecurityOpt: string[] | null; CapDrop: string[] | null; CapAdd: string[] | null; PidsLimit: number | null; ReadonlyRootfs: boolean; NetworkMode: string };
  NetworkSettings: { Networks: Record<string, { IPAddress: string; Gateway: string }> };
}
const inspect = async (name: string): Promise<Inspected> => JSON.parse((await run('docker', ['inspect', name])).stdout)[0];
const exec = async (container: string, script: string) => run('docker', ['exec', container, 'bash', '-c', script]);

// Two apps pushed through the real platform: a buildpack app and a Dockerfile app that runs as
// root with a read-only root filesystem. Neither reaches the other nor the host; the router
// reaches both. docs/security.md "App containers".
describe('app isolation: confined containers on per-app networks', () => {
  let platform: TestPlatform;
  const a = uniqueApp('iso-a');
  const b = uniqueApp('iso-b');
  let hostServer: net.Server;
  let hostPort: number;

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(a);
    await platform.createApp(b);
    ({ server: hostServer, port: hostPort } = await startHostService());
  }, 300_000);

  afterAll(async () => {
    hostServer?.close();
    await platform?.stop();
  }, 180_000);

  it('deploys both apps and the router reaches each', async () => {
    const wcA = await platform.workingCopy('node-hello');
    const pushA = await platform.push(wcA, platform.sshRemote(a));
    expect(pushA.code, pushA.stderr).toBe(0);

    const wcB = await fs.mkdtemp(path.join(platform.home, 'wc-'));
    await fs.mkdir(path.join(wcB, 'site'));
    await fs.writeFile(path.join(wcB, 'site', 'index.html'), 'docker root app\n');
    // No USER: the image runs as root.
    await fs.writeFile(path.join(wcB, 'Dockerfile'), [`FROM ${stackImage}`, 'WORKDIR /srv', 'COPY site/ /srv/', 'CMD python3 -m http.server $PORT', ''].join('\n'));
    await fs.writeFile(path.join(wcB, 'app.json'), JSON.stringify({ slipway: { readonly: true } }));
    await platform.git(wcB, ['init', '-q', '--initial-branch=main']);
    await platform.commitAll(wcB, 'initial');
    const pushB = await platform.push(wcB, platform.sshRemote(b));
    expect(pushB.code, pushB.stderr).toBe(0);

    expect((await platform.fetchApp(a, { by: 'host' })).body).toContain('hello from node-hello');
    expect(await platform.fetchApp(b, { by: 'host' })).toMatchObject({ status: 200, body: 'docker root app\n' });
    // By path the full path reaches the app: python's file server answering 404 is the app.
    expect((await platform.fetchApp(b, { by: 'path' })).body).toContain('Nothing matches the given URI');
  }, 600_000);

  it('runs the buildpack app with no-new-privileges, no capabilities, a pids limit and no setuid programs', async () => {
    const info = await inspect(`${a}.web.1`);
    expect(info.HostConfig).toMatchObject({ SecurityOpt: ['no-new-privileges:true'], CapDrop: ['ALL'], CapAdd: null, PidsLimit: 1024, ReadonlyRootfs: false, NetworkMode: `slipway-app-${a}` });
    const status = await exec(`${a}.web.1`, 'grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; find / -xdev -perm -4000 2>/dev/null; true');
    expect(status.stdout).toMatch(/^CapEff:\s+0+\nNoNewPrivs:\s+1\n$/);
  });

  it('gives the root Dockerfile app only the documented capabilities and a read-only root with a writable /tmp', async () => {
    const info = await inspect(`${b}.web.1`);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect([...(info.HostConfig.CapAdd ?? [])].sort()).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE', 'SETGID', 'SETUID']);
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    const probe = await exec(`${b}.web.1`, 'id -u; touch /srv/x 2>&1; touch /tmp/x && echo tmp-ok; grep NoNewPrivs /proc/self/status');
    expect(probe.stdout).toMatch(/^0\n/);
    expect(probe.stdout).toMatch(/Read-only file system/);
    expect(probe.stdout).toContain('tmp-ok');
    expect(probe.stdout).toMatch(/NoNewPrivs:\s+1/);
  });

  it("cannot reach the other app's container, which the host reaches", async () => {
    const aIp = (await inspect(`${a}.web.1`)).NetworkSettings.Networks[`slipway-app-${a}`]!.IPAddress;
    const bIp = (await inspect(`${b}.web.1`)).NetworkSettings.Networks[`slipway-app-${b}`]!.IPAddress;
    expect((await run('curl', ['-s', '-m', '5', `http://${bIp}:5000/`])).stdout).toBe('docker root app\n');
    expect(await connectFrom(`${a}.web.1`, bIp, 5000)).not.toBe(0);
    expect(await connectFrom(`${b}.web.1`, aIp, 5000)).not.toBe(0);
  });

  it('cannot reach a service the host runs on every interface', async () => {
    const gateway = (await inspect(`${a}.web.1`)).NetworkSettings.Networks[`slipway-app-${a}`]!.Gateway;
    expect(await connectFrom(`${a}.web.1`, gateway, hostPort)).not.toBe(0);
    // Nor the platform's own ports.
    expect(await connectFrom(`${a}.web.1`, gateway, platform.httpPort)).not.toBe(0);
    const iptables = await run('iptables', ['-S', 'INPUT']);
    expect(iptables.stdout).toContain('-A INPUT -i slwa+ -j SLIPWAY-APPS');
  });

  it('keeps the read-only setting in the next release (config change), and apps:destroy removes the network', async () => {
    const set = await platform.cli(['config:set', b, 'X=1']);
    expect(set.code, set.stderr).toBe(0);
    expect((await inspect(`${b}.web.1`)).HostConfig.ReadonlyRootfs).toBe(true);

    const destroy = await platform.cli(['apps:destroy', a, '--force']);
    expect(destroy.code, destroy.stderr).toBe(0);
    const nets = await run('docker', ['network', 'ls', '--format', '{{.Name}}']);
    expect(nets.stdout).not.toContain(`slipway-app-${a}`);
    expect(nets.stdout).toContain(`slipway-app-${b}`);
    expect((await platform.fetchApp(b, { by: 'host' })).body).toBe('docker root app\n');
  }, 300_000);
});
