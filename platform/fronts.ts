import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { oneLine, SlipwayError } from '../core/errors.js';
import { readJson, readTextIfExists, writeJsonAtomic } from '../core/files.js';
import { INSTANCE_ID_PATTERN } from '../core/instance-id.js';
import type { Paths } from '../core/paths.js';
import type { Logger } from '../core/log.js';
import type { Fronts } from '../router/route-book.js';
import { spawnRunner, type Runner } from './firewall.js';

/**
 * Stable per-app front addresses (docs/router.md, "Stable fronts"). nginx 1.22 can only change
 * an upstream list by reloading, and a reload closes every idle kept client connection. So the
 * route table lists one address per app that never changes, `127.A.B.C:9`, and the kernel's NAT
 * sends each new connection to it to one of the app's current containers, as kube-proxy does: a
 * deploy, a scale or a restart rewrites this instance's iptables chain (atomically, with
 * iptables-restore) and nginx is not reloaded. Connections already open keep their conntrack
 * mapping, so old containers finish what they were sent.
 *
 * Every instance on the machine shares the kernel: fronts live in 127.80.0.0/12, each instance's
 * rules in chains named after its id (`SLWF-<id>`, one in nat and one in filter, each jumped
 * from OUTPUT, which is where nginx's connections start), and an address another instance's
 * chain already uses is never taken.
 */
export const FRONT_NET = '127.80.0.0/12';
/**
 * The port of every front, and of the idle listener. Nothing listens on the discard port, and the
 * filter chain refuses (tcp-reset) a connection to a front that was not translated, so a front
 * without rules is never answered by some other listener on the machine (nginx itself on
 * 0.0.0.0:80, say).
 */
export const FRONT_PORT = 9;
const CHAIN_PREFIX = 'SLWF-';

export const frontChain = (instanceId: string): string => `${CHAIN_PREFIX}${instanceId}`;

/** The OUTPUT rules that send connections to the fronts into the instance's chain (nat and filter). */
export function frontJumps(chain: string): Array<{ table: 'nat' | 'filter'; rule: string[] }> {
  const rule = ['OUTPUT', '-d', FRONT_NET, '-p', 'tcp', '-j', chain];
  return [
    { table: 'nat', rule },
    { table: 'filter', rule },
  ];
}

/** One app's front: its address and the loopback upstreams (`127.0.0.1:PORT`) it sends to. */
export interface FrontRoute {
  address: string;
  upstreams: readonly string[];
}

/**
 * The instance's two chains as one iptables-restore file (declaring a chain flushes it, and
 * `--noflush` leaves every other chain alone, so each table's change is atomic). Pure.
 * nat: per front, one DNAT per upstream; rule i of n matches with probability 1/(n-i) and the
 * last always, so each upstream gets 1/n of the new connections (kube-proxy's scheme).
 * filter: per front, a reset for a connection that reached it untranslated (no upstream); and
 * first, for the idle listener's address, a rule that only returns: it marks the address as this
 * instance's, so no other instance takes it for a front (`addressesOfOthers`).
 */
export function frontRules(chain: string, fronts: readonly FrontRoute[], idle?: string): string {
  const nat = [`*nat`, `:${chain} - [0:0]`];
  const filter = [`*filter`, `:${chain} - [0:0]`];
  if (idle !== undefined) filter.push(`-A ${chain} -d ${idle}/32 -p tcp -m tcp --dport ${FRONT_PORT} -j RETURN`);
  for (const f of [...fronts].sort((a, b) => a.address.localeCompare(b.address))) {
    const match = `-A ${chain} -d ${f.address}/32 -p tcp -m tcp --dport ${FRONT_PORT}`;
    const n = f.upstreams.length;
    f.upstreams.forEach((u, i) => {
      const left = n - i;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
      nat.push(`${match}${pick} -j DNAT --to-destination ${u}`);
    });
    filter.push(`${match} -j REJECT --reject-with tcp-reset`);
  }
  return [...nat, 'COMMIT', ...filter, 'COMMIT', ''].join('\n');
}

/** Only upstreams on this machine's loopback can be reached through a loopback front. */
export function isLoopbackUpstream(upstream: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$/.test(upstream);
}

/** The attempt-th candidate address of an app's front: derived from instance and app, in 127.80.0.0/12. Pure. */
export function candidateAddress(instanceId: string, app: string, attempt: number): string {
  const h = createHash('sha256').update(`${instanceId}/${app}/${attempt}`).digest();
  return `127.${80 + (h[0]! & 0x0f)}.${h[1]!}.${1 + (h[2]! % 254)}`;
}

/** Front addresses used by the chains of other instances, from `iptables-save` output. Pure. */
export function addressesOfOthers(saved: string, ownChain: string): Set<string> {
  const used = new Set<string>();
  for (const line of saved.split('\n')) {
    const m = /^-A (SLWF-\S+) .*-d (127\.\d+\.\d+\.\d+)\/32/.exec(line);
    if (m && m[1] !== ownChain) used.add(m[2]!);
  }
  return used;
}

interface FrontsFile {
  version: 1;
  /** app -> front address, kept for the app's life (README "How it works"). */
  fronts: Record<string, string>;
  /** The idle listener's address, kept for the instance's life (a new one would reload nginx). */
  idle?: string;
}

/** Whether a listener can bind address:port now (closed again at once). */
function canListen(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ host: address, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** Seeds the idle listener's candidate addresses; no app can have this name. */
const IDLE_SEED = '_idle';

/**
 * The daemon's `Fronts` (router/route-book.ts) on iptables. Every app gets its front, healthy or
 * not: one with nothing healthy has it lead to the idle listener, an address of this instance's
 * where nginx itself answers the idle 503, so an app's first and last healthy process change
 * only these rules (docs/router.md, "Stable fronts"). Without iptables, or when it fails, it
 * warns once and hands the upstreams back unchanged for the rest of the daemon's life: the
 * router then lists the containers (or [] for none) as before and reloads at every change.
 */
export class IptablesFronts implements Fronts {
  readonly #chain: string;
  readonly #instanceId: string;
  readonly #file: string;
  readonly #logger: Logger;
  readonly #run: Runner;
  #addresses: Map<string, string> | null = null;
  #idle: string | undefined;
  /** What the chains hold (or are about to): app -> loopback upstreams, or the idle listener for none. */
  #routes = new Map<string, readonly string[]>();
  #applied: string | null = null;
  #disabled = false;
  readonly #turnoverMs: number;

  /**
   * file: where the addresses are kept (`$SLIPWAY_HOME/state/fronts.json`). turnoverMs: how long
   * nginx may keep using an upstream connection (platform/router-process.ts `upstreamTurnover`).
   */
  constructor(o: { instanceId: string; file: string; logger: Logger; turnoverMs: number; run?: Runner }) {
    this.#turnoverMs = o.turnoverMs;
    this.#instanceId = o.instanceId;
    this.#chain = frontChain(o.instanceId);
    this.#file = o.file;
    this.#logger = o.logger;
    this.#run = o.run ?? spawnRunner;
  }

  async publish(apps: Readonly<Record<string, readonly string[]>>): Promise<Record<string, string[]>> {
    const direct = Object.fromEntries(Object.entries(apps).map(([app, u]) => [app, [...u]]));
    if (this.#disabled) return direct;
    try {
      const idle = await this.#idleAddress();
      const next = new Map(this.#routes);
      const out: Record<string, string[]> = {};
      for (const [app, upstreams] of Object.entries(apps)) {
        if (upstreams.length === 0 || upstreams.every(isLoopbackUpstream)) {
          const address = await this.#address(app);
          // Nothing healthy: nginx answers the idle 503 itself, behind the same front.
          next.set(app, upstreams.length === 0 ? [`${idle}:${FRONT_PORT}`] : [...upstreams].sort());
          out[app] = [`${address}:${FRONT_PORT}`];
        } else {
          // Tasks on other machines: listed as they are, and the router reloads for them.
          out[app] = [...upstreams];
        }
      }
      await this.#apply(next);
      return out;
    } catch (err) {
      this.#disable(err);
      return direct;
    }
  }

  /** None once the fronts are off: the router then reloads for each change, and its new workers connect anew. */
  get turnoverMs(): number {
    return this.#disabled ? 0 : this.#turnoverMs;
  }

  idle(): string | undefined {
    return this.#disabled || this.#idle === undefined ? undefined : `${this.#idle}:${FRONT_PORT}`;
  }

  async remove(apps: readonly string[]): Promise<void> {
    if (this.#disabled || apps.length === 0) return;
    const addresses = await this.#load();
    try {
      const next = new Map(this.#routes);
      for (const app of apps) next.delete(app);
      await this.#apply(next);
      let forgot = false;
      for (const app of apps) forgot = addresses.delete(app) || forgot;
      if (forgot) await this.#save();
    } catch (err) {
      this.#disable(err);
    }
  }

  async #apply(next: Map<string, readonly string[]>): Promise<void> {
    const addresses = await this.#load();
    const fronts = [...next].map(([app, upstreams]) => ({ address: addresses.get(app)!, upstreams }));
    const text = frontRules(this.#chain, fronts, this.#idle);
    this.#routes = next;
    if (text === this.#applied) return;
    const restored = await this.#run(['iptables-restore', '-w', '--noflush'], text);
    if (restored.code !== 0) throw new SlipwayError('E_ROUTES', `iptables-restore: ${oneLine(restored.stderr || 'not found')}`);
    // Checked every time: `slipway router:stop` may have removed them under a running daemon.
    for (const { table, rule } of frontJumps(this.#chain)) {
      if ((await this.#run(['iptables', '-w', '-t', table, '-C', ...rule])).code === 0) continue;
      const added = await this.#run(['iptables', '-w', '-t', table, '-I', rule[0]!, '1', ...rule.slice(1)]);
      if (added.code !== 0) throw new SlipwayError('E_ROUTES', `iptables -t ${table} -I OUTPUT: ${oneLine(added.stderr)}`);
    }
    if (this.#applied === null) this.#logger.info({ chain: this.#chain, fronts: fronts.length }, 'stable app fronts in place: route changes no longer reload the router');
    this.#applied = text;
  }

  async #load(): Promise<Map<string, string>> {
    if (this.#addresses) return this.#addresses;
    const stored = await readJson<Partial<FrontsFile>>(this.#file, {});
    const map = new Map<string, string>();
    for (const [app, address] of Object.entries(stored.fronts ?? {})) if (typeof address === 'string') map.set(app, address);
    if (typeof stored.idle === 'string') this.#idle = stored.idle;
    this.#addresses = map;
    return map;
  }

  async #save(): Promise<void> {
    const fronts = Object.fromEntries([...(await this.#load())].sort(([a], [b]) => a.localeCompare(b)));
    const file: FrontsFile = { version: 1, fronts, ...(this.#idle === undefined ? {} : { idle: this.#idle }) };
    await fs.mkdir(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.#file, file, 0o644);
  }

  /** The app's front address: kept, or the first free candidate, recorded before use. */
  async #address(app: string): Promise<string> {
    const addresses = await this.#load();
    const known = addresses.get(app);
    if (known) return known;
    const address = await this.#free(app, `no free front address for ${app}`);
    addresses.set(app, address);
    await this.#save();
    return address;
  }

  /** The idle listener's address, as `#address` for an app. */
  async #idleAddress(): Promise<string> {
    await this.#load();
    if (this.#idle !== undefined) return this.#idle;
    const idle = await this.#free(IDLE_SEED, 'no free address for the idle listener');
    // nginx must bind it at its next reload: a service on port 9 of every address (a discard
    // server) would make that reload fail, so find out now and leave the fronts off instead.
    if (!(await canListen(idle, FRONT_PORT))) throw new SlipwayError('E_ROUTES', `the idle listener cannot listen on ${idle}:${FRONT_PORT} (something listens on port ${FRONT_PORT} of every address)`);
    this.#idle = idle;
    await this.#save();
    return this.#idle;
  }

  /** The first candidate for `seed` that neither this instance nor another one's chains use. */
  async #free(seed: string, none: string): Promise<string> {
    const saved = await this.#run(['iptables-save']);
    if (saved.code !== 0) throw new SlipwayError('E_ROUTES', `iptables-save: ${oneLine(saved.stderr || 'not found')}`);
    const used = addressesOfOthers(saved.stdout ?? '', this.#chain);
    for (const own of (await this.#load()).values()) used.add(own);
    if (this.#idle !== undefined) used.add(this.#idle);
    for (let attempt = 0; attempt < 64; attempt++) {
      const address = candidateAddress(this.#instanceId, seed, attempt);
      if (!used.has(address)) return address;
    }
    throw new SlipwayError('E_ROUTES', none);
  }

  #disable(err: unknown): void {
    this.#disabled = true;
    this.#logger.warn({ err: oneLine(err) }, 'could not program the stable app fronts (iptables): the router lists containers and reloads at every route change, which resets idle keep-alive clients (docs/router.md)');
  }
}

/**
 * Removes the instance's chains and their OUTPUT jumps (`slipway router:stop`, test teardown):
 * with the router gone nothing uses the fronts. Other instances' chains are not touched.
 * Returns whether anything was there.
 */
export async function removeFronts(instanceId: string, run: Runner = spawnRunner): Promise<boolean> {
  const chain = frontChain(instanceId);
  let found = false;
  for (const { table, rule } of frontJumps(chain)) {
    // Once per copy (a jump added twice by racing daemons is removed twice).
    for (let i = 0; i < 8 && (await run(['iptables', '-w', '-t', table, '-D', ...rule])).code === 0; i++) found = true;
    if ((await run(['iptables', '-w', '-t', table, '-F', chain])).code === 0) found = true;
    await run(['iptables', '-w', '-t', table, '-X', chain]);
  }
  return found;
}

/** `removeFronts` for the instance of a SLIPWAY_HOME (nothing when it has no id yet). */
export async function removeFrontsOfHome(paths: Pick<Paths, 'instanceIdFile'>, run: Runner = spawnRunner): Promise<boolean> {
  const id = (await readTextIfExists(paths.instanceIdFile))?.trim();
  return id !== undefined && INSTANCE_ID_PATTERN.test(id) ? removeFronts(id, run) : false;
}
