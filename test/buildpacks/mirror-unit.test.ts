import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { integrityMatches, parseSri, sha1HexToSri, sha512Sri } from '../../buildpacks/mirror/integrity.js';
import { npmTarballPath } from '../../buildpacks/mirror/layout.js';
import { lockfilePackages } from '../../buildpacks/mirror/lockfile.js';
import { pickNpm, summarize } from '../../buildpacks/mirror/node-runtime.js';
import { indentLine, lineIndenter } from '../../buildpacks/output.js';
import { parseRelease } from '../../buildpacks/release.js';
import { parseMemory } from '../../core/units.js';

const I = (s: string) => `sha512-${createHash('sha512').update(s).digest('base64')}`;

describe('lockfilePackages', () => {
  it('reads a v1 lockfile, nested deps included, skipping bundled, file: and git deps', () => {
    const lock = {
      lockfileVersion: 1,
      dependencies: {
        ms: { version: '2.1.3', resolved: 'https://registry.npmjs.org/ms/-/ms-2.1.3.tgz', integrity: I('ms') },
        debug: {
          version: '4.3.4',
          resolved: 'https://registry.npmjs.org/debug/-/debug-4.3.4.tgz',
          integrity: I('debug'),
          dependencies: { ms: { version: '2.1.2', integrity: I('ms2') } },
        },
        '@scope/pkg': { version: '1.0.0', integrity: I('scoped') },
        withbundle: {
          version: '1.0.0',
          integrity: I('wb'),
          dependencies: { inner: { version: '3.0.0', bundled: true } },
        },
        local: { version: 'file:../local' },
        fromgit: { version: 'git+https://github.com/a/b.git#abc', from: 'github:a/b' },
        alias: { version: 'npm:ms@2.1.3' },
      },
    };
    expect(lockfilePackages(JSON.stringify(lock))).toEqual([
      { name: 'ms', version: '2.1.3', resolved: 'https://registry.npmjs.org/ms/-/ms-2.1.3.tgz', integrity: I('ms') },
      { name: 'debug', version: '4.3.4', resolved: 'https://registry.npmjs.org/debug/-/debug-4.3.4.tgz', integrity: I('debug') },
      { name: 'ms', version: '2.1.2', integrity: I('ms2') },
      { name: '@scope/pkg', version: '1.0.0', integrity: I('scoped') },
      { name: 'withbundle', version: '1.0.0', integrity: I('wb') },
    ]);
  });

  it('reads a v3 lockfile: node_modules entries only, no links, bundles or workspaces, deduplicated', () => {
    const lock = {
      lockfileVersion: 3,
      packages: {
        '': { name: 'app', version: '1.0.0' },
        'packages/ws': { name: 'ws-pkg', version: '0.1.0' },
        'node_modules/ws-pkg': { resolved: 'packages/ws', link: true },
        'node_modules/ms': { version: '2.1.3', integrity: I('ms') },
        'node_modules/debug': { version: '4.3.4', resolved: 'https://registry.npmjs.org/debug/-/debug-4.3.4.tgz', integrity: I('debug') },
        'node_modules/debug/node_modules/ms': { version: '2.1.2', integrity: I('ms2') },
        'node_modules/other/node_modules/ms': { version: '2.1.3', integrity: I('ms') },
        'node_modules/@s/n': { version: '1.2.3', integrity: I('sn') },
        'node_modules/bundler/node_modules/inner': { version: '1.0.0', inBundle: true },
        'node_modules/aliased': { name: 'ms', version: '2.0.0', integrity: I('ms0') },
        'node_modules/gitdep': { version: '1.0.0', resolved: 'git+ssh://git@github.com/a/b.git#abc' },
        'node_modules/tarball': { version: '1.0.0', resolved: 'file:vendor/t.tgz' },
        'node_modules/../../evil': { version: '1.0.0' },
      },
    };
    expect(lockfilePackages(JSON.stringify(lock))).toEqual([
      { name: 'ms', version: '2.1.3', integrity: I('ms') },
      { name: 'debug', version: '4.3.4', resolved: 'https://registry.npmjs.org/debug/-/debug-4.3.4.tgz', integrity: I('debug') },
      { name: 'ms', version: '2.1.2', integrity: I('ms2') },
      { name: '@s/n', version: '1.2.3', integrity: I('sn') },
      { name: 'ms', version: '2.0.0', integrity: I('ms0') },
    ]);
  });

  it('refuses text that is not JSON with a hint', () => {
    expect(() => lockfilePackages('{')).toThrow(/package-lock.json is not valid JSON/);
  });
});

describe('SRI', () => {
  const data = Buffer.from('hello mirror');
  const sha1 = `sha1-${createHash('sha1').update(data).digest('base64')}`;

  it('verifies sha512 and sha1', () => {
    expect(integrityMatches(data, sha512Sri(data))).toBe(true);
    expect(integrityMatches(data, sha1)).toBe(true);
    expect(integrityMatches(Buffer.from('tampered'), sha512Sri(data))).toBe(false);
    expect(integrityMatches(data, sha1HexToSri(createHash('sha1').update(data).digest('hex'))!)).toBe(true);
  });

  it('lets only the strongest algorithm vouch', () => {
    // A matching sha1 next to a wrong sha512 must not pass.
    expect(integrityMatches(data, `${sha512Sri(Buffer.from('other'))} ${sha1}`)).toBe(false);
    expect(integrityMatches(data, `${sha1} ${sha512Sri(data)}`)).toBe(true);
  });

  it('treats unknown or empty integrity as a mismatch', () => {
    expect(integrityMatches(data, '')).toBe(false);
    expect(integrityMatches(data, 'md5-abc')).toBe(false);
    expect(parseSri('sha512-abc= sha1-def?opt')).toEqual([
      { algorithm: 'sha512', digest: 'abc=' },
      { algorithm: 'sha1', digest: 'def' },
    ]);
  });
});

describe('mirror layout', () => {
  it('mirrors registry tarball paths, scoped names included', () => {
    expect(npmTarballPath('ms', '2.1.3')).toBe('npm/ms/-/ms-2.1.3.tgz');
    expect(npmTarballPath('@s/n', '1.0.0-beta.1')).toBe('npm/@s/n/-/n-1.0.0-beta.1.tgz');
  });

  it('refuses names and versions that could leave the mirror', () => {
    for (const [n, v] of [['..', '1.0.0'], ['a/../../b', '1.0.0'], ['@s/..', '1.0.0'], ['ms', '../1.0.0'], ['/etc', '1.0.0'], ['ms', '1.0']]) {
      expect(() => npmTarballPath(n!, v!)).toThrow(/not a valid npm package version/);
    }
  });
});

describe('node runtime choice', () => {
  it('prefers the newest accepted npm of the 10.x/11.x lines', async () => {
    const versions = ['9.9.4', '10.9.2', '11.6.0', '11.7.0-pre.1', '12.0.0'];
    expect(await pickNpm(versions, async () => true)).toBe('11.6.0');
    expect(await pickNpm(versions, async (v) => !v.startsWith('11.'))).toBe('10.9.2');
    expect(await pickNpm(versions, async (v) => v === '12.0.0' || v === '9.9.4')).toBe('12.0.0');
    expect(await pickNpm(versions, async () => false)).toBeNull();
  });

  it('summarizes the newest release per major line', () => {
    expect(summarize(['20.1.0', '20.19.5', '22.3.0', '24.0.0-rc.1', '24.2.0'])).toBe('20.19.5, 22.3.0, 24.2.0');
    expect(summarize([])).toBe('none');
  });
});

describe('release output', () => {
  it('reads process types and config vars, noting addons', () => {
    const info = parseRelease('---\ndefault_process_types:\n  web: npm start\nconfig_vars:\n  A: 1\naddons:\n  - pg\n', 'node');
    expect(info).toEqual({ processTypes: { web: 'npm start' }, configVars: { A: '1' }, notes: [expect.stringMatching(/addons/)] });
    expect(parseRelease('', 'x')).toEqual({ processTypes: {}, configVars: {}, notes: [] });
    expect(parseRelease('default_process_types: {}\n', 'x').processTypes).toEqual({});
  });

  it('refuses malformed output naming the buildpack', () => {
    expect(() => parseRelease('default_process_types: [1]\n', 'bp')).toThrow(/buildpack bp: default_process_types/);
    expect(() => parseRelease('default_process_types:\n  web: {x: 1}\n', 'bp')).toThrow(/web in bin\/release output must be a string/);
    expect(() => parseRelease(': : :\n  - [', 'bp')).toThrow(/buildpack bp: bin\/release printed invalid YAML/);
  });
});

describe('build output', () => {
  it('indents buildpack lines but not headers or already indented lines', () => {
    expect(indentLine('-----> Installing')).toBe('-----> Installing');
    expect(indentLine('added 1 package')).toBe('       added 1 package');
    expect(indentLine('       already')).toBe('       already');
  });

  it('reassembles lines split across chunks, including multi-byte characters', () => {
    const out: string[] = [];
    const w = lineIndenter((t) => out.push(t));
    const bytes = Buffer.from('-----> Step\nhé');
    w.write(bytes.subarray(0, bytes.length - 1));
    w.write(Buffer.concat([bytes.subarray(bytes.length - 1), Buffer.from('llo\r\nlast')]));
    w.flush();
    expect(out.join('')).toBe('-----> Step\n       héllo\n       last\n');
  });

  it('parses memory sizes', () => {
    expect(parseMemory('2g')).toBe(2 * 1024 ** 3);
    expect(parseMemory('512m')).toBe(512 * 1024 ** 2);
    expect(parseMemory('1000')).toBe(1000);
    expect(() => parseMemory('2 gb')).toThrow(/invalid memory size/);
  });
});

describe('PackumentCache', () => {
  it('answers from memory within its lifetime and asks again after it, or after a failure', async () => {
    const { PackumentCache } = await import('../../buildpacks/mirror/fetch.js');
    const cache = new PackumentCache(1000);
    let loads = 0;
    const load = async () => {
      loads += 1;
      return { versions: { '1.0.0': {} }, distTags: {} };
    };
    await cache.get('u', load, 0);
    await cache.get('u', load, 999);
    expect(loads).toBe(1);
    await cache.get('u', load, 1000);
    expect(loads).toBe(2);
    await expect(cache.get('bad', () => Promise.reject(new Error('down')), 0)).rejects.toThrow('down');
    await new Promise((r) => setImmediate(r));
    await cache.get('bad', load, 1);
    expect(loads).toBe(3);
  });
});
