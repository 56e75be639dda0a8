import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../core/log.js';
import type { Runner } from '../../platform/firewall.js';
import { addressesOfOthers, candidateAddress, FRONT_PORT, frontChain, frontRules, IptablesFronts, removeFronts } from '../../platform/fronts.js';
import { upstreamKeepaliveTime, upstreamTurnover } from '../../platform/router-process.js';
import { RouteBook } from '../../router/route-book.js';
import { renderNginxConfig } from '../../router/nginx-config.js';
import { readRouteTable, type RouteTable } from '../../router/table.js';

const ID = '0123456789abcdef';
const CHAIN = frontChain(ID);
const logger = createLogger('silent');

describe('front rules (pure)', () => {
  it('render no upstream as a reset only, one as a plain DNAT, n as 1/(n-i) picks', () => {
    const text = frontRules(CHAIN, [
      { address: '127.90.1.2', upstreams: [] },
      { address: '127.90.1.3', upstreams: ['127.0.0.1:30001'] },
      { address: '127.90.1.4', upstreams: ['127.0.0.1:30002', '127.0.0.1:30003', '127.0.0.1:30004'] },
    ]);
    const m = `-d 127.90.1.4/32 -p tcp -m tcp --dport ${FRONT_PORT}`;
    expect(text).toBe(
      [
        '*nat',
        `:${CHAIN} - [0:0]`,
        `-A ${CHAIN} -d 127.90.1.3/32 -p tcp -m tcp --dport ${FRONT_PORT} -j DNAT --to-destination 127.0.0.1:30001`,
        `-A ${CHAIN} ${m} -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 127.0.0.1:30002`,
        `-A ${CHAIN} ${m} -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 127.0.0.1:30003`,
        `-A ${CHAIN} ${m} -j DNAT --to-destination 127.0.0.1:30004`,
        'COMMIT',
        '*filter',
        `:${CHAIN} - [0:0]`,
        `-A ${CHAIN} -d 127.90.1.2/32 -p tcp -m tcp --dport ${FRONT_PORT} -j REJECT --reject-with tcp-reset`,
        `-A ${CHAIN} -d 127.90.1.3/32 -p tcp -m tcp --dport ${FRONT_PORT} -j REJECT --reject-with tcp-reset`,
        `-A ${CHAIN} ${m} -j REJECT --reject-with tcp-reset`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('with no front left, still declares (so empties) both chains', () => {
    expect(frontRules(CHAIN, [])).toBe(`*nat\n:${CHAIN} - [0:0]\nCOMMIT\n*filter\n:${CHAIN} - [0:0]\nCOMMIT\n`);
  });

  it('many apps: one reset each, DNATs in address order whatever the input order', () => {
    const fronts = Array.from({ length: 50 }, (_, i) => ({ address: candidateAddress(ID, `app-${i}`, 0), upstreams: [`127.0.0.1:${31000 + i}`, `127.0.0.1:${32000 + i}`] }));
    const text = frontRules(CHAIN, fronts);
    expect(text).toBe(frontRules(CHAIN, [...fronts].reverse()));
    expect(text.match(/REJECT/g)).toHaveLength(50);
    expect(text.match(/DNAT/g)).toHaveLength(100);
    expect(text.match(/probability 0\.5000000000/g)).toHaveLength(50);
  });

  it('addresses are in 127.80.0.0/12, differ per instance, and other instances\' chains are read from iptables-save', () => {
    for (let i = 0; i < 200; i++) {
      const [a, b, c, d] = candidateAddress(ID, `app-${i}`, 0).split('.').map(Number);
      expect(a).toBe(127);
      expect(b! >= 80 && b! <= 95).toBe(true);
      expect(c! >= 0 && c! <= 255 && d! >= 1 && d! <= 254).toBe(true);
    }
    expect(candidateAddress(ID, 'web', 0)).not.toBe(candidateAddress('fedcba9876543210', 'web', 0));
    const saved = ['*nat', `-A ${CHAIN} -d 127.90.0.1/32 -p tcp -j DNAT --to-destination 127.0.0.1:1`, '-A SLWF-ffffffffffffffff -d 127.91.0.2/32 -p tcp -m tcp --dport 9 -j DNAT --to-destination 127.0.0.1:2', '-A DOCKER -d 127.92.0.3/32 -j RETURN'].join('\n');
    expect([...addressesOfOthers(saved, CHAIN)]).toEqual(['127.91.0.2']);
  });
});

/** A kernel stand-in: keeps the last restore and the jumps, answers iptables-save with `others`. */
function fakeIptables(others = '') {
  const calls: string[][] = [];
  const jumps = new Set<string>();
  let restored = '';
  let failing = false;
  const run: Runner = async (argv, input) => {
    calls.push(argv);
    if (failing) return { code: 4, stderr: 'iptables-restore: line 3 failed' };
    if (argv[0] === 'iptables-save') return { code: 0, stderr: '', stdout: `${others}\n${restored}` };
    if (argv[0] === 'iptables-restore') {
      restored = input ?? '';
      return { code: 0, stderr: '' };
    }
    const op = argv[4];
    const key = [argv[3], ...(op === '-I' ? [argv[5], ...argv.slice(7)] : argv.slice(5))].join(' ');
    if (op === '-C') return { code: jumps.has(key) ? 0 : 1, stderr: '' };
    if (op === '-I') jumps.add(key);
    if (op === '-D') return { code: jumps.delete(key) ? 0 : 1, stderr: '' };
    return { code: 0, stderr: '' };
  };
  return { run, calls, jumps, restored: () => restored, fail: () => void (failing = true) };
}

describe('IptablesFronts and the RouteBook seam', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-fronts-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('the table names one front per app that stays across deploys and scales, and the rules follow', async () => {
    const k = fakeIptables();
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    const served: RouteTable[] = [];
    const book = new RouteBook(path.join(dir, 'routes.json'), 'localhost', async (t) => void served.push(t), () => false, fronts);
    await book.setApp('web', ['127.0.0.1:30001']);
    const front = `${candidateAddress(ID, 'web', 0)}:${FRONT_PORT}`;
    expect((await readRouteTable(path.join(dir, 'routes.json'))).apps.web?.upstreams).toEqual([front]);
    // The daemon still sees the containers.
    expect(book.table.apps.web?.upstreams).toEqual(['127.0.0.1:30001']);
    expect(k.restored()).toContain('-j DNAT --to-destination 127.0.0.1:30001');
    expect([...k.jumps].sort()).toEqual([`filter OUTPUT -d 127.80.0.0/12 -p tcp -j ${CHAIN}`, `nat OUTPUT -d 127.80.0.0/12 -p tcp -j ${CHAIN}`]);

    await book.setApp('web', ['127.0.0.1:30002', '127.0.0.1:30003']); // deploy, scale 2
    await book.setApp('web', []); // nothing healthy: the front leads to nginx's idle listener
    const idle = `${candidateAddress(ID, '_idle', 0)}:${FRONT_PORT}`;
    expect(k.restored()).toContain(`-d ${front.split(':')[0]}/32 -p tcp -m tcp --dport ${FRONT_PORT} -j DNAT --to-destination ${idle}`);
    await book.setApp('web', ['127.0.0.1:30004']);
    expect(served.map((t) => t.apps.web?.upstreams)).toEqual([[front], [front], [front], [front]]);
    expect(served.map((t) => t.idle)).toEqual([idle, idle, idle, idle]);
    expect(k.restored()).toContain('--to-destination 127.0.0.1:30004');
    expect(k.restored()).not.toContain('30002');
    expect(k.restored()).not.toContain(`--to-destination ${idle}`);
    // The idle listener's address stays marked as this instance's while no app uses it.
    expect(k.restored()).toContain(`-A ${CHAIN} -d ${idle.split(':')[0]}/32 -p tcp -m tcp --dport ${FRONT_PORT} -j RETURN`);
    // Recorded, so a restarted daemon gives it the same front and nginx the same listener.
    expect(JSON.parse(await fs.readFile(path.join(dir, 'fronts.json'), 'utf8'))).toEqual({ version: 1, fronts: { web: candidateAddress(ID, 'web', 0) }, idle: idle.split(':')[0] });

    // A write that changes nothing of the rules does not run iptables-restore again.
    const restores = k.calls.filter((c) => c[0] === 'iptables-restore').length;
    await book.refreshAccess();
    expect(k.calls.filter((c) => c[0] === 'iptables-restore')).toHaveLength(restores);
  });

  it('removal: the route goes first, the rules and the address after', async () => {
    const k = fakeIptables();
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    const order: string[] = [];
    const book = new RouteBook(path.join(dir, 'routes.json'), 'localhost', async (t) => void order.push(`serve ${Object.keys(t.apps).join(',')}`), () => false, {
      turnoverMs: 0,
      publish: (apps) => fronts.publish(apps),
      idle: () => fronts.idle(),
      remove: async (apps) => {
        order.push(`remove ${apps.join(',')}`);
        await fronts.remove(apps);
      },
    });
    await book.setApp('one', ['127.0.0.1:30001']);
    await book.setApp('two', ['127.0.0.1:30002']);
    await book.removeApp('one');
    expect(order).toEqual(['serve one', 'serve one,two', 'serve two', 'remove one']);
    expect(k.restored()).not.toContain('30001');
    expect(k.restored()).toContain('30002');
    expect(Object.keys(JSON.parse(await fs.readFile(path.join(dir, 'fronts.json'), 'utf8')).fronts)).toEqual(['two']);
    // A restart adopts what runs: the chain is rewritten from it alone.
    const again = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    const book2 = new RouteBook(path.join(dir, 'routes.json'), 'localhost', undefined, () => false, again);
    await book2.replace({ three: ['127.0.0.1:30003'] });
    expect(k.restored()).toContain('30003');
    expect(k.restored()).not.toContain('30002');
    expect(await removeFronts(ID, k.run)).toBe(true);
    expect(k.jumps.size).toBe(0);
  });

  it('takes no address another instance uses, and leaves other machines\' upstreams alone', async () => {
    const taken = candidateAddress(ID, 'web', 0);
    const k = fakeIptables(`-A SLWF-ffffffffffffffff -d ${taken}/32 -p tcp -m tcp --dport 9 -j DNAT --to-destination 127.0.0.1:1`);
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    expect(await fronts.publish({ web: ['127.0.0.1:30001'], remote: ['10.0.0.7:30001', '127.0.0.1:30002'] })).toEqual({
      web: [`${candidateAddress(ID, 'web', 1)}:${FRONT_PORT}`],
      remote: ['10.0.0.7:30001', '127.0.0.1:30002'],
    });
  });

  it('an app\'s first and last healthy process render the very same nginx config (no reload)', async () => {
    const k = fakeIptables();
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    const configs: string[] = [];
    const settings = { prefix: path.join(dir, 'router'), listen: '127.0.0.1', httpPort: 8080, https: null, maxPushBytes: 1024 };
    const book = new RouteBook(path.join(dir, 'routes.json'), 'localhost', async (t) => void configs.push(renderNginxConfig(t, settings)), (app) => app === 'private', fronts);
    await book.setApp('other', ['127.0.0.1:30009']);
    await book.setApp('private', []);
    await book.setApp('web', []); // created, never deployed
    const idle = configs.at(-1)!;
    for (const upstreams of [['127.0.0.1:30001'], ['127.0.0.1:30002', '127.0.0.1:30003', '127.0.0.1:30004'], []]) {
      await book.setApp('web', upstreams);
      await book.setApp('private', upstreams);
      await book.setApp('other', []);
      await book.setApp('other', ['127.0.0.1:30009']);
    }
    expect(new Set(configs.slice(2))).toEqual(new Set([idle]));
    // nginx listens where the idle fronts lead, and no app is rendered idle by the config.
    expect(idle).toContain(`listen ${candidateAddress(ID, '_idle', 0)}:${FRONT_PORT};`);
    expect(idle).not.toMatch(/ idle_/);
  });

  it('the idle listener takes no address another instance uses, and other instances see it taken', async () => {
    const taken = candidateAddress(ID, '_idle', 0);
    const k = fakeIptables(`-A SLWF-ffffffffffffffff -d ${taken}/32 -p tcp -m tcp --dport 9 -j RETURN`);
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    await fronts.publish({ web: [] });
    const idle = candidateAddress(ID, '_idle', 1);
    expect(fronts.idle()).toBe(`${idle}:${FRONT_PORT}`);
    expect([...addressesOfOthers(k.restored(), frontChain('ffffffffffffffff'))]).toContain(idle);
    // Kept across a restart, even with no app left to use it: the rendered config stays the same.
    await fronts.remove(['web']);
    const again = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 0, run: k.run });
    await again.publish({});
    expect(again.idle()).toBe(`${idle}:${FRONT_PORT}`);
  });

  it('without iptables: warns once and lists the upstreams as before', async () => {
    const k = fakeIptables();
    k.fail();
    const warnings: string[] = [];
    const log = { ...logger, warn: (_: unknown, msg: string) => void warnings.push(msg), info: () => undefined } as unknown as typeof logger;
    const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger: log, turnoverMs: 400, run: k.run });
    expect(fronts.turnoverMs).toBe(400);
    expect(await fronts.publish({ web: ['127.0.0.1:30001'] })).toEqual({ web: ['127.0.0.1:30001'] });
    expect(await fronts.publish({ web: ['127.0.0.1:30002'] })).toEqual({ web: ['127.0.0.1:30002'] });
    expect(await fronts.publish({ web: [] })).toEqual({ web: [] });
    expect(fronts.idle()).toBeUndefined();
    // Listed directly, the router reloads for each change: nothing to wait for after one.
    expect(fronts.turnoverMs).toBe(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/router lists containers and reloads/);
  });

  it('when nginx could not listen on the idle listener\'s address: the fronts stay off, nginx is never asked to bind it', async () => {
    const k = fakeIptables();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(FRONT_PORT, candidateAddress(ID, '_idle', 0), resolve));
    try {
      const warnings: string[] = [];
      const log = { ...logger, warn: (o: { err?: string }, msg: string) => void warnings.push(`${msg} ${o.err ?? ''}`), info: () => undefined } as unknown as typeof logger;
      const fronts = new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger: log, turnoverMs: 0, run: k.run });
      expect(await fronts.publish({ web: ['127.0.0.1:30001'] })).toEqual({ web: ['127.0.0.1:30001'] });
      expect(fronts.idle()).toBeUndefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/idle listener cannot listen on .*:9/);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('kept upstream connections after a switch', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-fronts-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });
  it('are used at most half the drain, between 100 ms and 250 ms, and idle no longer: gone within twice that', () => {
    expect(upstreamKeepaliveTime(2000)).toBe(250);
    expect(upstreamKeepaliveTime(500)).toBe(250);
    expect(upstreamKeepaliveTime(300)).toBe(150);
    expect(upstreamKeepaliveTime(0)).toBe(100);
    expect(upstreamTurnover(2000)).toBe(500);
    expect(upstreamTurnover(0)).toBe(200);
  });

  it('a route change through the fronts is in effect for new requests only after the turnover; without fronts at once', async () => {
    const k = fakeIptables();
    const fronted = new RouteBook(path.join(dir, 'fronted.json'), 'localhost', undefined, () => false, new IptablesFronts({ instanceId: ID, file: path.join(dir, 'fronts.json'), logger, turnoverMs: 400, run: k.run }));
    const direct = new RouteBook(path.join(dir, 'direct.json'), 'localhost');
    await fronted.setApp('web', ['127.0.0.1:30001']);
    await direct.setApp('web', ['127.0.0.1:30001']);
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    try {
      let done = false;
      const waiting = fronted.turnover().then(() => (done = true));
      await vi.advanceTimersByTimeAsync(100);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(400);
      await waiting;
      expect(done).toBe(true);
      // Nothing to wait for without fronts: the router reloaded, its new workers connect anew.
      let directDone = false;
      await direct.turnover().then(() => (directDone = true));
      expect(directDone).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
