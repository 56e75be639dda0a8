import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceCondition } from '../../runtime/service-containers.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

const origin = { actor: 'admin', source: 'test' };

// `ps` and `status` name linked services; `<kind>:logs` refuses bad input under the lines they always printed (README "Services").
describe('ps and status with services (unit)', () => {
  let mini: MiniPlatform;

  beforeAll(async () => {
    mini = await miniPlatform();
    for (const app of ['shop', 'plain']) await mini.platform.createApp(app);
    const store = mini.platform.services.store;
    store.create(origin, { kind: 'postgres', name: 'db', password: 'p', image: 'i', owner: 'admin' });
    store.create(origin, { kind: 'redis', name: 'cache', password: 'p', image: 'i', owner: 'admin' });
    store.addLink(origin, { kind: 'postgres', name: 'db', app: 'shop', var: 'DATABASE_URL' });
    store.addLink(origin, { kind: 'redis', name: 'cache', app: 'shop', var: 'REDIS_URL' });
    Object.assign(mini.platform, { status: async () => ({ daemon: 'running', docker: 'running', router: 'running', ssh: ':2222', http: ':8080', stackImage: 's', apps: 2 }) });
  });
  afterAll(() => mini?.close());

  it('says how a service is in one word: the health verdict while running, else the state', () => {
    expect(serviceCondition({ status: 'running', health: 'healthy' })).toBe('healthy');
    expect(serviceCondition({ status: 'running', health: 'starting' })).toBe('starting');
    expect(serviceCondition({ status: 'running', health: null })).toBe('running');
    expect(serviceCondition({ status: 'exited', health: 'unhealthy' })).toBe('exited');
    expect(serviceCondition({ status: 'missing', health: null })).toBe('missing');
  });

  it('ps: one `service <kind> <name> <condition>` line per link; an app without links prints as before', async () => {
    const shop = await mini.run(['ps', 'shop'], 'cli');
    expect(shop.code, shop.err).toBe(0);
    expect(shop.out.split('\n')).toEqual(['no containers: deploy with `git push` or scale with `slipway ps:scale shop web=1`', 'service postgres db missing', 'service redis cache missing', '']);
    const plain = await mini.run(['ps', 'plain'], 'cli');
    expect(plain.out).toBe('no containers: deploy with `git push` or scale with `slipway ps:scale plain web=1`\n');
    // --json stays the list of containers.
    expect(JSON.parse((await mini.run(['ps', 'shop', '--json'], 'cli')).out)).toEqual([]);
  });

  it('status: a row per service the caller manages, after the platform rows; --json lists them', async () => {
    const r = await mini.run(['status'], 'cli');
    expect(r.code, r.err).toBe(0);
    const rows = r.out.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^daemon\s+running$/);
    expect(rows.slice(-2).map((l) => l.replace(/\s+/g, ' '))).toEqual(['postgres db missing (linked: shop)', 'redis cache missing (linked: shop)']);
    const j = JSON.parse((await mini.run(['status', '--json'], 'cli')).out);
    expect(j.apps).toBe(2);
    expect(j.services).toEqual([
      { kind: 'postgres', name: 'db', condition: 'missing', links: ['shop'] },
      { kind: 'redis', name: 'cache', condition: 'missing', links: ['shop'] },
    ]);
  });

  it('services <app>: the linked services with their variables, never a password; an app without says how to link', async () => {
    const r = await mini.run(['services', 'shop'], 'cli');
    expect(r.code, r.err).toBe(0);
    expect(r.out.trimEnd().split('\n').map((l) => l.replace(/\s+/g, ' '))).toEqual(['KIND NAME VARIABLE CONDITION', 'postgres db DATABASE_URL missing', 'redis cache REDIS_URL missing']);
    const j = JSON.parse((await mini.run(['services', 'shop', '--json'], 'cli')).out) as Record<string, string>[];
    expect(j.map((x) => Object.keys(x).sort())).toEqual([['condition', 'kind', 'linkedAt', 'name', 'var'], ['condition', 'kind', 'linkedAt', 'name', 'var']]);
    expect((await mini.run(['services', 'plain'], 'cli')).out).toBe('no services linked to plain: `slipway postgres:link <name> plain` links one\n');
    expect((await mini.run(['services', 'nosuch'], 'cli')).code).toBe(1);
  });

  it('postgres:logs refuses a bad -n and a missing service in one line', async () => {
    const bad = await mini.run(['postgres:logs', 'db', '-n', 'lots'], 'cli');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^slipway: postgres:logs: -n takes a number of lines from 0 to 100000\n$/);
    const missing = await mini.run(['redis:logs', 'nosuch'], 'cli');
    expect(missing.code).toBe(1);
    expect(missing.err.trimEnd().split('\n')).toHaveLength(1);
    expect(missing.err).toMatch(/no redis service named "nosuch"/);
  });
});
