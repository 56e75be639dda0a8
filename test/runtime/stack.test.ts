import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  STACK_RECIPE,
  aptSourceFiles,
  importStack,
  inspectSavedArchive,
  mmdebstrapArgs,
  parseOsCodename,
  stackImageRef,
} from '../../runtime/stack.js';
import { docker, randomApp } from './helpers.js';

describe('stackImageRef', () => {
  it('is stable for one recipe and names the image by its hash', () => {
    expect(stackImageRef()).toBe(stackImageRef());
    expect(stackImageRef()).toMatch(/^slipway-platform\/stack:[0-9a-f]{12}$/);
    expect(stackImageRef({ ...STACK_RECIPE })).toBe(stackImageRef());
  });

  it('changes when a package, the suite or a hook changes', () => {
    const base = stackImageRef();
    expect(stackImageRef({ ...STACK_RECIPE, packages: [...STACK_RECIPE.packages, 'curl'] })).not.toBe(base);
    expect(stackImageRef({ ...STACK_RECIPE, suite: 'trixie' })).not.toBe(base);
    expect(stackImageRef({ ...STACK_RECIPE, customizeHooks: [...STACK_RECIPE.customizeHooks, 'true'] })).not.toBe(base);
  });

  it('covers what apps and buildpacks need', () => {
    for (const p of ['python3', 'python3-venv', 'python3-pip', 'ca-certificates', 'tar', 'gzip', 'xz-utils', 'git', 'procps']) {
      expect(STACK_RECIPE.packages).toContain(p);
    }
    expect(STACK_RECIPE.user).toEqual({ name: 'slipway', uid: 1000, gid: 1000, home: '/home/slipway' });
  });
});

describe('mmdebstrap invocation', () => {
  it('passes the sources files as mirrors and names no host', () => {
    const args = mmdebstrapArgs(STACK_RECIPE, '/tmp/x.tar', ['/etc/apt/sources.list.d/debian.sources']);
    expect(args[0]).toBe('--variant=minbase');
    expect(args).toContain('--format=tar');
    expect(args.slice(-3)).toEqual([STACK_RECIPE.suite, '/tmp/x.tar', '/etc/apt/sources.list.d/debian.sources']);
    expect(args.join(' ')).not.toMatch(/https?:|deb\.debian\.org/);
  });

  it('reads the suite from os-release', () => {
    expect(parseOsCodename('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\nID=debian\n')).toBe('bookworm');
    expect(parseOsCodename('ID=debian\n')).toBeNull();
  });

  it('uses only enabled apt source files', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-apt-'));
    try {
      await fs.mkdir(path.join(root, 'sources.list.d'));
      await fs.writeFile(path.join(root, 'sources.list'), '# moved to deb822\n');
      await fs.writeFile(path.join(root, 'sources.list.d', 'debian.sources'), 'Types: deb\n');
      await fs.writeFile(path.join(root, 'sources.list.d', 'extra.list'), 'deb file:/srv x main\n');
      await fs.writeFile(path.join(root, 'sources.list.d', 'old.list.disabled'), 'deb file:/srv y main\n');
      expect(await aptSourceFiles(root)).toEqual([
        path.join(root, 'sources.list.d', 'debian.sources'),
        path.join(root, 'sources.list.d', 'extra.list'),
      ]);
      await fs.rm(path.join(root, 'sources.list.d'), { recursive: true });
      await expect(aptSourceFiles(root)).rejects.toThrow(/no apt sources/);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('importStack', () => {
  // A tiny image FROM scratch stands in for "some other image" in a docker save archive.
  const repo = `slipway-test/${randomApp()}`;
  const tag = `${repo}:v1`;
  let dir: string;
  let archive: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-stack-test-'));
    const pack = tar.pack();
    pack.entry({ name: 'Dockerfile' }, 'FROM scratch\nCOPY hello.txt /hello.txt\n');
    pack.entry({ name: 'hello.txt' }, 'hello\n');
    pack.finalize();
    const stream = await docker.buildImage(pack as unknown as NodeJS.ReadableStream, {
      t: tag,
      labels: { 'slipway.test': '1', 'slipway.stack': 'not-this-one' },
    });
    await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res))));
    archive = path.join(dir, 'other.tar');
    await pipeline(await docker.getImage(tag).get(), createWriteStream(archive));
  });

  afterAll(async () => {
    await docker.getImage(tag).remove().catch(() => {});
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads tags and labels from a saved archive', async () => {
    const images = await inspectSavedArchive(archive);
    expect(images).toHaveLength(1);
    expect(images[0]!.tags).toEqual([tag]);
    expect(images[0]!.labels['slipway.stack']).toBe('not-this-one');
  });

  it('refuses an archive of another image before loading anything', async () => {
    await docker.getImage(tag).remove();
    await expect(importStack(docker, archive, () => {})).rejects.toThrow(/holds .*but this slipway needs slipway-platform\/stack:/);
    // Nothing was loaded: the tag removed above is still gone.
    await expect(docker.getImage(tag).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses a file that is not an image archive', async () => {
    const junk = path.join(dir, 'junk.tar');
    await fs.writeFile(junk, 'this is not a tar file at all'.repeat(40));
    await expect(importStack(docker, junk, () => {})).rejects.toMatchObject({ code: 'E_STACK' });
    await expect(importStack(docker, path.join(dir, 'missing.tar'), () => {})).rejects.toThrow(/no such file/);
  });
});
