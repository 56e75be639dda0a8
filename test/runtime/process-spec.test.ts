import { describe, expect, it } from 'vitest';
import type { AppRecord, Release } from '../../core/store.js';
import { containerOptions, specIsolation, upstreamOf } from '../../runtime/containers.js';
import { processInfo } from '../../runtime/docker-local/scheduler.js';
import { processSpec, releaseEnv } from '../../runtime/process-spec.js';

// The one builder every start path uses (deploy, scale, ps:start, daemon recovery, release phase):
// what it returns decides limits, environment and ports, so a path cannot drift from another.
const app: Pick<AppRecord, 'name' | 'config' | 'limits'> = { name: 'shop', config: { A: 'user', SHARED: 'user' }, limits: { memory: '256m', cpus: 0.5 } };
const release: Pick<Release, 'version' | 'image' | 'processTypes' | 'defaultConfig' | 'config'> = {
  version: 7,
  image: 'slipway/shop:v7',
  processTypes: { web: 'node server.js', worker: 'node worker.js', release: 'node migrate.js' },
  defaultConfig: { SHARED: 'buildpack', B: 'buildpack' },
  config: { A: 'release', SHARED: 'release' },
};
const image = { runsAsRoot: false, readonly: false };

describe('processSpec (unit)', () => {
  it('a web process: its command, release, env (user config over buildpack defaults) and limits', () => {
    expect(processSpec(app, release, 'web', 2)).toEqual({
      app: 'shop',
      type: 'web',
      index: 2,
      image: 'slipway/shop:v7',
      release: 7,
      command: 'node server.js',
      env: { SHARED: 'release', B: 'buildpack', A: 'release' },
      web: true,
      memory: '256m',
      cpus: 0.5,
    });
  });

  it('takes the release\'s config, or the app\'s when the release has none (made before configs were recorded)', () => {
    expect(releaseEnv(release, app)).toEqual({ SHARED: 'release', B: 'buildpack', A: 'release' });
    const { config: _none, ...old } = release;
    expect(releaseEnv(old, app)).toEqual({ SHARED: 'user', B: 'buildpack', A: 'user' });
  });

  it('limits reach the engine spec; no limits, no Memory or NanoCpus', () => {
    const host = containerOptions(processSpec(app, release, 'worker', 1), 'shop.worker.1', specIsolation(processSpec(app, release, 'worker', 1), image, 'net')).HostConfig!;
    expect(host.Memory).toBe(256 * 1024 * 1024);
    expect(host.NanoCpus).toBe(5e8);
    const bare = processSpec({ name: 'shop', config: {} }, release, 'worker', 1);
    expect(bare).not.toHaveProperty('memory');
    expect(bare).not.toHaveProperty('cpus');
    const plain = containerOptions(bare, 'shop.worker.1', specIsolation(bare, image, 'net')).HostConfig!;
    expect(plain.Memory).toBeUndefined();
    expect(plain.NanoCpus).toBeUndefined();
  });

  it('only web gets $PORT and a loopback port binding; other types get neither', () => {
    const web = processSpec(app, release, 'web', 1);
    const webOpts = containerOptions(web, 'shop.web.1', specIsolation(web, image, 'net'));
    expect(webOpts.Env).toContain('PORT=5000');
    expect(webOpts.Env).toContain('DYNO=web.1');
    expect(webOpts.ExposedPorts).toEqual({ '5000/tcp': {} });
    expect(webOpts.HostConfig!.PortBindings).toEqual({ '5000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
    const worker = processSpec(app, release, 'worker', 3);
    const workerOpts = containerOptions(worker, 'shop.worker.3', specIsolation(worker, image, 'net'));
    expect(workerOpts.Env!.some((e) => e.startsWith('PORT='))).toBe(false);
    expect(workerOpts.ExposedPorts).toBeUndefined();
    expect(workerOpts.HostConfig!.PortBindings).toBeUndefined();
    expect(workerOpts.Labels).toMatchObject({ 'slipway.app': 'shop', 'slipway.type': 'worker', 'slipway.index': '3', 'slipway.release': '7' });
  });

  it('a read-only image (app.json) gets a read-only root and /tmp, whatever the type', () => {
    for (const type of ['web', 'worker', 'release']) {
      const spec = processSpec(app, release, type, 1);
      const host = containerOptions(spec, `shop.${type}.1`, specIsolation(spec, { runsAsRoot: false, readonly: true }, 'net')).HostConfig!;
      expect(host.ReadonlyRootfs, type).toBe(true);
      expect(Object.keys(host.Tmpfs ?? {}), type).toEqual(['/tmp']);
      expect(host.Memory, type).toBe(256 * 1024 * 1024);
    }
  });

  it('the release phase runs the release command, not as web', () => {
    expect(processSpec(app, release, 'release', 1)).toMatchObject({ command: 'node migrate.js', web: false, type: 'release' });
  });

  it('extra labels (tests mark their containers) join the platform\'s, which win', () => {
    const spec = processSpec(app, release, 'web', 1, { 'slipway.test': 'yes', 'slipway.app': 'evil' });
    const labels = containerOptions(spec, 'x', specIsolation(spec, image, 'net')).Labels!;
    expect(labels['slipway.test']).toBe('yes');
    expect(labels['slipway.app']).toBe('shop');
  });

  it('the upstream of a web container is its loopback port', () => {
    expect(upstreamOf(49153)).toBe('127.0.0.1:49153');
  });
});

describe('docker-local process listing (unit)', () => {
  const summary = (name: string, o: { type?: string; state?: string; port?: number } = {}) =>
    ({
      Id: `id-${name}`,
      Names: [`/${name}`],
      State: o.state ?? 'running',
      Labels: { 'slipway.app': 'shop', 'slipway.type': o.type ?? 'web', 'slipway.index': '2', 'slipway.release': '7' },
      Ports: o.port ? [{ PrivatePort: 5000, PublicPort: o.port, Type: 'tcp', IP: '127.0.0.1' }] : [],
    }) as unknown as Parameters<typeof processInfo>[0];

  it('reports name, type, index, state, release and the upstream of its loopback port', () => {
    expect(processInfo(summary('shop.web.2', { port: 49153 }))).toEqual({
      id: 'id-shop.web.2',
      name: 'shop.web.2',
      app: 'shop',
      type: 'web',
      index: 2,
      state: 'running',
      release: 7,
      upstream: '127.0.0.1:49153',
      retiring: false,
    });
  });

  it('a worker has no upstream; a container moved aside by a deploy is retiring', () => {
    expect(processInfo(summary('shop.worker.2', { type: 'worker' })).upstream).toBeNull();
    expect(processInfo(summary('shop.web.2.old-0123456789ab', { port: 49154, state: 'exited' }))).toMatchObject({ retiring: true, state: 'exited' });
  });
});
