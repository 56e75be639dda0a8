import { describe, expect, it } from 'vitest';
import { SlipwayError } from '../../core/errors.js';
import { parseAssignments, parseKeys, parseLimits, parseScale, parseVersion } from '../../receiver/commands/ops.js';
import { parseAppJson } from '../../runtime/healthchecks.js';
import { releasesToPrune } from '../../runtime/release-images.js';
import { planScale, type Running } from '../../runtime/scale-plan.js';

const usage = (fn: () => unknown): SlipwayError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SlipwayError);
    expect((err as SlipwayError).exitCode).toBe(2);
    expect((err as SlipwayError).message).not.toContain('\n');
    return err as SlipwayError;
  }
  throw new Error('expected a usage error');
};

describe('config arguments', () => {
  it('parses K=V, keeping empty values, = inside values and shell characters as plain text', () => {
    expect(parseAssignments(['A=1', 'B=', 'URL=postgres://u:p@h/db?x=1', '_X=$(touch /tmp/x); `id`'])).toEqual({
      A: '1',
      B: '',
      URL: 'postgres://u:p@h/db?x=1',
      _X: '$(touch /tmp/x); `id`',
    });
  });

  it('refuses K without =, bad keys and NUL bytes, naming the argument', () => {
    expect(usage(() => parseAssignments(['A=1', 'NOEQUALS'])).message).toMatch(/expected KEY=VALUE, got "NOEQUALS"/);
    for (const bad of ['1A=x', '=x', 'A-B=x', 'A B=x', 'A;B=x', 'É=x', 'A\nB=x']) {
      expect(usage(() => parseAssignments([bad])).message).toMatch(/invalid config key/);
    }
    expect(usage(() => parseAssignments(['A=a\0b'])).message).toMatch(/NUL/);
  });

  it('parses keys to unset, refusing bad ones', () => {
    expect(parseKeys(['A', 'B', 'A'])).toEqual(['A', 'B']);
    usage(() => parseKeys(['A=1']));
    usage(() => parseKeys(['../x']));
  });
});

describe('scale and limit arguments', () => {
  it('parses type=count pairs and refuses the rest', () => {
    expect(parseScale(['web=3', 'worker=0'])).toEqual({ web: 3, worker: 0 });
    for (const bad of ['web', 'web=-1', 'web=1.5', 'web=x', 'Web=1', 'we;b=1', '=2', 'web=101', 'web= 1']) usage(() => parseScale([bad]));
  });

  it('parses memory and cpus, empty removes, refuses junk', () => {
    expect(parseLimits(['memory=512M', 'cpus=1.5'])).toEqual({ memory: '512m', cpus: 1.5 });
    expect(parseLimits(['memory=', 'cpus='])).toEqual({ memory: null, cpus: null });
    for (const bad of ['memory=lots', 'memory=1k', 'cpus=0', 'cpus=-1', 'cpus=1e3', 'swap=1g', 'memory']) usage(() => parseLimits([bad]));
  });

  it('parses release versions', () => {
    expect(parseVersion('v3')).toBe(3);
    expect(parseVersion('12')).toBe(12);
    for (const bad of ['v0', 'x3', 'v', 'v-1', '3.0']) usage(() => parseVersion(bad));
  });
});

describe('app.json health checks', () => {
  it('returns the web checks; no healthchecks means none', () => {
    expect(parseAppJson('{"name":"x","scripts":{"dokku":{}}}')).toEqual([]);
    const checks = parseAppJson(JSON.stringify({ healthchecks: { web: [{ type: 'startup', name: 'ready', path: '/healthz', content: 'ok', attempts: 3, timeout: 2, wait: 1 }] } }));
    expect(checks).toEqual([{ type: 'startup', name: 'ready', path: '/healthz', content: 'ok', attempts: 3, timeout: 2, wait: 1 }]);
  });

  it('refuses an invalid file with one line naming the field', () => {
    const fails = (value: unknown, field: RegExp) => {
      let err: unknown;
      try {
        parseAppJson(typeof value === 'string' ? value : JSON.stringify(value));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SlipwayError);
      expect((err as SlipwayError).code).toBe('E_APP_JSON');
      expect((err as SlipwayError).message).not.toContain('\n');
      expect((err as SlipwayError).message).toMatch(field);
    };
    fails('{not json', /not valid JSON/);
    fails({ healthchecks: { web: [{ path: 'healthz' }] } }, /healthchecks\.web\.0\.path/);
    fails({ healthchecks: { web: [{ path: '/a b' }] } }, /healthchecks\.web\.0\.path/);
    fails({ healthchecks: { web: [{ path: '/x\r\nHost: evil' }] } }, /healthchecks\.web\.0\.path/);
    fails({ healthchecks: { web: [{ path: 'http://other.host/' }] } }, /path/);
    fails({ healthchecks: { web: [{}] } }, /healthchecks\.web\.0 .*path/);
    fails({ healthchecks: { web: [{ path: '/', attempts: 0 }] } }, /healthchecks\.web\.0\.attempts/);
    fails({ healthchecks: { web: [{ path: '/', command: 'rm -rf /' }] } }, /healthchecks\.web\.0\.command is not a known field/);
    fails({ healthchecks: { web: { path: '/' } } }, /healthchecks\.web must be array/);
  });
});

describe('planScale', () => {
  const c = (type: string, index: number): Running => ({ id: `${type}${index}`, type, index });

  it('starts only the missing numbers and leaves running containers alone', () => {
    const plan = planScale([c('web', 1), c('worker', 1)], new Map([['web', 3], ['worker', 2]]));
    expect(plan.start).toEqual([{ type: 'web', index: 2 }, { type: 'web', index: 3 }, { type: 'worker', index: 2 }]);
    expect(plan.stop).toEqual([]);
    expect(plan.keep.map((k) => k.id)).toEqual(['web1', 'worker1']);
  });

  it('stops from the top so numbering stays dense, and ignores types not named', () => {
    const plan = planScale([c('web', 1), c('web', 2), c('web', 3), c('clock', 1)], new Map([['web', 1]]));
    expect(plan.stop.map((s) => s.id)).toEqual(['web2', 'web3']);
    expect(plan.start).toEqual([]);
    expect(plan.keep.map((k) => k.id)).toEqual(['web1']);
  });

  it('fills holes and drops duplicates', () => {
    const dup = { id: 'web1-dup', type: 'web', index: 1 };
    const plan = planScale([c('web', 1), dup, c('web', 4)], new Map([['web', 2]]));
    expect(plan.start).toEqual([{ type: 'web', index: 2 }]);
    expect(plan.stop.map((s) => s.id).sort()).toEqual(['web1-dup', 'web4']);
  });

  it('scales to zero', () => {
    expect(planScale([c('worker', 1), c('worker', 2)], new Map([['worker', 0]])).stop).toHaveLength(2);
  });
});

describe('releasesToPrune', () => {
  const rs = (n: number, pruned: number[] = []) => Array.from({ length: n }, (_, i) => ({ version: i + 1, imagePruned: pruned.includes(i + 1) }));

  it('keeps the newest N', () => {
    expect(releasesToPrune(rs(8), { keep: 5, current: 8, inUse: new Set([8]) })).toEqual([1, 2, 3]);
    expect(releasesToPrune(rs(3), { keep: 5, current: 3, inUse: new Set() })).toEqual([]);
  });

  it('never the current one, one in use, or one already pruned', () => {
    expect(releasesToPrune(rs(8, [1]), { keep: 2, current: 2, inUse: new Set([4, 8]) })).toEqual([3, 5, 6]);
  });
});
