import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractRevision } from '../../buildpacks/extract.js';
import { entryComponents, symlinkAncestor, symlinkEscapes } from '../../buildpacks/safe-paths.js';
import { rejectsOneLine } from '../support/errors.js';

let tmp: string;
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' },
  }).trim();

/** A bare repo with one commit made from `files` (value: content, or { link } for a symlink). */
async function repoWith(name: string, files: Record<string, string | { link: string } | { exec: string }>) {
  const work = path.join(tmp, `${name}-work`);
  await fs.mkdir(work, { recursive: true });
  git(work, 'init', '-q', '-b', 'main');
  for (const [rel, spec] of Object.entries(files)) {
    const abs = path.join(work, rel);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    if (typeof spec === 'string') await fs.writeFile(abs, spec);
    else if ('link' in spec) await fs.symlink(spec.link, abs);
    else await fs.writeFile(abs, spec.exec, { mode: 0o755 });
  }
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', 'fixture');
  const bare = path.join(tmp, `${name}.git`);
  git(tmp, 'clone', '-q', '--bare', work, bare);
  return { repoDir: bare, rev: git(bare, 'rev-parse', 'HEAD') };
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-extract-test-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('extractRevision', () => {
  it('extracts files, folders, in-tree symlinks and keeps the executable bit', async () => {
    const { repoDir, rev } = await repoWith('ok', {
      'package.json': '{"name":"x"}\n',
      'bin/run.sh': { exec: '#!/bin/sh\necho hi\n' },
      'lib/a/b.txt': 'deep\n',
      'docs/readme-link': { link: '../lib/a/b.txt' },
    });
    const dest = path.join(tmp, 'ok-out');
    const res = await extractRevision({ repoDir, rev, gitEnv: {}, dest, maxBytes: 1 << 20 });
    expect(res.files).toBe(3);
    expect(res.bytes).toBe('{"name":"x"}\n'.length + '#!/bin/sh\necho hi\n'.length + 'deep\n'.length);
    expect(await fs.readFile(path.join(dest, 'lib/a/b.txt'), 'utf8')).toBe('deep\n');
    expect((await fs.stat(path.join(dest, 'bin/run.sh'))).mode & 0o111).toBe(0o111);
    expect((await fs.stat(path.join(dest, 'package.json'))).mode & 0o111).toBe(0);
    expect(await fs.readlink(path.join(dest, 'docs/readme-link'))).toBe('../lib/a/b.txt');
    expect(await fs.readFile(path.join(dest, 'docs/readme-link'), 'utf8')).toBe('deep\n');
  });

  it('refuses a symlink to an absolute path outside the app', async () => {
    const { repoDir, rev } = await repoWith('abs', { 'a.txt': 'a', passwd: { link: '/etc/passwd' } });
    const err = await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'abs-out'), maxBytes: 1 << 20 }));
    expect(err.code).toBe('E_ARCHIVE');
    expect(err.message).toMatch(/"passwd".*outside the app/);
  });

  it('refuses a symlink that climbs out with ..', async () => {
    const { repoDir, rev } = await repoWith('dotdot', { 'sub/x': { link: '../../x' }, y: { link: '../x' } });
    const err = await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'dotdot-out'), maxBytes: 1 << 20 }));
    expect(err.code).toBe('E_ARCHIVE');
    expect(err.message).toMatch(/outside the app/);
  });

  it('refuses a symlink chain that only escapes once followed (b -> ., a -> b/..)', async () => {
    const { repoDir, rev } = await repoWith('chain', { a: { link: 'b/..' }, b: { link: '.' } });
    const err = await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'chain-out'), maxBytes: 1 << 20 }));
    expect(err.code).toBe('E_ARCHIVE');
    expect(err.message).toMatch(/"a".*outside the app/);
  });

  it('stops past maxBytes', async () => {
    const { repoDir, rev } = await repoWith('big', { 'big.bin': 'x'.repeat(5000) });
    const err = await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'big-out'), maxBytes: 4096 }));
    expect(err.code).toBe('E_TOO_LARGE');
  });

  it('refuses a revision that is not a full commit id, before running git', async () => {
    const { repoDir } = await repoWith('rev', { a: 'a' });
    for (const rev of ['--output=/tmp/pwned', 'HEAD', 'a'.repeat(39), `${'a'.repeat(40)}\n`]) {
      const err = await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'rev-out'), maxBytes: 1 << 20 }));
      expect(err.code).toBe('E_ARCHIVE');
    }
    await expect(fs.access('/tmp/pwned')).rejects.toThrow();
  });

  it('reports a commit git does not have', async () => {
    const { repoDir } = await repoWith('missing', { a: 'a' });
    const err = await rejectsOneLine(extractRevision({ repoDir, rev: 'f'.repeat(40), gitEnv: {}, dest: path.join(tmp, 'missing-out'), maxBytes: 1 << 20 }));
    expect(err.code).toBe('E_ARCHIVE');
    expect(err.message).toMatch(/git archive ffffffffffff failed/);
  });

  it('passes the quarantine environment to git (objects only in an alternate dir)', async () => {
    const { repoDir, rev } = await repoWith('quarantine', { 'q.txt': 'quarantined\n' });
    // Move the objects away as git's receive quarantine would hold them, and point git at them.
    const quarantine = path.join(tmp, 'quarantine-objects');
    await fs.rename(path.join(repoDir, 'objects'), quarantine);
    await fs.mkdir(path.join(repoDir, 'objects'));
    const dest = path.join(tmp, 'quarantine-out');
    await rejectsOneLine(extractRevision({ repoDir, rev, gitEnv: {}, dest: path.join(tmp, 'quarantine-none'), maxBytes: 1 << 20 }));
    await extractRevision({ repoDir, rev, gitEnv: { GIT_OBJECT_DIRECTORY: quarantine }, dest, maxBytes: 1 << 20 });
    expect(await fs.readFile(path.join(dest, 'q.txt'), 'utf8')).toBe('quarantined\n');
  });
});

describe('safe path rules', () => {
  it('refuses absolute paths and .. components', () => {
    expect(entryComponents('/etc/passwd')).toBe('is an absolute path');
    expect(entryComponents('a/../../b')).toBe("has a '..' component");
    expect(entryComponents('./a//b/')).toEqual(['a', 'b']);
  });

  it('finds an entry that lies under a symlink', () => {
    const links = new Map([['vendor', '/etc']]);
    expect(symlinkAncestor(['vendor', 'passwd'], links)).toBe('vendor');
    expect(symlinkAncestor(['vendor'], links)).toBeUndefined();
    expect(symlinkAncestor(['vendored', 'x'], links)).toBeUndefined();
  });

  it('follows in-tree symlinks the way the kernel would', () => {
    const links = new Map([
      ['b', '.'],
      ['lib', 'vendor/lib'],
    ]);
    expect(symlinkEscapes('a', 'b/..', links)).toBe(true);
    expect(symlinkEscapes('a', 'lib/..', links)).toBe(false); // vendor/lib/.. = vendor
    expect(symlinkEscapes('x/y', '../lib/../..', links)).toBe(false); // x/../vendor/lib/../.. = .
    expect(symlinkEscapes('x/y', '../../z', links)).toBe(true);
    expect(symlinkEscapes('x', '/x', links)).toBe(true);
    expect(symlinkEscapes('loop', 'loop2', new Map([['loop2', 'loop'], ['loop', 'loop2']]))).toBe(true);
  });
});
