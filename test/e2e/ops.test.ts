import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

// Config, formation, releases and rollback on one app, step by step, through the real CLI,
// git over SSH, Docker and the router. Steps depend on each other: they run in order.
describe('operations: config, scale, release phase, health checks, rollback', () => {
  let platform: TestPlatform;
  const app = uniqueApp('ops');
  let wc: string;

  const cli = (args: string[], code = 0) => platform.expectCli(args, code);
  const body = async () => (await platform.fetchApp(app, { by: 'host' })).body;
  const ps = async () => (await cli(['ps', app])).stdout.trim().split('\n');
  const releases = async () => JSON.parse((await cli(['releases', app, '--json'])).stdout) as { version: number; current: boolean; description: string; image: string | null }[];
  const containerId = async (name: string) => (await run('docker', ['inspect', '-f', '{{.Id}}', name])).stdout.trim();
  const setServerContent = async (content: string) => {
    const file = path.join(wc, 'server.js');
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace(/const CONTENT = '[^']*'/, `const CONTENT = '${content}'`));
  };

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    wc = await platform.workingCopy('node-ops');
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('deploys v1, running the release command once in a one-off container before the switch', async () => {
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toMatch(/Running release command: node release\.js/);
    expect(push.stderr).toContain('release phase of release.1 with greeting=-');
    // The release phase ran before the release went live.
    expect(push.stderr.indexOf('release phase of')).toBeLessThan(push.stderr.indexOf('Releasing v1'));
    expect(await body()).toContain('content-one dyno=web.1 greeting=-');
    // Workers default to 0; the one-off is gone and never listed.
    expect(await ps()).toEqual([`${app}.web.1 running v1`]);
    const oneoffs = await run('docker', ['ps', '-aq', '--filter', `label=slipway.oneoff.app=${app}`]);
    expect(oneoffs.stdout.trim()).toBe('');
  }, 600_000);

  it('config:set goes live as a new release; bad input changes nothing', async () => {
    const bad = await cli(['config:set', app, 'GREETING=x', 'NOEQUALS'], 2);
    expect(bad.stderr).toMatch(/^slipway: expected KEY=VALUE, got "NOEQUALS"/);
    const badKey = await cli(['config:set', app, '1BAD=x'], 2);
    expect(badKey.stderr).toMatch(/^slipway: invalid config key/);
    expect((await cli(['config', app])).stdout).toContain('no config vars');

    const set = await cli(['config:set', app, 'GREETING=hello world;$(id)']);
    expect(set.stdout).toContain('Released v2 (config set GREETING)');
    expect(await body()).toContain('greeting=hello world;$(id)');
    expect((await cli(['config', app])).stdout).toBe("GREETING='hello world;$(id)'\n");
    expect(JSON.parse((await cli(['config', app, '--json'])).stdout)).toEqual({ GREETING: 'hello world;$(id)' });
    const rs = await releases();
    expect(rs[0]).toMatchObject({ version: 2, current: true, description: 'config set GREETING', image: `slipway/${app}:v2` });
    expect(await ps()).toEqual([`${app}.web.1 running v2`]);
    // Values reach the admin who asked, never the server's log.
    expect(platform.serverLog).not.toContain('hello world;$(id)');
  }, 300_000);

  it('ps:scale starts only the difference, and the router spreads over every web container', async () => {
    const unknown = await cli(['ps:scale', app, 'clock=1'], 1);
    expect(unknown.stderr).toMatch(/no process type "clock".* web, worker/);
    const web1 = await containerId(`${app}.web.1`);

    await cli(['ps:scale', app, 'web=3', 'worker=2']);
    expect(await ps()).toEqual([
      `${app}.web.1 running v2`,
      `${app}.web.2 running v2`,
      `${app}.web.3 running v2`,
      `${app}.worker.1 running v2`,
      `${app}.worker.2 running v2`,
    ]);
    expect(await containerId(`${app}.web.1`)).toBe(web1);
    const seen = new Set<string>();
    // The route is the app's stable front (platform/fronts.ts): the kernel spreads nginx's new
    // upstream connections over the containers, and a kept one stays with its container for
    // `keepalive_time`. Bursts of concurrent requests make nginx open connections, as load does.
    for (let i = 0; i < 30 && seen.size < 3; i++) {
      for (const b of await Promise.all(Array.from({ length: 12 }, () => body()))) seen.add(/dyno=(\S+)/.exec(b)?.[1] ?? '?');
    }
    expect([...seen].sort()).toEqual(['web.1', 'web.2', 'web.3']);
    const info = JSON.parse((await cli(['apps:info', app, '--json'])).stdout) as { formation: Record<string, number> };
    expect(info.formation).toEqual({ web: 3, worker: 2 });
    const logs = await run('docker', ['logs', `${app}.worker.2`]);
    expect(logs.stdout).toMatch(/worker worker\.2 (tick|$)/);

    await cli(['ps:scale', app, 'web=1', 'worker=0']);
    expect(await ps()).toEqual([`${app}.web.1 running v2`]);
    expect(await containerId(`${app}.web.1`)).toBe(web1);
    expect(await body()).toContain('dyno=web.1');
  }, 300_000);

  it('a failing release command fails the push and keeps the old release', async () => {
    await fs.writeFile(path.join(wc, 'fail-release'), 'yes\n');
    await setServerContent('content-broken');
    await platform.commitAll(wc, 'release phase fails');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('release phase failing on purpose');
    expect(push.stderr).toMatch(/release command exited with code 3/);
    expect(await body()).toContain('content-one dyno=web.1 greeting=hello world');
    expect((await releases())[0]).toMatchObject({ version: 2, current: true });
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);
  }, 300_000);

  it('a failing app.json health check keeps the old release and says why', async () => {
    await setServerContent('content-unhealthy');
    await fs.writeFile(
      path.join(wc, 'app.json'),
      JSON.stringify({ healthchecks: { web: [{ type: 'startup', name: 'ready', path: '/healthz', content: 'never-there', attempts: 2, timeout: 2 }] } }),
    );
    await platform.commitAll(wc, 'health check that cannot pass');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/failed health check "ready" \(app\.json\): GET \/healthz answered 200 without "never-there"/);
    expect(await body()).toContain('content-one');
    expect(await ps()).toEqual([`${app}.web.1 running v2`]);
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);

    const invalid = { healthchecks: { web: [{ path: 'no-slash' }] } };
    await fs.writeFile(path.join(wc, 'app.json'), JSON.stringify(invalid));
    await platform.commitAll(wc, 'invalid app.json');
    const refused = await platform.push(wc, platform.sshRemote(app));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/app\.json: healthchecks\.web\.0\.path must match pattern/);
    await platform.git(wc, ['reset', '-q', '--hard', 'HEAD~1']);
  }, 300_000);

  it('deploys v3 with a passing health check, then rolls back to v1 as v4 without a rebuild', async () => {
    await setServerContent('content-two');
    await fs.writeFile(path.join(wc, 'app.json'), JSON.stringify({ healthchecks: { web: [{ path: '/healthz', content: 'ok' }] } }));
    await platform.commitAll(wc, 'content two');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toMatch(/check "\/healthz" passed/);
    expect(await body()).toContain('content-two dyno=web.1 greeting=hello world');

    const rollback = await cli(['rollback', app, 'v1']);
    expect(rollback.stdout).toContain('Released v4 (rollback to v1)');
    expect(await body()).toContain('content-one dyno=web.1 greeting=-');
    expect((await cli(['config', app])).stdout).toContain('no config vars');
    const rs = await releases();
    expect(rs.map((r) => r.version)).toEqual([4, 3, 2, 1]);
    expect(rs[0]).toMatchObject({ current: true, description: 'rollback to v1', image: `slipway/${app}:v4` });
    const text = (await cli(['releases', app])).stdout;
    expect(text).toMatch(/^\* +v4 .*rollback to v1/m);
    expect((await cli(['rollback', app, 'v9'], 1)).stderr).toMatch(/^slipway: .* has no release v9/);
  }, 600_000);

  it('ps:set applies limits with a restart; ps:stop empties the routes and ps:start brings them back', async () => {
    await cli(['ps:set', app, 'memory=256m', 'cpus=0.5']);
    expect(await ps()).toEqual([`${app}.web.1 running v4 memory=256m cpus=0.5`]);

    await cli(['ps:stop', app]);
    expect((await cli(['ps', app])).stdout).toContain('no containers');
    const stopped = await platform.fetchApp(app, { by: 'host' });
    expect(stopped.status).toBe(503);

    await cli(['ps:start', app]);
    expect(await ps()).toEqual([`${app}.web.1 running v4 memory=256m cpus=0.5`]);
    expect(await body()).toContain('content-one');
  }, 300_000);
});
