import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { followBuildLog } from '../core/build-logs.js';
import { pathsFor } from '../core/paths.js';
import { webCommandDoor } from '../platform/web-door.js';
import type { Platform } from '../receiver/commands/types.js';
import { createWebHandler, listenWeb } from '../web/server.js';
import { miniPlatform, type MiniPlatform } from '../test/support/mini-platform.js';
import { repoRoot } from '../test/support/platform.js';

/**
 * A build log line reaches the App Manager within a second of the build printing it (README
 * "Web", issue 14). A build record marked running and its log file, as hooks/deploy.ts makes them;
 * this process appends lines to the file at uneven intervals, the way a build prints, and times
 * each line until it arrives as a Server-Sent Event on the page's stream
 * (`GET /_web/api/stream?argv=builds:log&argv=<app>&argv=<id>`, the real web server and command
 * table over its unix socket). The baseline, in the same run and on the same lines: a reader of
 * the same file woken by the kernel (`fs.watch`), the fastest a line could be seen at all.
 * Prints the latencies and their ratio; asserts only that every line arrived, in order.
 */
const LINES = 60;
const APP = 'bench';
const BUILD = '20261202100000-abcdef';
let mini: MiniPlatform;
let server: http.Server;
let socket: string;
let logFile: string;

beforeAll(async () => {
  mini = await miniPlatform();
  const paths = pathsFor(path.join(mini.dir, 'home'));
  // The mini platform has no `life`; this is the daemon's own (platform/life.ts) over the same stores.
  const life = { followBuildLog: (app: string, id: string | undefined, io: { out(text: string): void; signal: AbortSignal }) => followBuildLog(paths, () => mini.platform.apps.get(app), id, io) };
  const platform = new Proxy(mini.platform, { get: (t, p, r) => (p === 'life' ? life : Reflect.get(t, p, r)) }) as Platform;
  const origin = { actor: 'admin', source: 'bench' };
  platform.users.add(origin, { name: 'dev', role: 'developer', email: null, passwordHash: null });
  await platform.apps.create(APP);
  platform.users.appCreated(origin, APP, 'dev');
  await platform.apps.update(APP, (a) => {
    a.builds.push({ id: BUILD, commit: 'a'.repeat(40), status: 'running', startedAt: new Date().toISOString(), finishedAt: null, durationMs: null, buildpacks: [], error: null, by: 'dev' });
  });
  logFile = path.join(paths.buildsDir, APP, `${BUILD}.log`);
  await fsp.mkdir(path.dirname(logFile), { recursive: true });
  await fsp.writeFile(logFile, `-----> Building ${APP}\n`);
  socket = path.join(mini.dir, 'web.sock');
  server = await listenWeb(socket, await createWebHandler({ door: webCommandDoor(platform), logger: platform.logger, assetsDir: path.join(repoRoot, 'web', 'assets') }));
}, 60_000);

afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  await mini?.close();
});

/** Calls `seen(line)` for every `data:` line of the page's stream, until `end`. */
function sseClient(seen: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams([['argv', 'builds:log'], ['argv', APP], ['argv', BUILD]]);
    const req = http.request({ socketPath: socket, path: `/_web/api/stream?${q}`, headers: { Host: 'localhost', 'X-Slipway-User': 'dev', Accept: 'text/event-stream' } }, (res) => {
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let at: number;
        while ((at = buf.indexOf('\n\n')) !== -1) {
          const event = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (/^event: end$/m.test(event)) return void (res.destroy(), resolve());
          const data = /^data: (.*)$/m.exec(event);
          if (data && !/^event:/m.test(event)) seen(data[1]!);
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The baseline: the same file read again each time the kernel says it changed. */
function fileWatcher(seen: (line: string) => void): { stop(): void } {
  let offset = 0;
  let partial = '';
  let reading = false;
  let again = false;
  const read = () => {
    if (reading) return void (again = true);
    reading = true;
    const fd = fs.openSync(logFile, 'r');
    try {
      for (;;) {
        const b = Buffer.alloc(64 * 1024);
        const n = fs.readSync(fd, b, 0, b.length, offset);
        if (n === 0) break;
        offset += n;
        const lines = (partial + b.subarray(0, n).toString('utf8')).split('\n');
        partial = lines.pop()!;
        lines.forEach(seen);
      }
    } finally {
      fs.closeSync(fd);
      reading = false;
    }
    if (again) {
      again = false;
      read();
    }
  };
  const watcher = fs.watch(logFile, read);
  read();
  return { stop: () => watcher.close() };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p95: at(0.95), max: s[s.length - 1]! };
};

it(`times ${LINES} build log lines from the file to the page's event stream`, async () => {
  const written = new Map<string, number>();
  const viaPage = new Map<string, number>();
  const viaFile = new Map<string, number>();
  const order: string[] = [];
  const note = (into: Map<string, number>) => (line: string) => {
    if (line.startsWith('bench-line ') && !into.has(line)) into.set(line, performance.now());
    if (into === viaPage) order.push(line);
  };
  const streaming = sseClient(note(viaPage));
  const watcher = fileWatcher(note(viaFile));
  // Let the stream open and read the first line before timing starts.
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 0; i < LINES; i++) {
    const line = `bench-line ${String(i).padStart(3, '0')} ${'x'.repeat(i % 7 === 0 ? 2000 : 60)}`;
    written.set(line, performance.now());
    await fsp.appendFile(logFile, `${line}\n`);
    // Builds print in bursts and pauses: 5 to 400 ms apart.
    await new Promise((r) => setTimeout(r, 5 + ((i * 97) % 396)));
  }
  await new Promise((r) => setTimeout(r, 1000));
  await mini.platform.apps.update(APP, (a) => {
    a.builds[0]!.status = 'succeeded';
  });
  await streaming;
  watcher.stop();

  expect([...viaPage.keys()]).toEqual([...written.keys()]);
  expect(order[0]).toBe(`-----> Building ${APP}`);
  const page = stats([...written].map(([l, t]) => viaPage.get(l)! - t));
  const file = stats([...written].map(([l, t]) => viaFile.get(l)! - t));
  const within = [...written].filter(([l, t]) => viaPage.get(l)! - t <= 1000).length;
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  console.log(`build log line -> page (SSE over the web server): median ${ms(page.median)}, p95 ${ms(page.p95)}, worst ${ms(page.max)}; ${within} of ${LINES} within 1 s`);
  console.log(`baseline, the same file read on fs.watch:          median ${ms(file.median)}, p95 ${ms(file.p95)}, worst ${ms(file.max)}`);
  console.log(`ratio page/baseline: median ${(page.median / Math.max(file.median, 0.01)).toFixed(1)}x; the page's extra is builds:log --follow polling the file every 200 ms (core/build-logs.ts)`);
});
