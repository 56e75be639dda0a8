import { describe, expect, it } from 'vitest';
import { AppQueues, deployTarget } from '../../hooks/push.js';
import { parseBuildpacksFile } from '../../hooks/choose-buildpacks.js';

const sha = (c: string) => c.repeat(40);

describe('deployTarget', () => {
  it('deploys main or master, main first, and ignores deletions and other branches', () => {
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('a'), ref: 'refs/heads/feature' }])).toBeNull();
    expect(deployTarget([{ oldRev: sha('a'), newRev: sha('0'), ref: 'refs/heads/main' }])).toBeNull();
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('b'), ref: 'refs/heads/master' }])?.newRev).toBe(sha('b'));
    expect(
      deployTarget([
        { oldRev: sha('0'), newRev: sha('b'), ref: 'refs/heads/master' },
        { oldRev: sha('0'), newRev: sha('c'), ref: 'refs/heads/main' },
      ])?.newRev,
    ).toBe(sha('c'));
    expect(deployTarget([{ oldRev: sha('0'), newRev: sha('b'), ref: 'refs/tags/main' }])).toBeNull();
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
