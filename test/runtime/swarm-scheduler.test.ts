import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseLayers } from '../../buildpacks/builtins.js';
import { LAUNCHER_PATH, buildReleaseImage, removeAppImages, removeUnusedRuntimeImages } from '../../runtime/images.js';
import { scopeToInstance } from '../../runtime/instance-engine.js';
import { DockerSwarmScheduler, overlayName, taskUpstream } from '../../runtime/docker-swarm/scheduler.js';
import { parseServiceLine } from '../../runtime/docker-swarm/service-logs.js';
import { ensureRegistry, stopRegistry, configuredAddress, configuredPort, registryConfig, registrySummary } from '../../runtime/docker-swarm/registry.js';
import { checkConfigInput, defaults } from '../../core/config.js';
import { MAX_UPDATE_PARALLELISM, healthScript, rolloutWaitMs, serviceName, serviceSpec, updateParallelism } from '../../runtime/docker-swarm/service-spec.js';
import { ensureSwarm, swarmSummary } from '../../runtime/docker-swarm/swarm.js';
import type { ProcessSpec } from '../../runtime/containers.js';
import { STACK, TEST_LABELS, WEB_COMMAND, docker, httpGet, logger, makeAppDir, randomApp } from './helpers.js';

describe('swarm service spec (unit)', () => {
  const spec: ProcessSpec = { app: 'hello', type: 'web', index: 1, image: 'slipway/hello:v3', release: 3, command: 'npm start', env: { A: 'b' }, web: true, memory: '512m', cpus: 1.5 };
  const base = { spec, image: '127.0.0.1:5000/slipway/hello:v3', replicas: 2, isolation: { runsAsRoot: false, readonly: false }, network: 'net1', instanceLabels: { 'slipway.instance': 'i1' }, healthchecks: [], startPeriodMs: 60_000, monitorMs: 1500, graceSeconds: 10 };

  it('names services <app>_<type> (swarm refuses dots)', () => {
    expect(serviceName('hello', 'web')).toBe('hello_web');
  });

  it('updates start-first, rolls back on failure, publishes web on each node, keeps limits, labels and the slot in DYNO', () => {
    const s = serviceSpec(base) as Record<string, any>;
    expect(s.Name).toBe('hello_web');
    expect(s.Labels).toEqual({ 'slipway.instance': 'i1', 'slipway.app': 'hello', 'slipway.type': 'web', 'slipway.release': '3' });
    expect(s.UpdateConfig).toMatchObject({ Order: 'start-first', FailureAction: 'rollback' });
    expect(s.Mode).toEqual({ Replicated: { Replicas: 2 } });
    expect(s.EndpointSpec).toEqual({ Mode: 'dnsrr', Ports: [{ Protocol: 'tcp', TargetPort: 5000, PublishMode: 'host' }] });
    const c = s.TaskTemplate.ContainerSpec;
    expect(c.Image).toBe(base.image);
    expect(c.Args).toEqual(['npm start']);
    expect(c.Env).toEqual(expect.arrayContaining(['A=b', 'PORT=5000', 'DYNO=web.{{.Task.Slot}}']));
    expect(c.Labels).toEqual({ 'slipway.instance': 'i1', 'slipway.task.app': 'hello', 'slipway.task.type': 'web', 'slipway.task.release': '3' });
    expect(c.CapabilityDrop).toEqual(['ALL']);
    expect(c.Healthcheck.Test.slice(0, 2)).toEqual(['CMD', LAUNCHER_PATH]);
    expect(s.TaskTemplate.Resources.Limits).toMatchObject({ MemoryBytes: 512 * 1024 ** 2, NanoCPUs: 1.5e9 });
  });

  it('rolls out in bounded, health-gated batches, and rolls back the same way', () => {
    expect([1, 2, 4, 5, 8, 9, 10, 40].map(updateParallelism)).toEqual([1, 1, 1, 2, 2, 3, 3, MAX_UPDATE_PARALLELISM]);
    const s = serviceSpec({ ...base, replicas: 10 }) as Record<string, any>;
    const batch = { Parallelism: 3, Delay: 1500 * 1e6, Monitor: 1500 * 1e6, MaxFailureRatio: 0, Order: 'start-first' };
    expect(s.UpdateConfig).toEqual({ ...batch, FailureAction: 'rollback' });
    expect(s.RollbackConfig).toEqual({ ...batch, FailureAction: 'pause' });
  });

  it('waits for a rollout per batch: one replica as before, ten as four batches', () => {
    const t = { healthTimeoutMs: 60_000, settleMs: 1500 };
    expect(rolloutWaitMs({ ...t, replicas: 1 })).toBe(30_000 + 60_000 + 1500 + 3000);
    expect(rolloutWaitMs({ ...t, replicas: 10 })).toBe(30_000 + 4 * (60_000 + 1500 + 9000));
    expect(rolloutWaitMs({ ...t, replicas: 0 })).toBe(rolloutWaitMs({ ...t, replicas: 1 }));
  });

  it('gives non-web types no port and no health check', () => {
    const s = serviceSpec({ ...base, spec: { ...spec, type: 'worker', web: false } }) as Record<string, any>;
    expect(s.EndpointSpec).toEqual({ Mode: 'dnsrr' });
    expect(s.TaskTemplate.ContainerSpec.Healthcheck).toBeUndefined();
  });

  it('health script: a TCP connect without checks; quoted GETs with them', () => {
    expect(healthScript([])).toBe('exec 3<>/dev/tcp/127.0.0.1/5000 || exit 1');
    const s = healthScript([{ path: "/it's", content: 'o"k' }]);
    expect(s).toContain(`'/it'\\''s'`);
    expect(s).toContain(`*'o"k'*`);
  });

  it('routes a task at its node address, this node on loopback', () => {
    const status = { State: 'running', PortStatus: { Ports: [{ PublishedPort: 31000 }] } };
    const addrs = new Map([['n1', '127.0.0.1'], ['n2', '10.0.0.7']]);
    expect(taskUpstream({ NodeID: 'n1', Status: status }, addrs)).toBe('127.0.0.1:31000');
    expect(taskUpstream({ NodeID: 'n2', Status: status }, addrs)).toBe('10.0.0.7:31000');
    expect(taskUpstream({ NodeID: 'n2', Status: { State: 'starting' } }, addrs)).toBeNull();
  });

  it('reads service log lines with details into <app>.<type>.<slot>', () => {
    const slots = new Map([['task1', 'hello.web.2']]);
    const line = parseServiceLine('2026-01-01T00:00:00.5Z com.docker.swarm.node.id=n,com.docker.swarm.task.id=task1 hi there', slots, 'hello.web');
    expect(line).toEqual({ time: '2026-01-01T00:00:00.500000000Z', source: 'hello.web.2', text: 'hi there' });
  });

  it('registry config binds loopback and keeps its port', () => {
    const text = registryConfig({ storage: '/x/storage', port: 5123 });
    expect(text).toContain('addr: 127.0.0.1:5123');
    expect(configuredPort(text)).toBe(5123);
    expect(configuredAddress(text)).toBe('127.0.0.1:5123');
  });

  it('registry config binds the address nodes pull from when one is set (registryAddress)', () => {
    const text = registryConfig({ storage: '/x/storage', port: 5123, address: '10.1.2.1' });
    expect(text).toContain('  addr: 10.1.2.1:5123\n');
    expect(configuredAddress(text)).toBe('10.1.2.1:5123');
    expect(configuredPort(text)).toBe(5123);
    expect(configuredAddress('version: 0.1\n')).toBeNull();
  });

  it('registryAddress: loopback by default; an IPv4 address, never 0.0.0.0', () => {
    expect(defaults('/h').registryAddress).toBe('127.0.0.1');
    expect(checkConfigInput({ registryAddress: '10.1.2.1' }, 'test')).toEqual({ registryAddress: '10.1.2.1' });
    for (const bad of ['0.0.0.0', 'registry.example', '::1', '10.1.2.1:5000']) {
      expect(() => checkConfigInput({ registryAddress: bad }, 'test')).toThrow(/registryAddress must match pattern/);
    }
  });
});

describe('status lines of the swarm and the registry', () => {
  it('registry: moving it to another address (registryAddress) keeps its port and stops the old one', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-registry-'));
    try {
      const first = await ensureRegistry({ dir, logger, progress: () => {} });
      const port = first.split(':')[1];
      expect(first).toMatch(/^127\.0\.0\.1:[0-9]+$/);
      const oldPid = Number(await fs.readFile(path.join(dir, 'registry.pid'), 'utf8'));
      // Another loopback address stands for one other nodes reach: nothing else changes.
      const moved = await ensureRegistry({ dir, address: '127.0.0.2', logger, progress: () => {} });
      expect(moved).toBe(`127.0.0.2:${port}`);
      expect(await registrySummary(dir)).toBe(`running on ${moved}`);
      expect(Number(await fs.readFile(path.join(dir, 'registry.pid'), 'utf8'))).not.toBe(oldPid);
      // Adopted as it is when asked again for the same address.
      expect(await ensureRegistry({ dir, address: '127.0.0.2', logger, progress: () => {} })).toBe(moved);
    } finally {
      await stopRegistry(dir);
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('registry: not started without a config, stopped when its port does not answer', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-registry-'));
    try {
      expect(await registrySummary(dir)).toBe('not started yet (starts on the first docker-swarm deploy)');
      // Port 1 on loopback: nothing listens there.
      await fs.writeFile(path.join(dir, 'config.yml'), registryConfig({ storage: path.join(dir, 'storage'), port: 1 }));
      expect(await registrySummary(dir)).toMatch(/^stopped \(127\.0\.0\.1:1; starts again on the next docker-swarm deploy, see .*registry\.log\)$/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('swarm: this engine is an active manager with its nodes counted', async () => {
    await ensureSwarm(docker, { advertiseAddr: '127.0.0.1', progress: () => {} });
    expect(await swarmSummary(docker)).toMatch(/^active, manager, [0-9]+ nodes? \(([0-9]+) ready\)$/);
  });
});

describe('DockerSwarmScheduler (real engine)', () => {
  const app = randomApp();
  const scoped = scopeToInstance(docker, `swarm-test-${app}`);
  const images: string[] = [];
  let registryDir = '';
  let scheduler: DockerSwarmScheduler;
  let routes: string[] = [];
  const release = (version: number, processTypes: Record<string, string> = { web: WEB_COMMAND }) => ({ version, image: images[version - 1]!, processTypes, defaultConfig: {}, config: { GREETING: 'x' } });
  const deploy = (version: number, formation: Record<string, number> = {}, processTypes?: Record<string, string>) =>
    scheduler.deploy({ app: { name: app, config: {} }, release: release(version, processTypes), formation, onRoutes: async (u) => void (routes = u), progress: () => {} });

  beforeAll(async () => {
    await ensureSwarm(docker, { advertiseAddr: '127.0.0.1', progress: () => {} });
    registryDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-registry-'));
    const registry = await ensureRegistry({ dir: registryDir, logger, progress: () => {} });
    expect(await registrySummary(registryDir)).toBe(`running on ${registry}`);
    scheduler = new DockerSwarmScheduler({ docker: scoped, logger, registry: async () => registry, settleMs: 500, healthTimeoutMs: 20_000, graceSeconds: 1 });
    for (const [v, content] of [[1, 'content-v1'], [2, 'content-v2']] as const) {
      const dir = await makeAppDir(content);
      images.push(await buildReleaseImage({ docker: scoped, stackImage: STACK, appDir: dir, app, version: v, labels: TEST_LABELS, layers: releaseLayers(), onProgress: () => {} }));
      await fs.rm(dir, { recursive: true, force: true });
    }
    images.push(images[1]!);
  }, 300_000);

  afterAll(async () => {
    await scheduler?.removeApp(app).catch(() => undefined);
    await removeAppImages(scoped, app).catch(() => undefined);
    await removeUnusedRuntimeImages(scoped).catch(() => undefined);
    await stopRegistry(registryDir);
    await fs.rm(registryDir, { recursive: true, force: true });
  }, 120_000);

  it('deploys a service per type from the registry, each web task routed', async () => {
    const { upstreams } = await deploy(1);
    expect(upstreams).toEqual(routes);
    expect(upstreams).toHaveLength(1);
    expect((await httpGet(upstreams[0]!, '/index.html')).body).toBe('content-v1');
    const ps = await scheduler.processes(app);
    expect(ps.map((p) => [p.name, p.state, p.release])).toEqual([[`${app}.web.1`, 'running', 1]]);
    const svc = (await scoped.listServices({ filters: { name: [serviceName(app, 'web')] } }))[0] as unknown as { Spec: { TaskTemplate: { ContainerSpec: { Image: string } } } };
    expect(svc.Spec.TaskTemplate.ContainerSpec.Image).toMatch(new RegExp(`^127\\.0\\.0\\.1:[0-9]+/slipway/${app}:v1`));
  }, 120_000);

  it('scales 1 -> 3, all running and answering', async () => {
    const out = await scheduler.scale({ app: { name: app, config: {} }, release: release(1), wanted: new Map([['web', 3]]), onRoutes: async (u) => void (routes = u), progress: () => {} });
    expect(out).toEqual({ started: 2, stopped: 0, untouched: 1 });
    const ps = await scheduler.processes(app);
    expect(ps.map((p) => p.name)).toEqual([1, 2, 3].map((n) => `${app}.web.${n}`));
    expect(ps.every((p) => p.state === 'running' && p.upstream !== null)).toBe(true);
    expect(routes).toEqual(ps.map((p) => p.upstream).sort());
    for (const u of routes) expect((await httpGet(u, '/index.html')).body).toBe('content-v1');
    expect(await scheduler.hasProcesses(app)).toBe(true);
  }, 120_000);

  it('merges the logs of every task, named by slot', async () => {
    let text = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      text = '';
      await scheduler.logs({ app, lines: 50, follow: false, signal: new AbortController().signal, events: scheduler.events(), write: (t) => void (text += t) });
      if ([1, 2, 3].every((n) => text.includes(`${app}.web.${n}: greeting=`))) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const n of [1, 2, 3]) expect(text).toContain(`${app}.web.${n}: greeting=hello-from-profile port=5000 dyno=web.${n}`);
  }, 60_000);

  it('follows the logs of a service created after the follow began (a type scaled up from 0)', async () => {
    const processTypes = { web: WEB_COMMAND, worker: 'echo worker-up-$DYNO; exec sleep 600' };
    const stop = new AbortController();
    let text = '';
    const following = scheduler.logs({ app, lines: 0, follow: true, signal: stop.signal, events: scheduler.events(), write: (t) => void (text += t) });
    try {
      await new Promise((r) => setTimeout(r, 500));
      await scheduler.scale({ app: { name: app, config: {} }, release: release(1, processTypes), wanted: new Map([['worker', 1]]), onRoutes: async () => {}, progress: () => {} });
      const deadline = Date.now() + 30_000;
      while (!text.includes(`${app}.worker.1: worker-up-worker.1`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
    } finally {
      stop.abort();
      await following;
    }
    expect(text).toContain(`${app}.worker.1: worker-up-worker.1`);
  }, 90_000);

  it('rolls a new release out over 5 replicas two new tasks at a time, new tasks routed', async () => {
    // Scaled first: new replicas of a scale start together, as they should; only the update batches.
    await scheduler.scale({ app: { name: app, config: {} }, release: release(1), wanted: new Map([['web', 5]]), onRoutes: async (u) => void (routes = u), progress: () => {} });
    // Watch the tasks while the update runs: wanted running but not running yet = starting now.
    let watching = true;
    let mostStarting = 0;
    const watch = (async () => {
      while (watching) {
        const tasks = (await scoped.listTasks({ filters: { service: [serviceName(app, 'web')] } })) as { DesiredState: string; Status: { State: string } }[];
        mostStarting = Math.max(mostStarting, tasks.filter((t) => t.DesiredState === 'running' && t.Status.State !== 'running').length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await deploy(2, { web: 5 });
    } finally {
      watching = false;
      await watch;
    }
    expect(mostStarting).toBeGreaterThan(0);
    expect(mostStarting).toBeLessThanOrEqual(updateParallelism(5));
    expect(routes).toHaveLength(5);
    for (const u of routes) expect((await httpGet(u, '/index.html')).body).toBe('content-v2');
    expect((await scheduler.processes(app)).filter((p) => !p.retiring).every((p) => p.release === 2)).toBe(true);
  }, 180_000);

  it('rolls back a release whose tasks fail, and the previous one keeps serving', async () => {
    const serving = routes;
    await expect(deploy(3, { web: 5 }, { web: 'echo broken; exit 3' })).rejects.toThrow(/rolled back|failed/);
    expect(routes).toEqual(serving);
    for (const u of routes) expect((await httpGet(u, '/index.html')).body).toBe('content-v2');
    const svc = (await scoped.listServices({ filters: { name: [serviceName(app, 'web')] } }))[0] as unknown as { Spec: { Labels: Record<string, string> } };
    expect(svc.Spec.Labels['slipway.release']).toBe('2');
  }, 180_000);

  it('removeApp removes the services, the overlay network and the registry tags', async () => {
    await scheduler.removeApp(app);
    expect(await scoped.listServices({ filters: { label: [`slipway.app=${app}`] } })).toEqual([]);
    expect(await scheduler.processes(app)).toEqual([]);
    expect((await docker.listNetworks({ filters: { name: [overlayName(app)] } })).filter((n) => n.Name === overlayName(app))).toEqual([]);
    const tags = (await docker.listImages({ filters: { label: [`slipway.app=${app}`] } })).flatMap((i) => i.RepoTags ?? []);
    expect(tags.filter((t) => t.includes('/slipway/'))).toEqual([]);
    // Nothing of the swarm holds the release images any more: the platform's removal works.
    await removeAppImages(scoped, app);
    await removeUnusedRuntimeImages(scoped);
    expect(await docker.listImages({ filters: { reference: [`slipway/${app}`] } })).toEqual([]);
  }, 120_000);
});
