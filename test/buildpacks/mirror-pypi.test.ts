import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPythonRequirements } from '../../hooks/prepare-mirror.js';
import { missingRequirements, normalizePypiName, normalizePypiVersion, parsePypiFilename, parseRequirements } from '../../buildpacks/mirror/pypi.js';
import { parseNpmSpec, parseUpstreamUrl } from '../../services/mirror-admin.js';
import { SlipwayError } from '../../core/errors.js';

describe('PEP 503 names and versions', () => {
  it('normalizes runs of -, _ and . and case', () => {
    expect(normalizePypiName('Flask_SQLAlchemy')).toBe('flask-sqlalchemy');
    expect(normalizePypiName('zope.interface')).toBe('zope-interface');
    expect(normalizePypiName('a-_.b')).toBe('a-b');
  });
  it('compares versions as pip == does for zero padding', () => {
    expect(normalizePypiVersion('1.0')).toBe(normalizePypiVersion('1.0.0'));
    expect(normalizePypiVersion('2.0.1rc1')).toBe('2.0.1rc1');
    expect(normalizePypiVersion('1.10')).not.toBe(normalizePypiVersion('1.1'));
  });
});

describe('parsePypiFilename', () => {
  it('reads wheels, with and without a build tag', () => {
    expect(parsePypiFilename('Flask-3.0.0-py3-none-any.whl')).toEqual({ name: 'flask', version: '3.0.0', kind: 'wheel' });
    expect(parsePypiFilename('numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl')).toEqual({ name: 'numpy', version: '1.26.4', kind: 'wheel' });
    expect(parsePypiFilename('pkg_name-1.0-1build-py3-none-any.whl')).toEqual({ name: 'pkg-name', version: '1.0', kind: 'wheel' });
  });
  it('reads sdists, dashes in old names included', () => {
    expect(parsePypiFilename('requests-2.31.0.tar.gz')).toEqual({ name: 'requests', version: '2.31.0', kind: 'sdist' });
    expect(parsePypiFilename('python-dateutil-2.8.2.tar.gz')).toEqual({ name: 'python-dateutil', version: '2.8.2', kind: 'sdist' });
    expect(parsePypiFilename('foo-1.0.zip')?.kind).toBe('sdist');
  });
  it('refuses names that are not packages or could leave the folder', () => {
    for (const bad of ['../evil-1.0-py3-none-any.whl', '/abs-1.0.tar.gz', '.hidden-1.0.tar.gz', 'a/b-1.0.tar.gz', 'flask.whl', 'flask-3.0.0-any.whl', 'x-1.0-py3-none-any.exe', 'noversion.tar.gz', 'name-v.tar.gz', 'sp ace-1.0.tar.gz', 'x-1.0-py3-none-any.whl\n', '']) {
      expect(parsePypiFilename(bad), bad).toBeNull();
    }
  });
});

describe('parseRequirements', () => {
  it('reads pins, skipping comments and blanks, ignoring extras, markers and hashes', () => {
    const text = [
      '# a comment',
      'Flask==3.0.0  # web',
      '',
      'requests[security] == 2.31.0',
      'pywin32==306 ; sys_platform == "win32"',
      'six==1.16.0 \\',
      '    --hash=sha256:abc',
      'Zope.Interface===6.1',
    ].join('\n');
    expect(parseRequirements(text)).toEqual([
      { name: 'flask', version: '3.0.0', line: 2 },
      { name: 'requests', version: '2.31.0', line: 4 },
      { name: 'pywin32', version: '306', line: 5 },
      { name: 'six', version: '1.16.0', line: 6 },
      { name: 'zope-interface', version: '6.1', line: 8 },
    ]);
  });
  it('refuses includes, pip options, unpinned and URL requirements with the line number', () => {
    const cases: [string, RegExp][] = [
      ['flask==3.0.0\n-r base.txt', /line 2: includes \(-r, -c\) are not supported/],
      ['-c constraints.txt', /line 1: includes/],
      ['--index-url https://example.invalid/simple', /line 1: pip options \(--index-url\)/],
      ['-e .', /line 1: pip options/],
      ['flask>=3', /line 1: "flask>=3" is not pinned/],
      ['flask', /is not pinned/],
      ['flask==3.*', /is not pinned/],
      ['pkg @ https://example.invalid/pkg.whl', /is not pinned/],
    ];
    for (const [text, message] of cases) {
      let err: unknown;
      try {
        parseRequirements(text);
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(SlipwayError);
      expect((err as Error).message).toMatch(message);
    }
  });
  it('finds requirements that no mirrored file satisfies', () => {
    const reqs = parseRequirements('flask==3.0\nrequests==2.31.0\nsix==1.16.0\n');
    const files = ['Flask-3.0.0-py3-none-any.whl', 'requests-2.31.0.tar.gz', 'six-1.15.0-py2.py3-none-any.whl', 'README'];
    expect(missingRequirements(reqs, files).map((r) => `${r.name}==${r.version}`)).toEqual(['six==1.16.0']);
  });
});

describe('npm specs and upstream URLs', () => {
  it('splits name and range, scoped names included', () => {
    expect(parseNpmSpec('yarn@1')).toEqual({ name: 'yarn', range: '1' });
    expect(parseNpmSpec('@scope/pkg@^2.0.0')).toEqual({ name: '@scope/pkg', range: '^2.0.0' });
    expect(parseNpmSpec('@scope/pkg')).toEqual({ name: '@scope/pkg', range: 'latest' });
    expect(parseNpmSpec('pnpm@next-9')).toEqual({ name: 'pnpm', range: 'next-9' });
  });
  it('refuses specs that are not npm names or ranges', () => {
    for (const bad of ['../x', 'a b', 'x@$(id)', '', '@', 'x@>=1 <; rm']) {
      expect(() => parseNpmSpec(bad), bad).toThrow(SlipwayError);
    }
  });
  it('accepts http(s) upstreams only, normalized with a trailing slash', () => {
    expect(parseUpstreamUrl('https://registry.example.com/npm')).toBe('https://registry.example.com/npm/');
    expect(parseUpstreamUrl('http://127.0.0.1:4873/?x=1')).toBe('http://127.0.0.1:4873/');
    for (const bad of ['file:///etc/passwd', 'ftp://x/', 'not a url', 'registry.npmjs.org']) expect(() => parseUpstreamUrl(bad), bad).toThrow(SlipwayError);
  });
});

describe('checkPythonRequirements (before a Python build)', () => {
  it('passes when every pin is mirrored, and names each missing one with the commands to add it', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-pyreq-'));
    try {
      const app = path.join(tmp, 'app');
      const mirror = path.join(tmp, 'mirror');
      await fs.mkdir(app);
      await fs.mkdir(path.join(mirror, 'pypi'), { recursive: true });
      await fs.writeFile(path.join(mirror, 'pypi', 'Flask-3.0.0-py3-none-any.whl'), 'w');
      const lines: string[] = [];
      await checkPythonRequirements(app, mirror, (l) => lines.push(l)); // no requirements.txt: nothing to check
      expect(lines).toEqual([]);
      await fs.writeFile(path.join(app, 'requirements.txt'), 'flask==3.0.0\n');
      await checkPythonRequirements(app, mirror, (l) => lines.push(l));
      expect(lines).toEqual(['-----> Checking 1 Python requirement against the mirror']);
      await fs.writeFile(path.join(app, 'requirements.txt'), 'flask==3.0.0\nitsdangerous==2.1.2\n');
      await expect(checkPythonRequirements(app, mirror, () => undefined)).rejects.toThrow(
        /missing from the mirror: itsdangerous==2\.1\.2; .*pip download --no-deps -d wheels itsdangerous==2\.1\.2.*slipway mirror:add pypi/,
      );
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});
