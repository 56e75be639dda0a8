import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { webCommandDoor } from '../platform/web-door.js';
import { createWebHandler, listenWeb } from '../web/server.js';
import { miniPlatform, type MiniPlatform } from '../test/support/mini-platform.js';
import { repoRoot } from '../test/support/platform.js';
import { webRequest } from '../test/support/web-client.js';

/**
 * Server time of /Manager with 200 deployed apps (README "Web"): from the request to the last
 * byte, over the web server's unix socket, with the real command table and stores. Prints the
 * median and the worst of 30 requests; asserts nothing about time.
 */
const APPS = 200;
let mini: MiniPlatform;
let server: http.Server;
let socket: string;

beforeAll(async () => {
  mini = await miniPlatform();
  const origin = { actor: 'admin', source: 'bench' };
  mini.platform.users.add(origin, { name: 'dev', role: 'developer', email: null, passwordHash: null });
  for (let i = 0; i < APPS; i++) {
    const name = `app-${String(i).padStart(3, '0')}`;
    await mini.platform.apps.create(name);
    mini.platform.users.appCreated(origin, name, 'dev');
    await mini.platform.apps.update(name, (a) => {
      a.releases.push({ version: 1, image: `slipway/${name}:v1`, buildId: null, commit: 'a'.repeat(40), configHash: 'x', processTypes: { web: 'node server.js' }, defaultConfig: {}, createdAt: new Date().toISOString(), by: 'dev', description: 'Deploy aaaaaaa' });
      a.current = 1;
      a.portal = { title: `App ${i}`, description: 'A benchmark app', tags: ['bench'] };
    });
  }
  socket = path.join(mini.dir, 'web.sock');
  server = await listenWeb(socket, await createWebHandler({ door: webCommandDoor(mini.platform), logger: mini.platform.logger, assetsDir: path.join(repoRoot, 'web', 'assets') }));
}, 300_000);

afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await mini?.close();
});

it(`renders /Manager with ${APPS} apps`, async () => {
  const times: number[] = [];
  let body = '';
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const r = await webRequest(socket, { path: '/Manager', user: 'dev' });
    times.push(performance.now() - t0);
    body = r.body;
  }
  expect(body.match(/<tr>\n<th scope="row">/g)).toHaveLength(APPS);
  times.sort((a, b) => a - b);
  console.log(`/Manager with ${APPS} apps: median ${times[15]!.toFixed(1)} ms, worst ${times[29]!.toFixed(1)} ms of server time (30 requests over the unix socket)`);
});
