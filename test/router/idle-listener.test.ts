import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteTable } from '../../router/table.js';
import { eventually, freePort, rawExchange, startNginxFixture, type NginxFixture } from './helpers.js';

const exec = promisify(execFile);

/**
 * A fronted app with nothing healthy has its front lead to nginx's own idle listener (the
 * table's `idle`, docs/router.md "Stable fronts"). The kernel's DNAT is transparent to nginx, so
 * here the app's upstream is the listener itself. Its answers must be byte for byte those of an
 * unfronted idle app (listed with []), whatever the request: the contract's idle 503.
 */
describe('the idle listener answers exactly as an idle app always did', () => {
  let fx: NginxFixture;
  let listener: string;
  // Same length, so Content-Length matches too.
  const plain = 'idle-a';
  const fronted = 'idle-b';

  beforeAll(async () => {
    listener = `127.0.0.1:${await freePort()}`;
    const table: RouteTable = { version: 1, domain: 'localhost', apps: { [plain]: { upstreams: [] }, [fronted]: { upstreams: [listener] } }, git: null, idle: listener };
    fx = await startNginxFixture(table);
  });

  afterAll(async () => {
    await fx?.close();
  });

  /** The raw answer, its Date header left out and the app's name made the plain one. */
  const exchange = async (app: string, raw: (app: string) => string): Promise<string> =>
    (await rawExchange(fx.router.port, raw(app))).replace(/^Date: .*\r\n/gm, '').replaceAll(app, plain);

  const requests: Array<[string, (app: string) => string]> = [
    ['by host', (app) => `GET /some/path?q=1 HTTP/1.1\r\nHost: ${app}.localhost:${fx.router.port}\r\nConnection: close\r\n\r\n`],
    ['by path', (app) => `GET /${app}/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`],
    ['HEAD', (app) => `HEAD / HTTP/1.1\r\nHost: ${app}.localhost\r\nConnection: close\r\n\r\n`],
    ['HTTP/1.0 without Host', (app) => `GET /${app}/ HTTP/1.0\r\n\r\n`],
    ['a body', (app) => `POST / HTTP/1.1\r\nHost: ${app}.localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`],
    ['a websocket upgrade', (app) => `GET /ws HTTP/1.1\r\nHost: ${app}.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`],
    ['keep-alive, two requests on one connection', (app) => `GET / HTTP/1.1\r\nHost: ${app}.localhost\r\n\r\nGET /again HTTP/1.1\r\nHost: ${app}.localhost\r\nConnection: close\r\n\r\n`],
    ['an unknown host routed by path to the app', (app) => `GET /${app} HTTP/1.1\r\nHost: nope.localhost\r\nConnection: close\r\n\r\n`],
  ];

  it.each(requests)('%s', async (_, raw) => {
    const want = await exchange(plain, raw);
    expect(want).toMatch(/^HTTP\/1\.1 503 Service Temporarily Unavailable\r\n/);
    expect(await exchange(fronted, raw)).toBe(want);
  });

  it('is the contract\'s idle text, and the request is logged once, under the app', async () => {
    const want = await exchange(plain, requests[0]![1]);
    expect(want).toContain(`app ${plain} has no running web process: deploy it or run ps:start/ps:scale\n`);
    const entries = await eventually(
      async () => (await fs.readFile(path.join(fx.prefix, 'logs', 'access.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l.includes(`${fronted}.localhost`)),
      (l) => l.length > 0,
    );
    // The listener logs nothing of its own (its entries would name no app).
    expect(entries.every((l) => l.includes(`"app":"${fronted}"`) && l.includes('"status":503'))).toBe(true);
  });

  it('keeps no connection to the listener: the app\'s next healthy process takes the next request', async () => {
    await exchange(fronted, requests[6]![1]);
    const port = listener.slice(listener.lastIndexOf(':') + 1);
    const { stdout } = await exec('ss', ['-Htn', 'state', 'established', '(', 'dport', '=', `:${port}`, 'or', 'sport', '=', `:${port}`, ')']);
    expect(stdout.trim()).toBe('');
  });
});
