import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBytesUnder, readFileUnder, relComponents } from '../../core/safe-read.js';
import { rejectsOneLine, throwsOneLine } from '../support/errors.js';

// Issue 9, critical 1: what a build leaves behind must be read without following links.
let tmp: string;
let root: string;
const SECRET = 'root-only-secret-7f3a';

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-safe-read-'));
  root = path.join(tmp, 'build');
  await fs.mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
  await fs.writeFile(path.join(tmp, 'secret'), `${SECRET}\nsecond line\n`, { mode: 0o600 });
  await fs.mkdir(path.join(tmp, 'outside'));
  await fs.writeFile(path.join(tmp, 'outside', 'Procfile'), `web: echo ${SECRET}\n`);
  await fs.writeFile(path.join(root, 'Procfile'), 'web: node server.js\n');
  await fs.writeFile(path.join(root, 'sub', 'deeper', 'ok.txt'), 'fine');
  await fs.symlink(path.join(tmp, 'secret'), path.join(root, 'linked'));
  await fs.symlink(path.join(tmp, 'outside'), path.join(root, 'linkdir'));
  await fs.symlink('sub', path.join(root, 'innerlink'));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  await fs.writeFile(path.join(root, 'big'), Buffer.alloc(4097, 0x61));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('readFileUnder', () => {
  it('reads a regular file, at the top and in sub-folders', async () => {
    expect(await readFileUnder(root, 'Procfile', { maxBytes: 1024 })).toBe('web: node server.js\n');
    expect(await readFileUnder(root, 'sub/deeper/ok.txt', { maxBytes: 1024 })).toBe('fine');
    expect((await readBytesUnder(root, 'big', { maxBytes: 4097 }))?.length).toBe(4097);
  });

  it('returns null for a missing file or folder, and for a file where a folder should be', async () => {
    expect(await readFileUnder(root, 'nope', { maxBytes: 10 })).toBeNull();
    expect(await readFileUnder(root, 'nope/Procfile', { maxBytes: 10 })).toBeNull();
    expect(await readFileUnder(root, 'Procfile/x', { maxBytes: 10 })).toBeNull();
  });

  it('refuses a symlink at the last component, naming the file', async () => {
    const err = await rejectsOneLine(readFileUnder(root, 'linked', { maxBytes: 1024, what: 'Procfile' }));
    expect(err.code).toBe('E_UNSAFE_FILE');
    expect(err.message).toBe('Procfile is a symlink; builds may not link files out of the app: replace it with a regular file');
    expect(err.message).not.toContain(SECRET);
  });

  it('refuses a symlink in a middle folder, even one pointing inside the root', async () => {
    const out = await rejectsOneLine(readFileUnder(root, 'linkdir/Procfile', { maxBytes: 1024 }));
    expect(out.code).toBe('E_UNSAFE_FILE');
    expect(out.message).toBe('linkdir/Procfile: linkdir is a symlink; builds may not link files out of the app: replace it with a regular folder');
    const inner = await rejectsOneLine(readFileUnder(root, 'innerlink/deeper/ok.txt', { maxBytes: 1024 }));
    expect(inner.code).toBe('E_UNSAFE_FILE');
  });

  it('refuses a fifo without blocking', async () => {
    const err = await rejectsOneLine(readFileUnder(root, 'fifo', { maxBytes: 1024 }));
    expect(err.code).toBe('E_UNSAFE_FILE');
    expect(err.message).toBe('fifo is a fifo, not a regular file: replace it with a regular file');
  });

  it('refuses a directory', async () => {
    const err = await rejectsOneLine(readFileUnder(root, 'sub', { maxBytes: 1024 }));
    expect(err.code).toBe('E_UNSAFE_FILE');
    expect(err.message).toContain('sub is a folder, not a regular file');
  });

  it('refuses a file over maxBytes instead of truncating it', async () => {
    const err = await rejectsOneLine(readFileUnder(root, 'big', { maxBytes: 4096 }));
    expect(err.code).toBe('E_TOO_LARGE');
    expect(err.message).toBe('big is larger than 4096 bytes: keep it smaller');
  });

  it('refuses paths that leave the root', () => {
    for (const bad of ['../secret', '/etc/passwd', 'a/../../b', '', 'a\0b']) throwsOneLine(() => relComponents(bad));
  });
});
