#!/usr/bin/env node
// Proxied vs direct request rate on loopback, bounded in time (about 2 x SECONDS).
// Usage: node bench/router.mjs [seconds=3] [concurrency=32]   (needs the build: ./scripts/ensure-build)
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../dist/platform/log.js';
import { startRouter } from '../dist/router/server.js';
import { writeRouteTable } from '../dist/router/table.js';

const seconds = Number(process.argv[2] ?? 3);
const concurrency = Number(process.argv[3] ?? 32);

const upstream = http.createServer((_req, res) => res.end('hello'));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upPort = upstream.address().port;

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-bench-'));
const routesFile = path.join(dir, 'routes.json');
await writeRouteTable(routesFile, { version: 1, domain: 'localhost', apps: { app: { upstreams: [`127.0.0.1:${upPort}`] } }, git: null });
const router = await startRouter({ routesFile, listen: '127.0.0.1', port: 0, logger: createLogger('error'), closeGraceMs: 1000 });

async function rate(port, host) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  const one = () =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { host } }, (res) => {
        if (res.statusCode !== 200) failed++;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await one();
        done++;
      }
    }),
  );
  agent.destroy();
  return { perSecond: done / seconds, failed };
}

try {
  const direct = await rate(upPort, 'app.localhost');
  const proxied = await rate(router.port, 'app.localhost');
  console.log(`direct:  ${direct.perSecond.toFixed(0)} req/s (${direct.failed} failed)`);
  console.log(`proxied: ${proxied.perSecond.toFixed(0)} req/s (${proxied.failed} failed)`);
  console.log(`ratio proxied/direct: ${(proxied.perSecond / direct.perSecond).toFixed(2)}`);
} finally {
  await router.close();
  upstream.close();
  await fs.rm(dir, { recursive: true, force: true });
}
