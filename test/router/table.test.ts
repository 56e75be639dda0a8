import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SlipwayError } from '../../core/errors.js';
import {
  emptyRouteTable,
  parseRouteTable,
  readRouteTable,
  resolveRoute,
  serializeRouteTable,
  writeRouteTable,
  type RouteTable,
} from '../../router/table.js';

const table: RouteTable = {
  version: 1,
  domain: 'localhost',
  apps: { app: { upstreams: ['127.0.0.1:5001'] }, app2: { upstreams: ['127.0.0.1:5002', '127.0.0.1:5003'] }, down: { upstreams: [] } },
  git: 'unix:/run/slipway/git.sock',
};

function parseError(text: string): SlipwayError {
  try {
    parseRouteTable(text);
  } catch (err) {
    return err as SlipwayError;
  }
  throw new Error('expected parseRouteTable to throw');
}

describe('parseRouteTable', () => {
  it('accepts a valid table and round-trips it through serializeRouteTable', () => {
    expect(parseRouteTable(serializeRouteTable(table))).toEqual(table);
    expect(parseRouteTable(JSON.stringify(emptyRouteTable('example.com')))).toEqual({
      version: 1,
      domain: 'example.com',
      apps: {},
      git: null,
    });
  });

  it('accepts a TCP git upstream and drops unknown fields', () => {
    const t = parseRouteTable(JSON.stringify({ ...table, git: '127.0.0.1:7000', extra: 1, apps: { a: { upstreams: [], weight: 2 } } }));
    expect(t).toEqual({ version: 1, domain: 'localhost', apps: { a: { upstreams: [] } }, git: '127.0.0.1:7000' });
  });

  it('lower-cases the domain so host matching is case-insensitive', () => {
    expect(parseRouteTable(JSON.stringify({ ...table, domain: 'Apps.Example.COM' })).domain).toBe('apps.example.com');
  });

  const bad: Record<string, string> = {
    'not JSON': '{"version":1,',
    'wrong version': JSON.stringify({ ...table, version: 2 }),
    'missing git': JSON.stringify({ version: 1, domain: 'localhost', apps: {} }),
    'uppercase app name': JSON.stringify({ ...table, apps: { Bad: { upstreams: [] } } }),
    'app name with a dot': JSON.stringify({ ...table, apps: { 'a.b': { upstreams: [] } } }),
    'app name too long': JSON.stringify({ ...table, apps: { ['a'.repeat(31)]: { upstreams: [] } } }),
    'upstream without port': JSON.stringify({ ...table, apps: { a: { upstreams: ['127.0.0.1'] } } }),
    'upstream with a path': JSON.stringify({ ...table, apps: { a: { upstreams: ['127.0.0.1:80/x'] } } }),
    'upstream port out of range': JSON.stringify({ ...table, apps: { a: { upstreams: ['127.0.0.1:70000'] } } }),
    'upstreams not an array': JSON.stringify({ ...table, apps: { a: { upstreams: '127.0.0.1:80' } } }),
    'relative unix socket': JSON.stringify({ ...table, git: 'unix:run/git.sock' }),
    'git as URL': JSON.stringify({ ...table, git: 'http://127.0.0.1:80' }),
    'domain with space': JSON.stringify({ ...table, domain: 'local host' }),
    'not an object': '[]',
  };
  for (const [name, text] of Object.entries(bad)) {
    it(`rejects ${name} with one line E_ROUTES`, () => {
      const err = parseError(text);
      expect(err).toBeInstanceOf(SlipwayError);
      expect(err.code).toBe('E_ROUTES');
      expect(err.message).toMatch(/^invalid route table: /);
      expect(err.message).not.toContain('\n');
    });
  }

  it('refuses to serialise an invalid table', () => {
    expect(() => serializeRouteTable({ ...table, apps: { 'Bad;rm': { upstreams: [] } } })).toThrow(/invalid route table/);
  });
});

describe('readRouteTable / writeRouteTable', () => {
  it('writes atomically and reads back; a missing file is ENOENT', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-routes-'));
    try {
      const file = path.join(dir, 'routes.json');
      await expect(readRouteTable(file)).rejects.toMatchObject({ code: 'ENOENT' });
      await writeRouteTable(file, table);
      expect(await readRouteTable(file)).toEqual(table);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o644);
      expect((await fs.readdir(dir)).sort()).toEqual(['routes.json']);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveRoute', () => {
  const app = (name: string) => ({ kind: 'app', app: name, upstreams: table.apps[name]!.upstreams });

  it('routes by exact host, case-insensitive, port stripped', () => {
    expect(resolveRoute(table, 'app.localhost', '/')).toEqual(app('app'));
    expect(resolveRoute(table, 'APP.LocalHost:8080', '/x?y')).toEqual(app('app'));
    expect(resolveRoute(table, 'app2.localhost:80', '/')).toEqual(app('app2'));
    expect(resolveRoute(table, 'down.localhost', '/')).toEqual({ kind: 'app', app: 'down', upstreams: [] });
  });

  it('never matches a host by substring or suffix', () => {
    expect(resolveRoute(table, 'evillocalhost', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'app.localhost.evil.com', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'xapp.localhost', '/')).toEqual({ kind: 'unknown', app: 'xapp' });
    expect(resolveRoute(table, 'appx.localhost', '/')).toEqual({ kind: 'unknown', app: 'appx' });
    expect(resolveRoute(table, 'a.app.localhost', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, '.localhost', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'app.localhost.', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'app.evillocalhost', '/')).toEqual({ kind: 'unknown', app: null });
  });

  it('host routing wins over path routing', () => {
    expect(resolveRoute(table, 'app2.localhost', '/app/x')).toEqual(app('app2'));
    expect(resolveRoute(table, 'app.localhost', '/_git/app.git/info/refs')).toEqual(app('app'));
  });

  it('routes by the first path segment when the host names no app', () => {
    for (const p of ['/app', '/app/', '/app/deep/path', '/app?x=1', '/app#f']) {
      expect(resolveRoute(table, 'localhost:8080', p)).toEqual(app('app'));
    }
    expect(resolveRoute(table, undefined, '/app2/x')).toEqual(app('app2'));
    expect(resolveRoute(table, '127.0.0.1', '/app')).toEqual(app('app'));
    expect(resolveRoute(table, '[::1]:8080', '/app')).toEqual(app('app'));
    // An unknown app host falls back to the path, and names itself when the path does not help.
    expect(resolveRoute(table, 'nope.localhost', '/app')).toEqual(app('app'));
    expect(resolveRoute(table, 'nope.localhost', '/other')).toEqual({ kind: 'unknown', app: 'nope' });
  });

  it('sends /_git/ to git, and nothing else', () => {
    expect(resolveRoute(table, 'localhost', '/_git/app.git/info/refs?service=git-receive-pack')).toEqual({ kind: 'git' });
    expect(resolveRoute(table, undefined, '/_git/x')).toEqual({ kind: 'git' });
    expect(resolveRoute(table, 'localhost', '/_git')).toEqual({ kind: 'unknown', app: '_git' });
    expect(resolveRoute(table, 'localhost', '/_gitx/y')).toEqual({ kind: 'unknown', app: '_gitx' });
  });

  it('matches whole path segments only and ignores prototype names', () => {
    expect(resolveRoute(table, 'localhost', '/apple')).toEqual({ kind: 'unknown', app: 'apple' });
    expect(resolveRoute(table, 'localhost', '/ap')).toEqual({ kind: 'unknown', app: 'ap' });
    expect(resolveRoute(table, 'localhost', '/')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'localhost', '/?app')).toEqual({ kind: 'unknown', app: null });
    expect(resolveRoute(table, 'constructor.localhost', '/__proto__')).toEqual({ kind: 'unknown', app: 'constructor' });
    expect(resolveRoute(table, 'localhost', '/__proto__/x')).toEqual({ kind: 'unknown', app: '__proto__' });
  });
});
