import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPS_CHAIN, appsChainRules, inputJumps, installAppFirewall, type Runner } from '../../platform/firewall.js';
import { containerOptions, startProcess, type ProcessSpec } from '../../runtime/containers.js';
import { parseAppSettings } from '../../runtime/healthchecks.js';
import { buildReleaseImage } from '../../runtime/images.js';
import { APP_PIDS_LIMIT, READONLY_LABEL, ROOT_CAPABILITIES, hardenedHostConfig, imageIsolation, isolationLabels, userIsRoot } from '../../runtime/isolation.js';
import { appNetworkName, bridgeName, cidrRange, networkLabels, pickSubnet } from '../../runtime/networks.js';
import { connectFrom, startHostService } from '../support/host-service.js';
import { run } from '../support/platform.js';
import { STACK, TEST_LABELS, WEB_COMMAND, cleanupApp, docker, logger, makeAppDir, randomApp } from './helpers.js';
import { releaseLayers } from '../../buildpacks/builtins.js';

const spec: ProcessSpec = { app: 'shop', type: 'web', index: 1, image: 'slipway/shop:v1', release: 1, command: 'x', env: {}, web: true };

describe('container hardening (unit)', () => {
  it('drops every capability, forbids new privileges, bounds pids and joins the app network', () => {
    const host = containerOptions(spec, 'shop.web.1', { network: 'slipway-app-shop', runsAsRoot: false, readonly: false }).HostConfig!;
    expect(host.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd).toBeUndefined();
    expect(host.PidsLimit).toBe(APP_PIDS_LIMIT);
    expect(host.NetworkMode).toBe('slipway-app-shop');
    expect(host.ReadonlyRootfs).toBeUndefined();
    // What the spec had before stays: loopback-only port, restart policy, init.
    expect(host.PortBindings).toEqual({ '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
    expect(host.Init).toBe(true);
  });

  it('gives a root image back only the documented capabilities, and applies limits and read-only', () => {
    const host = hardenedHostConfig({ network: 'n', runsAsRoot: true, readonly: true, memory: 512 * 1024 ** 2, nanoCpus: 1.5e9 });
    expect(host.CapAdd).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID', 'NET_BIND_SERVICE', 'KILL']);
    expect(ROOT_CAPABILITIES).not.toContain('NET_RAW');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(Object.keys(host.Tmpfs ?? {})).toEqual(['/tmp']);
    expect(host.Memory).toBe(512 * 1024 ** 2);
    expect(host.NanoCpus).toBe(1.5e9);
  });

  it('reads root and read-only from the image; only "true" from app.json turns read-only on', () => {
    for (const user of [undefined, null, '', 'root', '0', '0:0', 'root:staff']) expect(userIsRoot(user), String(user)).toBe(true);
    for (const user of ['1000', '1000:1000', 'app', 'node:node']) expect(userIsRoot(user), user).toBe(false);
    expect(imageIsolation({ User: '1000:1000', Labels: { [READONLY_LABEL]: 'true' } })).toEqual({ runsAsRoot: false, readonly: true });
    expect(imageIsolation({ User: '', Labels: { [READONLY_LABEL]: 'yes' } })).toEqual({ runsAsRoot: true, readonly: false });
    expect(imageIsolation(undefined)).toEqual({ runsAsRoot: true, readonly: false });
    expect(isolationLabels({ readonly: false })).toEqual({ [READONLY_LABEL]: 'false' });
  });

  it('parses app.json "slipway": {"readonly": true} and refuses unknown or mistyped settings', () => {
    expect(parseAppSettings('{}')).toEqual({ healthchecks: [], readonly: false });
    expect(parseAppSettings('{"slipway":{"readonly":true}}').readonly).toBe(true);
    expect(() => parseAppSettings('{"slipway":{"readOnly":true}}')).toThrow(/^app\.json: slipway\.readOnly is not a known field: fix it and push again$/);
    expect(() => parseAppSettings('{"slipway":{"readonly":"yes"}}')).toThrow(/^app\.json: slipway\.readonly must be boolean: fix it and push again$/);
  });
});

describe('app networks (unit)', () => {
  it('names the network and its bridge so one firewall rule matches every app', () => {
    expect(appNetworkName('shop')).toBe('slipway-app-shop');
    expect(() => appNetworkName('../x')).toThrow(/invalid app name/);
    const bridge = bridgeName(appNetworkName('a-very-long-app-name-of-30-chr'));
    expect(bridge).toMatch(/^slwa[0-9a-f]{11}$/);
    expect(bridge.length).toBeLessThanOrEqual(15);
    expect(bridgeName('slipway-app-a')).not.toBe(bridgeName('slipway-app-b'));
    expect(networkLabels('shop')).toEqual({ 'slipway.app': 'shop', 'slipway.network': 'app' });
  });

  it('picks the first free /24 of the pool, skipping anything that overlaps', () => {
    expect(pickSubnet([])).toBe('172.24.0.0/24');
    expect(pickSubnet(['172.17.0.0/16', '172.24.0.0/24', '172.24.1.128/25', 'fd00::/64'])).toBe('172.24.2.0/24');
    expect(pickSubnet(['172.24.0.0/16'])).toBe('172.25.0.0/24');
    // A host route that covers the whole pool leaves nothing.
    expect(pickSubnet(['172.16.0.0/12'])).toBeNull();
    expect(pickSubnet([], '10.0.0.0/23')).toBe('10.0.0.0/24');
    expect(cidrRange('172.24.0.0/13')).toEqual({ start: 0xac180000, end: 0xac1fffff });
    expect(cidrRange('300.1.1.1/8')).toBeNull();
  });
});

describe('app-to-host firewall (unit)', () => {
  it('installs the chain atomically and the INPUT jump once, for IPv4 and IPv6', async () => {
    const calls: string[][] = [];
    const jumps = new Set<string>();
    const fake: Runner = async (argv, input) => {
      calls.push(input ? [...argv, input] : argv);
      const [bin, , op, chain, ...rest] = argv;
      const key = [bin, chain, ...(op === '-I' ? rest.slice(1) : rest)].join(' ');
      if (op === '-C') return { code: jumps.has(key) ? 0 : 1, stderr: '' };
      if (op === '-I') jumps.add(key);
      return { code: 0, stderr: '' };
    };
    expect(await installAppFirewall({ logger, run: fake })).toEqual({ installed: ['iptables', 'ip6tables'], failed: [] });
    await installAppFirewall({ logger, run: fake });
    // Installed once each, however often the daemon starts.
    expect(calls.filter((c) => c[2] === '-I')).toEqual([
      ['iptables', '-w', '-I', 'INPUT', '1', '-i', 'slwa+', '-j', APPS_CHAIN],
      ['iptables', '-w', '-I', 'INPUT', '1', '-i', 'docker_gwbridge', '-j', APPS_CHAIN],
      ['ip6tables', '-w', '-I', 'INPUT', '1', '-i', 'slwa+', '-j', APPS_CHAIN],
      ['ip6tables', '-w', '-I', 'INPUT', '1', '-i', 'docker_gwbridge', '-j', APPS_CHAIN],
    ]);
    expect(calls[0]).toEqual(['iptables-restore', '-w', '--noflush', appsChainRules()]);
    expect(appsChainRules()).toMatch(/RELATED,ESTABLISHED -j RETURN\n.*REJECT --reject-with tcp-reset\n.*-j REJECT\nCOMMIT/);
    expect(inputJumps()).toEqual([
      ['INPUT', '-i', 'slwa+', '-j', APPS_CHAIN],
      ['INPUT', '-i', 'docker_gwbridge', '-j', APPS_CHAIN],
    ]);
  });

  it('warns and goes on when iptables is missing', async () => {
    const warnings: string[] = [];
    const log = { ...logger, warn: (_: unknown, msg: string) => void warnings.push(msg), info: () => undefined } as unknown as typeof logger;
    const missing: Runner = async () => ({ code: 127, stderr: 'spawn iptables-restore ENOENT' });
    expect(await installAppFirewall({ logger: log, run: missing })).toEqual({ installed: [], failed: ['iptables', 'ip6tables'] });
    expect(warnings[0]).toMatch(/app containers can reach services on this host; install iptables/);
  });
});

async function inspect(id: string): Promise<{ HostConfig: Record<string, unknown>; NetworkSettings: { Networks: Record<string, { IPAddress: string; Gateway: string }> } }> {
  return JSON.parse((await run('docker', ['inspect', id])).stdout)[0];
}

describe('confined app containers (real engine)', () => {
  const a = randomApp();
  const b = randomApp();
  let aImage: string;
  let bImage: string;
  let aId: string;
  let bId: string;
  let hostServer: net.Server;
  let hostPort: number;
  const control = `slipway-test-control-${a}`;

  beforeAll(async () => {
    await installAppFirewall({ logger });
    const appDir = await makeAppDir('isolation');
    const build = (app: string, labels: Record<string, string>) => buildReleaseImage({ docker, stackImage: STACK, appDir, app, version: 1, labels: { ...TEST_LABELS, ...labels }, layers: releaseLayers(), onProgress: () => {} });
    aImage = await build(a, isolationLabels({ readonly: false }));
    bImage = await build(b, isolationLabels({ readonly: true }));
    const base = { type: 'web', index: 1, release: 1, command: WEB_COMMAND, env: {}, web: true, extraLabels: TEST_LABELS, memory: '256m' };
    aId = (await startProcess(docker, { ...base, app: a, image: aImage })).id;
    bId = (await startProcess(docker, { ...base, app: b, image: bImage })).id;
    ({ server: hostServer, port: hostPort } = await startHostService());
  }, 300_000);

  afterAll(async () => {
    hostServer?.close();
    await run('docker', ['rm', '-f', control]);
    await cleanupApp(a);
    await cleanupApp(b);
  });

  it('runs with no-new-privileges, no capabilities, a pids limit and the memory limit', async () => {
    const info = await inspect(aId);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd).toBeNull();
    expect(info.HostConfig.PidsLimit).toBe(APP_PIDS_LIMIT);
    expect(info.HostConfig.Memory).toBe(256 * 1024 ** 2);
    const status = await run('docker', ['exec', aId, 'bash', '-c', 'grep -E "^(CapEff|CapPrm|NoNewPrivs)" /proc/self/status']);
    expect(status.stdout).toMatch(/CapPrm:\s+0+\n/);
    expect(status.stdout).toMatch(/CapEff:\s+0+\n/);
    expect(status.stdout).toMatch(/NoNewPrivs:\s+1/);
  });

  it('has no setuid or setgid program in the image', async () => {
    const found = await run('docker', ['exec', aId, 'bash', '-c', 'find / -xdev -type f -perm /6000 2>/dev/null; true']);
    expect(found.stdout.trim()).toBe('');
    // The stack image it is built on had some (su, passwd, ...): the release removed them.
    const stack = await run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'find', STACK, '/', '-xdev', '-type', 'f', '-perm', '/4000']);
    expect(stack.stdout.trim()).not.toBe('');
  });

  it('puts each app on its own network and bridge, with inter-container traffic off', async () => {
    const aNet = await docker.getNetwork(appNetworkName(a)).inspect();
    expect(aNet.Options).toMatchObject({ 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.name': bridgeName(appNetworkName(a)) });
    expect(aNet.Labels).toMatchObject(networkLabels(a));
    const bNet = await docker.getNetwork(appNetworkName(b)).inspect();
    expect(aNet.IPAM?.Config?.[0]?.Subnet).toMatch(/^172\.(2[4-9]|3[01])\.\d+\.0\/24$/);
    expect(aNet.IPAM?.Config?.[0]?.Subnet).not.toBe(bNet.IPAM?.Config?.[0]?.Subnet);
    expect(Object.keys((await inspect(aId)).NetworkSettings.Networks)).toEqual([appNetworkName(a)]);
  });

  it("cannot connect to another app's container, which the host can reach", async () => {
    const bIp = (await inspect(bId)).NetworkSettings.Networks[appNetworkName(b)]!.IPAddress;
    // B listens: the host reaches it (the probe works)...
    const fromHost = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: bIp, port: 5000 }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    expect(fromHost).toBe(true);
    // ...but A does not.
    expect(await connectFrom(aId, bIp, 5000)).not.toBe(0);
  });

  it('cannot connect to a host service listening on every interface; a container on the default bridge can', async () => {
    const gateway = (await inspect(aId)).NetworkSettings.Networks[appNetworkName(a)]!.Gateway;
    expect(await connectFrom(aId, gateway, hostPort)).not.toBe(0);
    // The way app containers ran before: on Docker's default bridge, the same probe connects.
    const started = await run('docker', ['run', '-d', '--name', control, '--label', 'slipway.test=1', '--entrypoint', 'sleep', STACK, '60']);
    expect(started.code, started.stderr).toBe(0);
    const controlGateway = (await inspect(control)).NetworkSettings.Networks.bridge!.Gateway;
    expect(await connectFrom(control, controlGateway, hostPort)).toBe(0);
  });

  it('runs an app.json read-only app with a read-only root and a writable /tmp', async () => {
    const info = await inspect(bId);
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(Object.keys(info.HostConfig.Tmpfs as object)).toEqual(['/tmp']);
    const write = await run('docker', ['exec', bId, 'bash', '-c', 'touch /app/x 2>&1; touch /tmp/x && echo tmp-ok']);
    expect(write.stdout).toMatch(/Read-only file system/);
    expect(write.stdout).toContain('tmp-ok');
    expect((await inspect(aId)).HostConfig.ReadonlyRootfs).toBe(false);
  });
});
