import { describe, expect, it } from 'vitest';
import { parseInputFrame, parseRequest } from '../../core/wire.js';
import { wantsPty } from '../../platform/ssh-dispatch.js';
import { execExitCode, type ExecEnd } from '../../runtime/service-containers.js';
import { withLinks } from '../../services/service-manager.js';

describe('connect and links (unit)', () => {
  it('a rollback keeps the current links: their variables set, an undone link’s URL dropped', () => {
    const db = 'postgres://postgres:a@slipway-postgres-db:5432/db';
    const old = 'redis://:b@slipway-redis-old:6379';
    const urls = new Set([db, old]);
    // The old release had no DATABASE_URL (linked since) and a CACHE_URL of a link undone since.
    expect(withLinks({ PORT_X: '1', CACHE_URL: old }, [{ var: 'DATABASE_URL', url: db }], urls)).toEqual({ PORT_X: '1', DATABASE_URL: db });
    // A value that merely looks like a URL of no service here stays.
    expect(withLinks({ OTHER: 'redis://:c@elsewhere:6379' }, [], urls)).toEqual({ OTHER: 'redis://:c@elsewhere:6379' });
  });

  it('gives a pty to the interactive commands only', () => {
    expect(wantsPty('postgres:connect db')).toBe(true);
    expect(wantsPty("redis:connect 'cache'")).toBe(true);
    for (const c of ['whoami', "git-receive-pack 'app'", 'logs app --follow', 'postgres:export db', "unbalanced 'quote"]) expect(wantsPty(c), c).toBe(false);
  });

  it('reads terminal sizes on the admin socket, refusing nonsense', () => {
    expect(parseRequest({ op: 'command', argv: ['postgres:connect', 'db'], stdinStream: true, tty: { rows: 40, cols: 120 } })).toMatchObject({ tty: { rows: 40, cols: 120 } });
    for (const tty of [{ rows: 0, cols: 80 }, { rows: 24 }, { rows: 1.5, cols: 80 }, { rows: 24, cols: 1e9 }, 'big']) {
      expect(() => parseRequest({ op: 'command', argv: ['x'], tty })).toThrow('malformed request');
    }
    expect(parseInputFrame({ t: 'resize', rows: 50, cols: 200 })).toEqual({ t: 'resize', rows: 50, cols: 200 });
    expect(() => parseInputFrame({ t: 'resize', rows: -1, cols: 200 })).toThrow('malformed input frame');
  });

  describe('the exit code of an exec whose output has ended', () => {
    /** An engine that says "running" `running` times, then `end`; pauses cost no time. */
    const engine = (running: number, end: ExecEnd) => {
      let asked = 0;
      const paused: number[] = [];
      return {
        inspect: async (): Promise<ExecEnd> => (asked++ < running ? { Running: true, ExitCode: null } : end),
        pause: async (ms: number) => void paused.push(ms),
        paused,
        asked: () => asked,
      };
    };
    const total = (ms: number[]) => ms.reduce((a, b) => a + b, 0);

    it('waits for a slow engine to record the exit, and answers the program’s code, not a guess', async () => {
      // Recorded 5 s of pauses late: the old 2 s cap answered 1 here (the flaky `ssh -tt` test).
      for (const code of [0, 3]) {
        const e = engine(15, { Running: false, ExitCode: code });
        expect(await execExitCode(e.inspect, { pause: e.pause })).toBe(code);
        expect(e.asked()).toBe(16);
        expect(total(e.paused)).toBeGreaterThan(2000);
      }
      // Already recorded: no pause at all.
      const quick = engine(0, { Running: false, ExitCode: 0 });
      expect(await execExitCode(quick.inspect, { pause: quick.pause })).toBe(0);
      expect(quick.paused).toEqual([]);
    });

    it('gives up with an error, never an invented code: a program running on, a caller gone, an exit without a code', async () => {
      const forever = engine(Infinity, { Running: false, ExitCode: 0 });
      await expect(execExitCode(forever.inspect, { pause: forever.pause, patienceMs: 10_000 })).rejects.toMatchObject({ code: 'E_DOCKER', message: expect.stringMatching(/still ran 10 s later/) });
      expect(total(forever.paused)).toBeGreaterThanOrEqual(10_000);

      const gone = new AbortController();
      gone.abort();
      const left = engine(Infinity, { Running: false, ExitCode: 0 });
      await expect(execExitCode(left.inspect, { pause: left.pause, signal: gone.signal })).rejects.toMatchObject({ code: 'E_SERVICE' });
      expect(left.paused).toEqual([]);
      // A caller gone after the program ended still gets its code (nobody may read it, but it is true).
      const ended = engine(0, { Running: false, ExitCode: 4 });
      expect(await execExitCode(ended.inspect, { pause: ended.pause, signal: gone.signal })).toBe(4);

      const noCode = engine(0, { Running: false, ExitCode: null });
      await expect(execExitCode(noCode.inspect, { pause: noCode.pause })).rejects.toMatchObject({ code: 'E_DOCKER' });
    });
  });
});
