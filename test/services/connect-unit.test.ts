import { describe, expect, it } from 'vitest';
import { parseInputFrame, parseRequest } from '../../core/wire.js';
import { wantsPty } from '../../platform/ssh-dispatch.js';
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
});
