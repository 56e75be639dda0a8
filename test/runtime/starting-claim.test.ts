import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRecord, Release } from '../../core/store.js';
import { LABELS, listAppContainers } from '../../runtime/containers.js';
import { DockerLocalScheduler } from '../../runtime/docker-local/scheduler.js';
import type { ProcessInfo } from '../../runtime/scheduler.js';
import { buildTestImage, cleanupApp, docker, logger, randomApp, webRelease } from './helpers.js';

// The route keeper routes a restarted web container of the current release once its port
// answers. A `ps:restart` or a scale starts containers of the current release too, and those must
// wait for their own health checks: the scheduler marks them `starting` until they are routed.
describe('containers a deploy or scale is starting (real engine)', () => {
  const app = randomApp();
  let image = '';
  const release = (): Release => webRelease(1, image);
  const record = (current: number | null): AppRecord => ({
    name: app,
    createdAt: new Date().toISOString(),
    config: {},
    formation: { web: 1 },
    buildpacks: [],
    releases: [release()],
    current,
    builds: [],
  });
  const scheduler = new DockerLocalScheduler({ docker, logger, settleMs: 300, healthTimeoutMs: 15_000, drainMs: 0, graceSeconds: 1 });
  /** What the scheduler says of every canonical web container while the routes change. */
  const seenAtRouting = async (): Promise<ProcessInfo[]> => {
    const web = (await listAppContainers(docker, app)).filter((c) => c.Labels[LABELS.type] === 'web' && !c.Names[0]!.includes('.old-'));
    return (await Promise.all(web.map((c) => scheduler.process(c.Id)))).filter((p): p is ProcessInfo => p !== null);
  };

  beforeAll(async () => {
    image = await buildTestImage(app, 1, 'content-v1');
  }, 120_000);
  afterAll(() => cleanupApp(app));

  it('marks a deploy\'s new web container starting until the deploy has routed it', async () => {
    let atRouting: ProcessInfo[] = [];
    await scheduler.deploy({ app: record(null), release: release(), formation: { web: 1 }, onRoutes: async () => void (atRouting = await seenAtRouting()), progress: () => {} });
    expect(atRouting.map((p) => [p.name, p.starting])).toEqual([[`${app}.web.1`, true]]);
    const after = await seenAtRouting();
    expect(after.map((p) => [p.name, p.starting])).toEqual([[`${app}.web.1`, false]]);

    // A restart redeploys the current release: the same holds for its container.
    await scheduler.deploy({ app: record(1), release: release(), formation: { web: 1 }, onRoutes: async () => void (atRouting = await seenAtRouting()), progress: () => {} });
    expect(atRouting.map((p) => p.starting)).toEqual([true]);
    expect((await seenAtRouting()).map((p) => p.starting)).toEqual([false]);
  });

  it('marks the containers a scale adds, and not the ones it keeps', async () => {
    let atRouting: ProcessInfo[] = [];
    await scheduler.scale({ app: record(1), release: release(), wanted: new Map([['web', 2]]), onRoutes: async () => void (atRouting = await seenAtRouting()), progress: () => {} });
    expect(atRouting.map((p) => [p.name, p.starting]).sort()).toEqual([[`${app}.web.1`, false], [`${app}.web.2`, true]]);
    expect((await seenAtRouting()).map((p) => p.starting)).toEqual([false, false]);
  });
});
