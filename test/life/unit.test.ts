import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildLogPath, parseBuildId, readBuildLog } from '../../core/build-logs.js';
import { pathsFor } from '../../core/paths.js';
import type { AppRecord, BuildRecord } from '../../core/store.js';
import { BranchGuard } from '../../hooks/branch-guard.js';
import { parseEvent } from '../../runtime/events.js';
import { LineSplitter, formatLine, mergeTail, normalizeStamp, parseDockerLine, sinceOf } from '../../runtime/log-lines.js';
import { currentUpstreams, planReconcile, type LiveContainer } from '../../runtime/reconcile.js';

describe('log lines', () => {
  it('pads Docker stamps so that they sort as times (Docker trims trailing zeros)', () => {
    expect(normalizeStamp('2026-11-25T12:00:00.1Z')).toBe('2026-11-25T12:00:00.100000000Z');
    expect(normalizeStamp('2026-11-25T12:00:00Z')).toBe('2026-11-25T12:00:00.000000000Z');
    expect(normalizeStamp('2026-11-25T12:00:00.123456789Z')).toBe('2026-11-25T12:00:00.123456789Z');
    expect(normalizeStamp('yesterday')).toBeNull();
    // Raw, `.1Z` sorts after `.12Z`; padded, it does not.
    expect(normalizeStamp('2026-11-25T12:00:00.1Z')! < normalizeStamp('2026-11-25T12:00:00.12Z')!).toBe(true);
  });

  it('parses and prefixes a line with millisecond time and the container name', () => {
    const line = parseDockerLine('2026-11-25T12:00:00.123456Z listening on 5000', 'app.web.1', 'x');
    expect(formatLine(line)).toBe('2026-11-25T12:00:00.123Z app.web.1: listening on 5000\n');
    expect(parseDockerLine('2026-11-25T12:00:00Z ', 'a.web.1', 'x').text).toBe('');
    // A line Docker did not stamp keeps the time we read it at, and its whole text.
    expect(parseDockerLine('no stamp here', 'a.web.1', 'T')).toEqual({ time: 'T', source: 'a.web.1', text: 'no stamp here' });
  });

  it('merges containers in time order, keeps each container\'s order on ties, and takes the last n overall', () => {
    const web1 = ['2026-01-01T00:00:01Z a', '2026-01-01T00:00:03.5Z c', '2026-01-01T00:00:05Z e1', '2026-01-01T00:00:05Z e2'].map((l) => parseDockerLine(l, 'x.web.1', ''));
    const web2 = ['2026-01-01T00:00:02Z b', '2026-01-01T00:00:03.25Z c0', '2026-01-01T00:00:04Z d'].map((l) => parseDockerLine(l, 'x.web.2', ''));
    expect(mergeTail([web1, web2], 100).map((l) => l.text)).toEqual(['a', 'b', 'c0', 'c', 'd', 'e1', 'e2']);
    expect(mergeTail([web1, web2], 3).map((l) => `${l.source}:${l.text}`)).toEqual(['x.web.2:d', 'x.web.1:e1', 'x.web.1:e2']);
    expect(mergeTail([web1, web2], 0)).toEqual([]);
  });

  it('turns a stamp into Docker\'s seconds.nanoseconds `since`', () => {
    expect(sinceOf(normalizeStamp('1970-01-01T00:01:40.5Z')!)).toBe('100.500000000');
  });

  it('splits chunks into lines, across chunk borders and multi-byte characters', () => {
    const s = new LineSplitter();
    const bytes = Buffer.from('one\ntw€o\r\nthr');
    expect(s.push(bytes.subarray(0, 7))).toEqual(['one']);
    expect(s.push(bytes.subarray(7))).toEqual(['tw€o']);
    expect(s.push('ee\n')).toEqual(['three']);
    expect(s.push('tail')).toEqual([]);
    expect(s.end()).toEqual(['tail']);
  });
});

describe('docker events', () => {
  const event = (o: Record<string, unknown>) =>
    JSON.stringify({ Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { name: 'x.web.1', 'slipway.app': 'x', 'slipway.type': 'web', 'slipway.release': '3' } }, ...o });
  it('keeps start and die of Slipway containers and ignores the rest', () => {
    expect(parseEvent(event({}))).toEqual({ action: 'die', id: 'abc', name: 'x.web.1', app: 'x', type: 'web', release: 3 });
    expect(parseEvent(event({ Action: 'start' }))?.action).toBe('start');
    expect(parseEvent(event({ Action: 'exec_start: sh' }))).toBeNull();
    expect(parseEvent(event({ Type: 'network' }))).toBeNull();
    expect(parseEvent(event({ Actor: { ID: 'abc', Attributes: { name: 'other' } } }))).toBeNull();
    expect(parseEvent('not json')).toBeNull();
  });

  it('ignores swarm task containers (they inherit slipway.app from the image; the swarm scheduler reports them)', () => {
    const attrs = { name: 'x_web.1.t1', 'slipway.app': 'x', 'slipway.type': 'web', 'com.docker.swarm.task.id': 't1' };
    expect(parseEvent(event({ Action: 'start', Actor: { ID: 'abc', Attributes: attrs } }))).toBeNull();
  });
});

describe('reconcile planning', () => {
  const c = (name: string, release: number | null, o: Partial<LiveContainer> = {}): LiveContainer => {
    const [, type, index] = name.split('.');
    return { id: `id-${name}`, name, type: type!, index: Number(index), release, state: 'running', hostPort: 1000 + Number(index), ...o };
  };
  const counts = (o: Record<string, number>) => new Map(Object.entries(o));

  it('leaves a healthy app alone', () => {
    expect(planReconcile({ app: 'a', current: 2, counts: counts({ web: 1 }), containers: [c('a.web.1', 2)] })).toEqual([]);
  });

  it('starts missing containers and removes extra ones', () => {
    const plan = planReconcile({ app: 'a', current: 2, counts: counts({ web: 2, worker: 1 }), containers: [c('a.web.1', 2), c('a.web.3', 2), c('a.clock.1', 2)] });
    expect(plan).toEqual([
      { kind: 'remove', id: 'id-a.web.3', name: 'a.web.3', why: 'not in the formation (web=2)' },
      { kind: 'remove', id: 'id-a.clock.1', name: 'a.clock.1', why: 'not in the formation (clock=0)' },
      { kind: 'start', type: 'web', index: 2, name: 'a.web.2' },
      { kind: 'start', type: 'worker', index: 1, name: 'a.worker.1' },
    ]);
  });

  it('after a crash mid-deploy: removes the release that never became current and gives the old one its name back', () => {
    const plan = planReconcile({
      app: 'a',
      current: 2,
      counts: counts({ web: 1 }),
      containers: [c('a.web.1', 3), c('a.web.1.old-0123456789ab', 2, { index: 1 })],
    });
    expect(plan).toEqual([
      { kind: 'remove', id: 'id-a.web.1', name: 'a.web.1', why: 'v3 never became current' },
      { kind: 'rename', id: 'id-a.web.1.old-0123456789ab', from: 'a.web.1.old-0123456789ab', to: 'a.web.1' },
    ]);
  });

  it('removes leftovers aside once the canonical container runs, and types out of the formation', () => {
    const plan = planReconcile({
      app: 'a',
      current: 3,
      counts: counts({ web: 1 }),
      containers: [c('a.web.1', 3), c('a.web.1.old-0123456789ab', 3, { index: 1 }), c('a.worker.1', 2)],
    });
    expect(plan.map((a) => [a.kind, 'name' in a ? a.name : '', 'why' in a ? a.why : ''])).toEqual([
      ['remove', 'a.web.1.old-0123456789ab', 'left aside by an interrupted deploy'],
      ['remove', 'a.worker.1', 'not in the formation (worker=0)'],
    ]);
  });

  it('keeps serving containers of an earlier release after config:set --no-restart, and routes them', () => {
    const live = [c('a.web.1', 2)];
    expect(planReconcile({ app: 'a', current: 3, counts: counts({ web: 1 }), containers: live })).toEqual([]);
    expect(currentUpstreams('a', 3, live)).toEqual(['127.0.0.1:1001']);
  });

  it('removes everything of an app that never had a release (crash during its first deploy)', () => {
    const plan = planReconcile({ app: 'a', current: null, counts: new Map(), containers: [c('a.web.1', 1)] });
    expect(plan).toEqual([{ kind: 'remove', id: 'id-a.web.1', name: 'a.web.1', why: 'v1 never became current' }]);
  });

  it('routes only running canonical web containers of the current release', () => {
    const live = [c('a.web.2', 2), c('a.web.1', 2), c('a.web.3', 2, { state: 'exited', hostPort: null }), c('a.web.1.old-0123456789ab', 2, { index: 1, hostPort: 999 }), c('a.web.4', 3)];
    expect(currentUpstreams('a', 2, live)).toEqual(['127.0.0.1:1001', '127.0.0.1:1002']);
    expect(currentUpstreams('a', null, live)).toEqual([]);
  });
});

describe('build ids', () => {
  it('accepts the ids deploys make and refuses anything that could become a path', () => {
    expect(parseBuildId('20261125120000-a1b2c3')).toBe('20261125120000-a1b2c3');
    for (const bad of ['', '../../etc/passwd', '20261125120000-a1b2c3/../x', '20261125120000-A1B2C3', '-20261125120000-a1b2c3', '20261125120000-a1b2c3\n', 'x'.repeat(500)]) {
      expect(() => parseBuildId(bad), bad).toThrow(/invalid build id/);
    }
    expect(() => buildLogPath(pathsFor('/h'), 'a', '..')).toThrow(/invalid build id/);
    expect(buildLogPath(pathsFor('/h'), 'a', '20261125120000-a1b2c3')).toBe('/h/builds/a/20261125120000-a1b2c3.log');
  });

  it('reads the latest build\'s log by default and refuses unknown ids', async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-life-'));
    try {
      const paths = pathsFor(home);
      const build = (id: string): BuildRecord => ({ id, commit: 'c'.repeat(40), status: 'succeeded', startedAt: '', finishedAt: null, durationMs: 1, buildpacks: [], error: null, by: 't' });
      const app = { name: 'a', builds: [build('20260101000000-aaaaaa'), build('20260102000000-bbbbbb')] } as AppRecord;
      await fs.mkdir(path.join(paths.buildsDir, 'a'), { recursive: true });
      await fs.writeFile(path.join(paths.buildsDir, 'a', '20260101000000-aaaaaa.log'), 'first\n');
      await fs.writeFile(path.join(paths.buildsDir, 'a', '20260102000000-bbbbbb.log'), 'second\n');
      expect((await readBuildLog(paths, app, undefined)).text).toBe('second\n');
      expect((await readBuildLog(paths, app, '20260101000000-aaaaaa')).text).toBe('first\n');
      await expect(readBuildLog(paths, app, '20260103000000-cccccc')).rejects.toThrow(/a has no build 20260103000000-cccccc/);
      await expect(readBuildLog(paths, { ...app, builds: [] }, undefined)).rejects.toThrow(/no builds yet/);
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });
});

describe('BranchGuard', () => {
  const sha = (ch: string) => ch.repeat(40);
  const ref = 'refs/heads/main';
  it('lets a push through while its branch is where it found it, and refuses it once another push moved it', async () => {
    let at: string | null = null;
    const guard = new BranchGuard(async () => at);
    await guard.check('a', { ref, oldRev: sha('0'), newRev: sha('1') });
    guard.landed('a', { ref, oldRev: sha('0'), newRev: sha('1') });
    setTimeout(() => (at = sha('1')), 50); // git moves the ref just after the hook said yes
    await expect(guard.check('a', { ref, oldRev: sha('0'), newRev: sha('2') })).rejects.toThrow(/main moved to 1111111 while this push waited/);
    await guard.check('a', { ref, oldRev: sha('1'), newRev: sha('3') });
  });
});
