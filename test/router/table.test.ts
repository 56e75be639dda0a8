import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SlipwayError } from '../../core/errors.js';
import {
  emptyRouteTable,
  parseRouteTable,
  readRouteTable,
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

  it('keeps the idle listener of the stable fronts', () => {
    expect(parseRouteTable(JSON.stringify({ ...table, idle: '127.85.3.4:9' })).idle).toBe('127.85.3.4:9');
    expect(parseRouteTable(JSON.stringify(table)).idle).toBeUndefined();
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
    'idle listener without port': JSON.stringify({ ...table, idle: '127.85.3.4' }),
    'idle listener port out of range': JSON.stringify({ ...table, idle: '127.85.3.4:70000' }),
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
