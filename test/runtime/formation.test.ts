import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS, listAppContainers, type ContainerSummary } from '../../runtime/containers.js';
import { deployFormation, desiredCounts, removeApp, type FormationOptions } from '../../runtime/formation.js';
import { TEST_LABELS, WEB_COMMAND, buildTestImage, cleanupApp, docker, httpGet, logger, randomApp } from './helpers.js';

describe('desiredCounts (unit)', () => {
  it('defaults web to 1 and others to 0, never runs release, honours the formation', () => {
    const counts = desiredCounts({ web: 'a', worker: 'b', release: 'c', clock: 'd' }, { worker: 2, clock: 0 });
    expect([...counts]).toEqual([['web', 1], ['worker', 2]]);
    expect([...desiredCounts({ web: 'a' }, { web: 3 })]).toEqual([['web', 3]]);
  });

  it('refuses a process type that cannot be part of a container name', () => {
    expect(() => desiredCounts({ 'we b;x': 'a' }, {})).toThrow(/invalid process type/);
  });
});

describe('deployFormation (real engine)', () => {
  const app = randomApp();
  const images: string[] = [];
  let routes: string[] = [];
  let routeCalls = 0;

  const options = (release: number, processTypes: Record<string, string>, formation: Record<string, number> = {}): FormationOptions => ({
    docker,
    app: { name: app, config: {} },
    release: { version: release, image: images[release - 1]!, processTypes, defaultConfig: {}, config: {} },
    formation,
    settleMs: 300,
    healthTimeoutMs: 15_000,
    drainMs: 500,
    graceSeconds: 1,
    onRoutes: async (upstreams) => {
      routeCalls++;
      routes = upstreams;
    },
    progress: () => {},
    logger,
    labels: TEST_LABELS,
  });
  /** Deploys and waits for the replaced containers to be gone, as `ps:restart` does. */
  const deployed = async (o: FormationOptions) => {
    const d = await deployFormation(o);
    await d.retired;
    return d;
  };
  const byName = async (): Promise<Map<string, ContainerSummary>> =>
    new Map((await listAppContainers(docker, app)).map((c) => [c.Names[0]!.replace(/^\//, ''), c]));

  beforeAll(async () => {
    // v1 and v2 serve different content; v3 (same image as v2) gets a command that crashes.
    images.push(await buildTestImage(app, 1, 'content-v1'));
    images.push(await buildTestImage(app, 2, 'content-v2'));
    images.push(images[1]!);
  });
  afterAll(() => cleanupApp(app));

  it('deploys the first release and routes to it', async () => {
    const { upstreams } = await deployed(options(1, { web: WEB_COMMAND }));
    expect(upstreams).toEqual(routes);
    expect(upstreams).toHaveLength(1);
    expect((await httpGet(upstreams[0]!, '/index.html')).body).toBe('content-v1');
    const names = await byName();
    expect([...names.keys()]).toEqual([`${app}.web.1`]);
  });

  it('replaces web 1->1 without a failed request, switching from old to new content', async () => {
    const seen: string[] = [];
    let polling = true;
    // Plays the router: always asks the upstream the last onRoutes call named.
    const poller = (async () => {
      while (polling) {
        try {
          seen.push((await httpGet(routes[0]!, '/index.html')).body);
        } catch (err) {
          seen.push(`ERROR ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const { upstreams } = await deployed(options(2, { web: WEB_COMMAND }));
    await new Promise((r) => setTimeout(r, 200));
    polling = false;
    await poller;

    expect(seen.filter((s) => s.startsWith('ERROR'))).toEqual([]);
    const firstV2 = seen.indexOf('content-v2');
    expect(seen[0]).toBe('content-v1');
    expect(firstV2).toBeGreaterThan(0);
    expect(seen.slice(firstV2).every((s) => s === 'content-v2')).toBe(true);

    const names = await byName();
    expect([...names.keys()]).toEqual([`${app}.web.1`]);
    expect(names.get(`${app}.web.1`)!.Labels[LABELS.release]).toBe('2');
    expect(upstreams).toEqual(routes);
  });

  it('keeps the old container serving under its name when the new one fails its health check', async () => {
    const before = (await byName()).get(`${app}.web.1`)!;
    const callsBefore = routeCalls;
    const routesBefore = routes;
    const err = await deployFormation({ ...options(3, { web: 'echo v3-is-broken; exit 3' }), healthTimeoutMs: 8000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_HEALTHCHECK' });
    expect((err as Error).message).toContain('v3-is-broken');
    expect(routeCalls).toBe(callsBefore);
    expect(routes).toBe(routesBefore);

    const names = await byName();
    expect([...names.keys()]).toEqual([`${app}.web.1`]);
    const after = names.get(`${app}.web.1`)!;
    expect(after.Id).toBe(before.Id);
    expect(after.State).toBe('running');
    expect((await httpGet(routes[0]!, '/index.html')).body).toBe('content-v2');
  });

  it('scales web up, starts other types, and stops types that left the formation', async () => {
    await deployed(options(2, { web: WEB_COMMAND, worker: 'sleep 300' }, { web: 2, worker: 1 }));
    let names = await byName();
    expect([...names.keys()].sort()).toEqual([`${app}.web.1`, `${app}.web.2`, `${app}.worker.1`]);
    expect(routes).toHaveLength(2);
    expect(names.get(`${app}.worker.1`)!.Labels[LABELS.type]).toBe('worker');

    await deployed(options(2, { web: WEB_COMMAND }, { web: 1 }));
    names = await byName();
    expect([...names.keys()]).toEqual([`${app}.web.1`]);
    expect(routes).toHaveLength(1);
    expect((await httpGet(routes[0]!, '/index.html')).body).toBe('content-v2');
  });

  it('removeApp leaves no container behind', async () => {
    await removeApp(docker, app);
    expect(await listAppContainers(docker, app)).toEqual([]);
  });
});
