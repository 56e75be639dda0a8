import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppQueues, deployTarget, handlePush } from '../../hooks/push.js';
import { parseBuildpacksFile } from '../../hooks/builders/buildpacks-detect.js';
import { refReader } from '../../hooks/branch-guard.js';
import { checkBranchName, deployBranchOf, migrateDeployBranches } from '../../hooks/deploy-branch.js';
import { createLogger } from '../../core/log.js';
import { AppStore, type Release } from '../../core/store.js';
import { throwsOneLine } from '../support/errors.js';

const sha = (c: string) => c.repeat(40);
const execFileP = promisify(execFile);
const logger = createLogger('silent');
let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-push-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('deployTarget', () => {
  it('deploys only the deploy branch, and ignores deletions, other branches and tags', () => {
    const master = { oldRev: sha('0'), newRev: sha('b'), ref: 'refs/heads/master' };
    const main = { oldRev: sha('0'), newRev: sha('c'), ref: 'refs/heads/main' };
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('a'), ref: 'refs/heads/feature' }], 'main')).toBeNull();
    expect(deployTarget([{ oldRev: sha('a'), newRev: sha('0'), ref: 'refs/heads/main' }], 'main')).toBeNull();
    expect(deployTarget([master], 'main')).toBeNull();
    expect(deployTarget([master, main], 'main')).toBe(main);
    expect(deployTarget([master, main], 'master')).toBe(master);
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('b'), ref: 'refs/tags/main' }], 'main')).toBeNull();
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('b'), ref: 'refs/heads/release/v2' }], 'release/v2')?.newRev).toBe(sha('b'));
  });

  it('accepts plain branch names and refuses option-like or malformed ones in one line', () => {
    for (const ok of ['main', 'master', 'release/v2', 'prod_1.x']) expect(checkBranchName(ok)).toBe(ok);
    for (const bad of ['-main', '--upload-pack=x', 'a..b', 'a b', 'x.lock', 'a/', 'a//b', 'HEAD', 'a@{1}', 'a~1', '', 'é']) {
      expect(throwsOneLine(() => checkBranchName(bad)).exitCode).toBe(2);
    }
  });
});

describe('handlePush and the deploy branch', () => {
  async function setup() {
    const apps = new AppStore(await fs.mkdtemp(path.join(tmp, 'apps-')));
    await apps.init();
    await apps.create('shop');
    const deployed: string[] = [];
    const deps = { apps, queues: new AppQueues(), logger, deploy: async (req: { rev: string }) => void deployed.push(req.rev) };
    const push = async (refs: { ref: string; newRev: string }[]) => {
      let out = '';
      const code = await handlePush(deps, { app: 'shop', refs: refs.map((r) => ({ oldRev: sha('0'), ...r })), gitEnv: {}, pusher: 't' }, { out: (d: string) => void (out += d), signal: new AbortController().signal } as never);
      return { code, out };
    };
    return { apps, deployed, push };
  }

  it('deploys main by default; a push to master is kept but says where the app deploys from', async () => {
    const { deployed, push } = await setup();
    const master = await push([{ ref: 'refs/heads/master', newRev: sha('b') }]);
    expect(master).toEqual({ code: 0, out: '-----> Received master: kept, not deployed: this app deploys from main\n' });
    expect(deployed).toEqual([]);
    const both = await push([
      { ref: 'refs/heads/master', newRev: sha('b') },
      { ref: 'refs/heads/main', newRev: sha('c') },
    ]);
    expect(both.code).toBe(0);
    expect(both.out).toContain('Received master: kept, not deployed: this app deploys from main');
    expect(deployed).toEqual([sha('c')]);
  });

  it('deploys from the branch set on the app, and from no other', async () => {
    const { apps, deployed, push } = await setup();
    await apps.update('shop', (a) => {
      a.deployBranch = 'production';
    });
    expect((await push([{ ref: 'refs/heads/main', newRev: sha('c') }])).out).toContain('this app deploys from production');
    await push([{ ref: 'refs/heads/production', newRev: sha('d') }]);
    expect(deployed).toEqual([sha('d')]);
  });
});

describe('migrating apps made before deploy branches', () => {
  const release = (commit: string): Release => ({ version: 1, image: 'x', buildId: null, commit, configHash: '', processTypes: {}, defaultConfig: {}, createdAt: '', by: 't', description: '' });

  it('keeps deploying from master an app whose live commit is master, main otherwise', async () => {
    const reposDir = await fs.mkdtemp(path.join(tmp, 'repos-'));
    const apps = new AppStore(await fs.mkdtemp(path.join(tmp, 'apps-')));
    await apps.init();
    const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e.invalid' };
    const git = async (dir: string, args: string[]) => (await execFileP('git', args, { cwd: dir, env })).stdout.trim();
    const wc = path.join(tmp, 'wc');
    await fs.mkdir(wc);
    await git(wc, ['init', '-q', '-b', 'main']);
    await git(wc, ['commit', '-q', '--allow-empty', '-m', 'one']);
    const one = await git(wc, ['rev-parse', 'HEAD']);
    await git(wc, ['commit', '-q', '--allow-empty', '-m', 'two']);
    const two = await git(wc, ['rev-parse', 'HEAD']);
    // name: [main, master, live commit]
    const cases: Record<string, [string | null, string | null, string | null, string]> = {
      'on-main': [two, one, two, 'main'],
      'on-master': [one, two, two, 'master'],
      'both-same': [two, two, two, 'main'],
      'never-deployed': [null, null, null, 'main'],
      'master-only': [null, one, null, 'master'],
      'rolled-back': [two, two, one, 'main'],
      'already-set': [two, one, one, 'main'],
    };
    for (const [name, [main, master, live]] of Object.entries(cases)) {
      const repo = path.join(reposDir, `${name}.git`);
      await execFileP('git', ['init', '-q', '--bare', repo]);
      if (main) await git(wc, ['push', '-q', repo, `${main}:refs/heads/main`]);
      if (master) await git(wc, ['push', '-q', repo, `${master}:refs/heads/master`]);
      await apps.create(name);
      await apps.update(name, (a) => {
        if (live) {
          a.releases = [release(live)];
          a.current = 1;
        }
        if (name === 'already-set') a.deployBranch = 'main';
      });
    }
    await migrateDeployBranches(apps, refReader((app) => path.join(reposDir, `${app}.git`)), logger);
    for (const [name, [, , , want]] of Object.entries(cases)) expect([name, deployBranchOf(await apps.get(name))]).toEqual([name, want]);
    expect((await apps.get('on-master')).deployBranch).toBe('master');
  });
});

describe('AppQueues', () => {
  it('runs tasks of one app one at a time and of different apps together', async () => {
    const q = new AppQueues();
    const events: string[] = [];
    const task = (name: string, ms: number) => async () => {
      events.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`end ${name}`);
    };
    await Promise.all([q.run('a', task('a1', 30)), q.run('a', task('a2', 1)), q.run('b', task('b1', 1))]);
    expect(events.indexOf('end a1')).toBeLessThan(events.indexOf('start a2'));
    expect(events.indexOf('start b1')).toBeLessThan(events.indexOf('end a1'));
  });
});

describe('.buildpacks', () => {
  it('reads one buildpack per line, skipping blanks and comments', () => {
    expect(parseBuildpacksFile('# pinned\nnode\r\n\n  static  \n')).toEqual(['node', 'static']);
  });
});
