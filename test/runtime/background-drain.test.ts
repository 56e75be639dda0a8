import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRecord, Release } from '../../core/store.js';
import { LABELS, listAppContainers } from '../../runtime/containers.js';
import { DockerLocalScheduler } from '../../runtime/docker-local/scheduler.js';
import type { DeployRequest } from '../../runtime/scheduler.js';
import { buildTestImage, cleanupApp, docker, httpGet, logger, randomApp, webRelease } from './helpers.js';

// A push returns once the new web container is routed; the old one drains and stops after it
// (README "Releases, scaling and zero downtime"). What must hold: the old one still serves what was sent to it
// when the deploy returns, is gone once `retired` settles, a next deploy waits for it, and a
// restarted daemon (a new scheduler reconciling) removes one it left behind.
describe('background drain of replaced containers (real engine)', () => {
  const app = randomApp();
  const images: string[] = [];
  let routes: string[] = [];
  // Long enough that the old container is certainly still there when the deploy returns.
  const drainMs = 4000;
  const scheduler = () => new DockerLocalScheduler({ docker, logger, settleMs: 300, healthTimeoutMs: 15_000, drainMs, graceSeconds: 1 });
  const release = (version: number): Release => webRelease(version, images[version - 1]!);
  const record = (current: number): AppRecord => ({
    name: app,
    createdAt: new Date().toISOString(),
    config: {},
    formation: { web: 1 },
    buildpacks: [],
    releases: images.map((_, i) => release(i + 1)),
    current,
    builds: [],
  });
  const request = (version: number, lines: string[] = []): DeployRequest => ({
    app: record(version - 1),
    release: release(version),
    formation: { web: 1 },
    onRoutes: async (u) => void (routes = u),
    progress: (line) => lines.push(line),
    background: true,
  });
  const names = async () => (await listAppContainers(docker, app)).map((c) => `${c.Names[0]!.replace(/^\//, '')} v${c.Labels[LABELS.release]}`).sort();

  beforeAll(async () => {
    images.push(await buildTestImage(app, 1, 'content-v1'));
    images.push(await buildTestImage(app, 2, 'content-v2'));
    images.push(images[1]!, images[1]!, images[1]!);
  }, 120_000);
  afterAll(() => cleanupApp(app));

  it('returns once routed; the old container drains, then is gone when retired settles', async () => {
    const s = scheduler();
    await (await s.deploy(request(1))).retired;
    const v1 = routes[0]!;
    const { upstreams, retired } = await s.deploy(request(2));
    expect(upstreams).toEqual(routes);
    expect((await httpGet(routes[0]!, '/index.html')).body).toBe('content-v2');
    // Returned before the drain: v1 is aside, unrouted, and still answers what reaches it.
    const during = await names();
    expect(during).toHaveLength(2);
    expect(during).toContain(`${app}.web.1 v2`);
    expect(during.find((n) => n.endsWith(' v1'))).toMatch(new RegExp(`^${app}\\.web\\.1\\.old-[0-9a-f]{12} v1$`));
    expect(routes).not.toContain(v1);
    expect((await httpGet(v1, '/index.html')).body).toBe('content-v1');

    const outcome = await retired;
    expect(outcome.stopped).toEqual([`${app}.web.1 (v1)`]);
    expect(outcome.failed).toEqual([]);
    expect(await names()).toEqual([`${app}.web.1 v2`]);
  });

  it('a next deploy of the app waits for a drain still running', async () => {
    const s = scheduler();
    const first = await s.deploy(request(3));
    let firstDone = false;
    void first.retired.then(() => (firstDone = true));
    const lines: string[] = [];
    const second = await s.deploy(request(4, lines));
    expect(lines).toContain('Waiting for the containers of the previous deploy to drain');
    expect(firstDone).toBe(true);
    // v2 (replaced by v3) went before v4 started; v3 (replaced by v4) drains now.
    const now = await names();
    expect(now).toHaveLength(2);
    expect(now[0]).toBe(`${app}.web.1 v4`);
    expect(now[1]).toMatch(new RegExp(`^${app}\\.web\\.1\\.old-[0-9a-f]{12} v3$`));
    await second.retired;
    expect(await names()).toEqual([`${app}.web.1 v4`]);
  });

  it('a restarted daemon (a new scheduler reconciling) removes a container left draining', async () => {
    const before = scheduler();
    const { retired } = await before.deploy(request(5));
    expect((await names()).some((n) => n.includes('.old-'))).toBe(true);

    // The daemon "restarts": its successor knows nothing of the drain, only the record (v5 current).
    const lines: string[] = [];
    let adopted: Record<string, string[]> = {};
    await scheduler().reconcile([record(5)], { onAdopted: async (t) => void (adopted = t), progress: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes('left aside by an interrupted deploy'))).toBe(true);
    expect(await names()).toEqual([`${app}.web.1 v5`]);
    expect(adopted[app]).toEqual(routes);
    expect((await httpGet(adopted[app]![0]!, '/index.html')).body).toBe('content-v2');

    // The old process's drain, if it still ran, finds the container gone: not a failure.
    const outcome = await retired;
    expect(outcome.failed).toEqual([]);
    expect(await names()).toEqual([`${app}.web.1 v5`]);
  });
});
