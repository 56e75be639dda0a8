import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateLogs, rotationRenames } from '../../router/log-rotation.js';
import { nginxFiles } from '../../router/nginx-config.js';
import { eventually, request, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

describe('router log rotation (files)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-rotate-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('shifts older copies up before the current file, so none overwrites a newer one', () => {
    expect(rotationRenames('/l/a.log', 3)).toEqual([
      ['/l/a.log.2', '/l/a.log.3'],
      ['/l/a.log.1', '/l/a.log.2'],
      ['/l/a.log', '/l/a.log.1'],
    ]);
  });

  it('rotates only files over the limit, keeps `keep` copies, and asks for a reopen once', async () => {
    const big = path.join(dir, 'big.log');
    const small = path.join(dir, 'small.log');
    await fs.writeFile(small, 'x');
    let reopens = 0;
    for (let round = 1; round <= 4; round++) {
      await fs.writeFile(big, `round ${round}\n`.padEnd(100, '.'));
      const rotated = await rotateLogs({ files: [big, small], maxBytes: 50, keep: 2, reopen: async () => void reopens++ });
      expect(rotated).toEqual([big]);
    }
    expect(reopens).toBe(4);
    expect(await fs.readFile(`${big}.1`, 'utf8')).toMatch(/^round 4/);
    expect(await fs.readFile(`${big}.2`, 'utf8')).toMatch(/^round 3/);
    await expect(fs.access(`${big}.3`)).rejects.toThrow();
    await expect(fs.access(big)).rejects.toThrow();
    expect(await fs.readFile(small, 'utf8')).toBe('x');
    expect(await rotateLogs({ files: [big, small], maxBytes: 50, keep: 2, reopen: async () => void reopens++ })).toEqual([]);
    expect(reopens).toBe(4);
  });
});

describe('router log rotation (nginx)', () => {
  let up: Upstream;
  let fx: NginxFixture;
  beforeAll(async () => {
    up = await startUpstream('web');
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { web: { upstreams: [up.target] } }, git: null }, { logs: { maxBytes: 4096, checkMs: 200 } });
  });
  afterAll(async () => {
    await fx?.close();
    await up?.close();
  });

  it('moves a full access log aside, nginx reopens it without a reload, and no line is lost', async () => {
    const { accessLog, pid } = nginxFiles(fx.prefix);
    const master = Number(await fs.readFile(pid, 'utf8'));
    const workers = (): string => readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim();
    const before = workers();
    const burst = async (count: number): Promise<void> => {
      for (let n = 0; n < count; n++) expect((await request(fx.router.port, { host: 'web.localhost', path: `/${n}` })).status).toBe(200);
    };
    const lines = async (file: string): Promise<number> => (await fs.readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('"app":"web"')).length;
    await burst(40);
    const rotatedLog = await eventually(async () => fx.logs.lines.some((l) => l.msg === 'router logs rotated'), Boolean, 10_000);
    expect(rotatedLog).toBe(true);
    // Fewer than the limit, so these stay in the new file.
    await burst(3);
    // nginx flushes its buffered access log at least once a second (README "Routing").
    const all = async (): Promise<number> => (await Promise.all(['', '.1', '.2', '.3'].map((s) => lines(accessLog + s)))).reduce((a, b) => a + b, 0);
    const total = await eventually(all, (n) => n === 43, 10_000);
    expect(total).toBe(43);
    expect(await lines(accessLog)).toBeGreaterThan(0);
    await expect(fs.access(`${accessLog}.4`)).rejects.toThrow();
    // Reopened, not reloaded: the same workers, so no kept client connection was closed.
    expect(workers()).toBe(before);
  });
});
