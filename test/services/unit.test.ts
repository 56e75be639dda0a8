import { describe, expect, it } from 'vitest';
import { openDb } from '../../core/db.js';
import { parseLinkVar, parseServiceName, ServiceStore } from '../../core/service-store.js';
import { containerOptions } from '../../runtime/containers.js';
import { linkNetworkName, maskedUrl, serviceContainerOptions, serviceUrl } from '../../runtime/service-containers.js';
import { serviceImageRef, SERVICE_RECIPES } from '../../runtime/service-images.js';
import { mmdebstrapArgs } from '../../runtime/stack.js';
import { throwsOneLine } from '../support/errors.js';

const origin = { actor: 'admin', source: 'test' };

describe('services (unit)', () => {
  it('names images by recipe hash under the platform namespace, built from the Debian packages', () => {
    expect(serviceImageRef('postgres')).toMatch(/^slipway-platform\/postgres:[0-9a-f]{12}$/);
    expect(serviceImageRef('redis')).toMatch(/^slipway-platform\/redis:[0-9a-f]{12}$/);
    const args = mmdebstrapArgs(SERVICE_RECIPES.postgres, '/tmp/x.tar', ['/etc/apt/sources.list']);
    expect(args).toContain('--include=postgresql-15');
    expect(args.some((a) => a.startsWith('--essential-hook=') && a.includes('postgres:x:999:999'))).toBe(true);
    // No mirror host is ever written: the machine's own apt sources are passed as files.
    expect(args.join(' ')).not.toMatch(/https?:\/\//);
  });

  it('builds URLs and masks their passwords', () => {
    expect(serviceUrl('postgres', 'db', 'abc')).toBe('postgres://postgres:abc@slipway-postgres-db:5432/db');
    expect(serviceUrl('redis', 'cache', 'abc')).toBe('redis://:abc@slipway-redis-cache:6379');
    expect(maskedUrl('postgres://postgres:abc@h:5432/db')).toBe('postgres://postgres:****@h:5432/db');
    expect(maskedUrl('redis://:abc@h:6379')).toBe('redis://:****@h:6379');
  });

  it('confines the service container and publishes nothing', () => {
    const o = serviceContainerOptions({ kind: 'redis', name: 'cache', image: 'i', password: 'p', dataDir: '/d', ioDir: '/io' });
    expect(o.name).toBe('slipway.redis.cache');
    expect(o.HostConfig!.CapDrop).toEqual(['ALL']);
    expect(o.HostConfig!.PortBindings).toBeUndefined();
    expect(o.HostConfig!.RestartPolicy).toEqual({ Name: 'unless-stopped' });
    expect(o.HostConfig!.NetworkMode).toBe('slipway-svc-redis-cache');
    expect(o.Healthcheck!.Test!.join(' ')).not.toContain('"p"');
  });

  it('names link networks per service and app', () => {
    expect(linkNetworkName('postgres', 'db', 'shop')).toBe('slipway-link-postgres-db-shop');
    const spec = { app: 'shop', type: 'web', index: 1, image: 'i', release: 1, command: 'x', env: {}, web: true };
    // The app's own network stays the container's first; links join after create.
    expect(containerOptions(spec, 'shop.web.1', { network: 'slipway-app-shop', links: ['l'], runsAsRoot: false, readonly: false }).HostConfig!.NetworkMode).toBe('slipway-app-shop');
  });

  it('refuses bad names and variables in one line', () => {
    expect(throwsOneLine(() => parseServiceName('Bad_Name')).exitCode).toBe(2);
    expect(throwsOneLine(() => parseLinkVar('1X')).exitCode).toBe(2);
    expect(parseLinkVar('CACHE_URL')).toBe('CACHE_URL');
  });

  it('stores services, owners and links; refuses linking twice, clashing vars and removal while linked', () => {
    const db = openDb(':memory:');
    const store = new ServiceStore(db);
    store.create(origin, { kind: 'postgres', name: 'db', password: 'p', image: 'i', owner: 'admin' });
    expect(store.get('postgres', 'db').owners).toEqual(['admin']);
    throwsOneLine(() => store.create(origin, { kind: 'postgres', name: 'db', password: 'p', image: 'i', owner: 'admin' }));
    store.addLink(origin, { kind: 'postgres', name: 'db', app: 'shop', var: 'DATABASE_URL' });
    expect(throwsOneLine(() => store.addLink(origin, { kind: 'postgres', name: 'db', app: 'shop', var: 'X' })).message).toMatch(/already linked/);
    store.create(origin, { kind: 'postgres', name: 'db2', password: 'p', image: 'i', owner: 'admin' });
    expect(throwsOneLine(() => store.addLink(origin, { kind: 'postgres', name: 'db2', app: 'shop', var: 'DATABASE_URL' })).message).toMatch(/--as/);
    expect(throwsOneLine(() => store.remove(origin, 'postgres', 'db')).message).toMatch(/linked to shop/);
    expect(store.forgetApp('shop').map((l) => l.name)).toEqual(['db']);
    store.remove(origin, 'postgres', 'db');
    expect(store.find('postgres', 'db')).toBeNull();
    db.close();
  });
});
