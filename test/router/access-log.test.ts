import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAccessLog, formatAccessEntry, parseAccessLine, tailAccessLog, type AccessEntry } from '../../router/access-log.js';
import { eventually, request, sleep, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

const line = (app: string, n: number): string =>
  `${JSON.stringify({ time: '2026-12-02T03:09:34+00:00', app, status: 200, bytes: n, upstream_time: '0.002', request_id: `id-${app}-${n}`, method: 'GET', host: `${app}.localhost`, remote: '127.0.0.1' })}\n`;

describe('the router access log (pure)', () => {
  it('parses our lines and skips torn or foreign ones', () => {
    expect(parseAccessLine(line('web', 5).trim())).toEqual({
      time: '2026-12-02T03:09:34+00:00',
      app: 'web',
      status: 200,
      bytes: 5,
      upstreamTime: '0.002',
      requestId: 'id-web-5',
      method: 'GET',
      host: 'web.localhost',
    });
    for (const bad of ['', '{"app":"web"', 'not json', '[]', 'null', '{"app":"web","status":"200"}']) expect(parseAccessLine(bad), bad).toBeNull();
  });

  it('prints a line shaped like an app log line: UTC time, source, then status, method, host, bytes, upstream time, request id', () => {
    const e = parseAccessLine(line('web', 5).trim())!;
    expect(formatAccessEntry(e)).toBe('2026-12-02T03:09:34.000Z router: 200 GET web.localhost 5B upstream 0.002s request id-web-5\n');
    expect(formatAccessEntry({ ...e, status: 404, upstreamTime: '' })).toContain(' 404 GET web.localhost 5B upstream - request ');
  });
});

describe('the router access log (files)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-access-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads the last N lines of one app, across read blocks, oldest first; a missing log is empty', async () => {
    const file = path.join(dir, 'access.log');
    // ~300 KB: several 64 KB blocks, with the app's lines spread among another app's.
    let text = '';
    for (let n = 0; n < 1500; n++) text += line(n % 3 === 0 ? 'web' : 'other', n);
    await fs.writeFile(file, text);
    const last = await tailAccessLog(file, 'web', 400);
    expect(last).toHaveLength(400);
    expect(last.map((e) => e.bytes)).toEqual(Array.from({ length: 400 }, (_, i) => 1500 - 3 * (400 - i)));
    expect(await tailAccessLog(file, 'web', 100_000)).toHaveLength(500);
    expect(await tailAccessLog(file, 'web', 0)).toEqual([]);
    expect(await tailAccessLog(file, 'nope', 10)).toEqual([]);
    expect(await tailAccessLog(path.join(dir, 'missing.log'), 'web', 10)).toEqual([]);
  });

  it('follows new lines of one app, a line written in two pieces once, and starts over after a rotation', async () => {
    const file = path.join(dir, 'follow.log');
    await fs.writeFile(file, line('web', 1));
    const seen: AccessEntry[] = [];
    const stop = new AbortController();
    const following = followAccessLog(file, 'web', (e) => seen.push(e), stop.signal, 20);
    try {
      await sleep(60);
      await fs.appendFile(file, line('other', 2) + line('web', 3));
      const torn = line('web', 4);
      await fs.appendFile(file, torn.slice(0, 20));
      await sleep(80);
      await fs.appendFile(file, torn.slice(20));
      await eventually(async () => seen.length, (n) => n >= 2);
      await fs.writeFile(file, line('web', 5)); // truncated and rewritten, as a rotation would
      await eventually(async () => seen.length, (n) => n >= 3);
      expect(seen.map((e) => e.bytes)).toEqual([3, 4, 5]);
    } finally {
      stop.abort();
      await following;
    }
  });
});

describe('the router access log (nginx writes it)', () => {
  let up: Upstream;
  let fx: NginxFixture;
  beforeAll(async () => {
    up = await startUpstream('web');
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { web: { upstreams: [up.target] }, idle: { upstreams: [] } }, git: null });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it("has each app's requests with status, bytes, upstream time and request id, and nothing of other apps", async () => {
    const file = path.join(fx.prefix, 'logs', 'access.log');
    await request(fx.router.port, { host: 'web.localhost', headers: { 'x-request-id': 'tail-me-1' } });
    await request(fx.router.port, { host: 'idle.localhost', headers: { 'x-request-id': 'tail-me-2' } });
    await request(fx.router.port, { host: 'web.localhost', path: '/missing', headers: { 'x-request-id': 'tail-me-3' } });
    const web = await eventually(() => tailAccessLog(file, 'web', 10), (es) => es.length === 2);
    expect(web.map((e) => e.requestId)).toEqual(['tail-me-1', 'tail-me-3']);
    expect(web[0]).toMatchObject({ app: 'web', status: 200, method: 'GET', host: 'web.localhost' });
    expect(web[0]!.bytes).toBeGreaterThan(0);
    expect(web[0]!.upstreamTime).toMatch(/^[0-9.]+$/);
    const idle = await tailAccessLog(file, 'idle', 10);
    expect(idle).toMatchObject([{ app: 'idle', status: 503, requestId: 'tail-me-2' }]);
    expect(formatAccessEntry(idle[0]!)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z router: 503 GET idle\.localhost \d+B upstream - request tail-me-2\n$/);
  });
});
