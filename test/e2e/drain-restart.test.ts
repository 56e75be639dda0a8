import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRAIN_INTERRUPTED } from '../../platform/recover.js';
import { TestPlatform, uniqueApp } from '../support/platform.js';

// A push returns before the containers it replaced have drained (README "Releases, scaling
// and zero downtime"). A daemon that stops during that drain must leave nothing behind once it starts again:
// the old container is aside (`.old-`), and the next start's reconcile removes it and says so
// in the build's log.
describe('a daemon restart during the drain of a push', () => {
  let platform: TestPlatform;
  const app = uniqueApp('drain');
  const docker = new Dockerode();
  const names = async () =>
    (await docker.listContainers({ all: true, filters: { label: [`slipway.app=${app}`] } })).map((c) => (c.Names[0] ?? '').replace(/^\//, '')).sort();

  // A drain far longer than the test: only the restart can end it.
  beforeAll(async () => void (platform = await TestPlatform.start({ config: { drainMs: 600_000 } })), 300_000);
  afterAll(async () => platform?.stop(), 120_000);

  it('removes the old container on the next start and records it in builds:log', async () => {
    await platform.createApp(app);
    const wc = await platform.workingCopy('node-hello');
    expect((await platform.push(wc, platform.sshRemote(app))).code).toBe(0);
    await platform.git(wc, ['commit', '-q', '--allow-empty', '-m', 'v2']);
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    // The push returned; v1 is aside and draining.
    const during = await names();
    expect(during).toHaveLength(2);
    expect(during.filter((n) => n.includes('.old-'))).toHaveLength(1);

    await platform.restartDaemon();
    expect(await names()).toEqual([`${app}.web.1`]);
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
    const ps = await platform.cli(['ps', app]);
    expect(ps.stdout).toMatch(new RegExp(`^${app}\\.web\\.1 running v2$`, 'm'));
    // The log says what became of the drain, and following it ends (the build is no longer retiring).
    const log = await platform.cli(['builds:log', app, '--follow']);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toContain(DRAIN_INTERRUPTED);
  }, 300_000);
});
