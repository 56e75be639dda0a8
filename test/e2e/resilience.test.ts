import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';
import { resolvedUpstreams } from '../support/fronts.js';

/** Polls `probe` until it returns a value other than undefined (events are asynchronous; no timing is asserted). */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const docker = async (args: string[]): Promise<string> => {
  const r = await run('docker', args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

// Logs, build history, and what survives what: crashing containers, a daemon killed with
// SIGKILL while idle and while building, and pushes racing each other. One platform, one app.
describe('logs, builds and resilience', () => {
  let platform: TestPlatform;
  const app = uniqueApp('life');
  let wc: string;
  let routeFile: string;
  let daemonLog: string;

  /** The app's healthy upstreams: the route table lists its front, healthy or not (docs/router.md). */
  const upstreams = async (): Promise<string[]> =>
    resolvedUpstreams(platform.home, (JSON.parse(await fs.readFile(routeFile, 'utf8')) as { apps: Record<string, { upstreams: string[] }> }).apps[app]?.upstreams ?? []);
  const webId = () => docker(['inspect', '-f', '{{.Id}}', `${app}.web.1`]);
  const greeting = async (): Promise<string> => (await platform.fetchApp(app, { by: 'host' })).body.split('\n')[0] ?? '';
  const logText = () => fs.readFile(daemonLog, 'utf8').catch(() => '');

  beforeAll(async () => {
    platform = await TestPlatform.start();
    routeFile = path.join(platform.home, 'routes.json');
    daemonLog = path.join(platform.home, 'logs', 'slipway.log');
    await platform.createApp(app);
    wc = await platform.workingCopy('node-hello');
    // The app prints a line per request, so a test can make it log on demand.
    const server = path.join(wc, 'server.js');
    await fs.writeFile(server, (await fs.readFile(server, 'utf8')).replace('.createServer((req, res) => {', '.createServer((req, res) => {\n    console.log(`request ${req.url}`);'));
    await platform.commitAll(wc, 'log requests');
    const push = await platform.push(wc, platform.sshRemote(app));
    if (push.code !== 0) throw new Error(`first push failed: ${push.stderr}`);
  }, 600_000);

  afterAll(async () => {
    await platform?.stop();
  }, 180_000);

  it('logs: merged output with a timestamp and container prefix, -n, --type and the router\'s access log', async () => {
    await platform.fetchApp(app, { by: 'host', path: '/first-request' });
    const logs = await until('the request line', async () => {
      const r = await platform.cli(['logs', app]);
      return r.stdout.includes('request /first-request') ? r : undefined;
    });
    expect(logs.code).toBe(0);
    expect(logs.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z ${app}\\.web\\.1: node-hello listening on 5000$`, 'm'));
    const lines = logs.stdout.trimEnd().split('\n');
    expect(lines.indexOf(lines.find((l) => l.includes('listening'))!)).toBeLessThan(lines.indexOf(lines.find((l) => l.includes('/first-request'))!));

    const last = await platform.ssh(['logs', app, '-n', '1']);
    expect(last.code).toBe(0);
    expect(last.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(last.stdout).toContain('request /first-request');

    // The router's view of the same request: its access log line for this app.
    const routed = await until('the router log line', async () => {
      const r = await platform.ssh(['logs', app, '--type', 'router', '-n', '20']);
      return r.stdout.includes(' 200 GET ') ? r : undefined;
    });
    expect(routed.code).toBe(0);
    expect(routed.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z router: 200 GET \S+ \d+B upstream [0-9.]+s request [0-9a-f]{32}$/m);

    const workers = await platform.cli(['logs', app, '--type', 'worker']);
    expect(workers).toMatchObject({ code: 0, stdout: '' });
    expect((await platform.cli(['logs', app, '-n', 'lots'])).code).toBe(2);
    expect((await platform.cli(['logs', app, '--type', '$(id)'])).code).toBe(2);
    const missing = await platform.cli(['logs', 'no-such-app']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^slipway: app "no-such-app" does not exist/);
  }, 120_000);

  it('logs --follow over SSH streams new lines, and closes its Docker streams when the client goes away', async () => {
    const ssh = spawn('ssh', [...platform.sshArgs(), 'git@127.0.0.1', 'logs', app, '--follow', '-n', '1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    ssh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until('the tail', async () => (out.length > 0 ? true : undefined));
      await platform.fetchApp(app, { by: 'host', path: '/while-following' });
      await until('the followed line', async () => (out.includes('request /while-following') ? true : undefined));
      expect(out).toMatch(new RegExp(`Z ${app}\\.web\\.1: request /while-following\\n`));
    } finally {
      ssh.kill('SIGTERM');
    }
    const ended = await until('the daemon to end the follow', async () => {
      const line = (await logText()).split('\n').find((l) => l.includes('"logs follow ended"') && l.includes(app));
      return line === undefined ? undefined : (JSON.parse(line) as { openLogStreams: number });
    });
    expect(ended.openLogStreams).toBe(0);
  }, 120_000);

  it('builds lists the build; builds:log prints it and refuses bad ids', async () => {
    const list = await platform.cli(['builds', app, '--json']);
    expect(list.code).toBe(0);
    const builds = JSON.parse(list.stdout) as { id: string; status: string; commit: string; buildpacks: string[]; durationMs: number }[];
    expect(builds).toHaveLength(1);
    const head = (await platform.git(wc, ['rev-parse', 'HEAD'])).stdout.trim();
    expect(builds[0]).toMatchObject({ status: 'succeeded', commit: head });
    expect(builds[0]!.buildpacks.length).toBeGreaterThan(0);
    const text = await platform.ssh(['builds', app]);
    expect(text.stdout).toMatch(new RegExp(`^${builds[0]!.id}\\s+${head.slice(0, 7)}\\s+succeeded\\s+\\d`, 'm'));

    const latest = await platform.cli(['builds:log', app]);
    expect(latest.code).toBe(0);
    expect(latest.stdout).toContain(`build ${builds[0]!.id}`);
    expect(latest.stdout).toMatch(/Deployed .* v1/);
    expect((await platform.ssh(['builds:log', app, builds[0]!.id])).stdout).toBe(latest.stdout);
    for (const bad of ['../../state/apps/x', '20260101000000-zzzzzz']) {
      const r = await platform.cli(['builds:log', app, bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^slipway: invalid build id/);
    }
    const unknown = await platform.cli(['builds:log', app, '20200101000000-abcdef']);
    expect(unknown.stderr).toMatch(/has no build 20200101000000-abcdef/);
  }, 60_000);

  it('a stopped web container leaves the routes at once, and rejoins when it starts again', async () => {
    const before = await upstreams();
    expect(before).toHaveLength(1);
    await docker(['kill', `${app}.web.1`]); // Docker counts this as a manual stop: no restart
    await until('the route to go', async () => ((await upstreams()).length === 0 ? true : undefined));
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(503);
    await docker(['start', `${app}.web.1`]);
    await until('the route to come back', async () => ((await upstreams()).length === 1 ? true : undefined));
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
  }, 120_000);

  it('a crashed web container is restarted by its restart policy and rejoins the routes', async () => {
    const id = await webId();
    const count = async (text: string) => (await logText()).split(text).length - 1;
    const [died, rejoined] = [await count('web container died'), await count('back in the routes')];
    const restarts = Number(await docker(['inspect', '-f', '{{.RestartCount}}', id]));
    const pid = Number(await docker(['inspect', '-f', '{{.State.Pid}}', id]));
    process.kill(pid, 'SIGKILL'); // the app crashes (its init dies): exit 137, not a manual stop
    await until('a restart', async () => (Number(await docker(['inspect', '-f', '{{.RestartCount}}', id])) > restarts ? true : undefined));
    await until('the die to be seen', async () => ((await count('web container died')) > died ? true : undefined));
    await until('the route back', async () => ((await count('back in the routes')) > rejoined ? true : undefined));
    const port = await docker(['inspect', '-f', '{{(index (index .NetworkSettings.Ports "5000/tcp") 0).HostPort}}', id]);
    // The route is the app's stable front; the kernel sends it to the restarted container.
    expect(await upstreams()).toEqual([`127.0.0.1:${port}`]);
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
    expect(await webId()).toBe(id);
  }, 120_000);

  it('kill -9 of an idle daemon: the app keeps answering, and a new daemon adopts it without a restart', async () => {
    const id = await webId();
    await platform.stopDaemon('SIGKILL');
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
    await platform.restartDaemon();
    expect(await webId()).toBe(id);
    expect(await upstreams()).toHaveLength(1);
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
    expect((await platform.cli(['ps', app])).stdout).toBe(`${app}.web.1 running v1\n`);
  }, 300_000);

  it('kill -9 mid-build: the old release keeps serving, the new daemon cleans up, the next push deploys', async () => {
    const served = await greeting();
    const server = path.join(wc, 'server.js');
    await fs.writeFile(server, (await fs.readFile(server, 'utf8')).replace('hello from', 'second hello from'));
    await platform.commitAll(wc, 'second greeting');
    const pushing = platform.push(wc, platform.sshRemote(app));
    const buildFilter = `label=slipway.build-app=${app}`;
    await until('the build to run', async () => ((await docker(['ps', '-q', '--filter', buildFilter])) ? true : undefined), 240_000);
    await platform.stopDaemon('SIGKILL');
    const push = await pushing;
    expect(push.code).not.toBe(0);
    expect(await greeting()).toBe(served);

    await platform.restartDaemon();
    expect(await docker(['ps', '-aq', '--filter', buildFilter])).toBe('');
    expect(await fs.readdir(path.join(platform.home, 'tmp'))).toEqual([]);
    const builds = JSON.parse((await platform.cli(['builds', app, '--json'])).stdout) as { id: string; status: string; error: string }[];
    expect(builds[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/^interrupted/) });
    expect((await platform.cli(['builds:log', app, builds[0]!.id])).stdout).toMatch(/interrupted: the daemon stopped/);
    expect((await platform.cli(['ps', app])).stdout).toBe(`${app}.web.1 running v1\n`);
    expect(await greeting()).toBe(served);

    const again = await platform.push(wc, platform.sshRemote(app));
    expect(again.code, again.stderr).toBe(0);
    expect(await greeting()).toContain('second hello from');
  }, 600_000);

  it('five concurrent force pushes end with the branch and the live release on the same commit', async () => {
    const copies: string[] = [];
    for (let i = 0; i < 5; i++) {
      const dir = await fs.mkdtemp(path.join(platform.home, 'racer-'));
      await run('git', ['clone', '-q', platform.sshRemote(app), dir], { env: platform.gitEnv() });
      await fs.writeFile(path.join(dir, 'racer.txt'), `racer ${i}\n`);
      await platform.commitAll(dir, `racer ${i}`);
      copies.push(dir);
    }
    const results = await Promise.all(copies.map((dir) => platform.push(dir, platform.sshRemote(app), '+main:main')));
    expect(results.filter((r) => r.code === 0).length).toBeGreaterThanOrEqual(1);
    for (const r of results.filter((x) => x.code !== 0)) expect(r.stderr).toMatch(/main moved to [0-9a-f]{7} while this push waited/);

    const branch = (await run('git', ['ls-remote', platform.sshRemote(app), 'refs/heads/main'], { env: platform.gitEnv() })).stdout.split(/\s/)[0];
    const info = JSON.parse((await platform.cli(['apps:info', app, '--json'])).stdout) as { commit: string; release: string };
    expect(info.commit).toBe(branch);
    const procs = JSON.parse((await platform.cli(['ps', app, '--json'])).stdout) as { type: string; release: number; state: string }[];
    expect(procs.filter((p) => p.type === 'web')).toEqual([expect.objectContaining({ state: 'running', release: Number(info.release.slice(1)) })]);
  }, 900_000);

  // Issue 10: a container the recovery of a restarted daemon starts comes from the same spec as a
  // deploy's (runtime/process-spec.ts), so it keeps the app's `ps:set` limits.
  it('a web container removed while the daemon is down comes back with its memory and CPU limits', async () => {
    expect((await platform.cli(['ps:set', app, 'memory=256m', 'cpus=0.5'])).code).toBe(0);
    const limitsOf = async () => docker(['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}', `${app}.web.1`]);
    expect(await limitsOf()).toBe(`${256 * 1024 * 1024} 500000000`);
    const id = await webId();

    await platform.stopDaemon('SIGKILL');
    await docker(['rm', '-f', `${app}.web.1`]);
    await platform.restartDaemon();

    const ps = await until('the web container to run again', async () => {
      const r = await platform.cli(['ps', app]);
      return r.stdout.includes(' running ') ? r.stdout : undefined;
    });
    expect(await webId()).not.toBe(id);
    expect(ps).toMatch(new RegExp(`^${app}\\.web\\.1 running v\\d+ memory=256m cpus=0\\.5\\n$`));
    expect(await limitsOf()).toBe(`${256 * 1024 * 1024} 500000000`);
    await until('the route to come back', async () => ((await upstreams()).length === 1 ? true : undefined));
    expect((await platform.fetchApp(app, { by: 'host' })).status).toBe(200);
  }, 300_000);
});
