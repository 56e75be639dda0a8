import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { SlipwayError } from '../core/errors.js';

/**
 * The address filter for buildpack URLs (docs/security.md, "Buildpack URLs"). A `.buildpacks`
 * line is chosen by whoever pushes, but the daemon fetches it: without a filter a push can make
 * the server reach its own loopback services (the platform's `/_git/`, the Docker API on a TCP
 * port), the cloud metadata service or the private network. The guard resolves the host once,
 * refuses addresses that are not public, and hands back the vetted address so the connection
 * goes there and nowhere else (no second DNS answer can swap it).
 */

export type AddressClass =
  | 'unspecified'
  | 'loopback'
  | 'link-local'
  | 'private'
  | 'shared (CGNAT)'
  | 'unique-local'
  | 'multicast'
  | 'reserved'
  | "the platform's own"
  | 'public';

/** One resolved, vetted destination. */
export interface VettedAddress {
  host: string;
  port: number;
  address: string;
  family: 4 | 6;
}

export type LookupAll = (host: string) => Promise<{ address: string; family: number }[]>;

export interface UrlGuardOptions {
  /** `buildpackUrlAllow`: host names, addresses and CIDRs the operator lets through. */
  allow: readonly string[];
  /** The platform's own addresses (every interface plus `listen`); refused like loopback. */
  ownAddresses?: () => readonly string[];
  /** Injected in tests; defaults to `dns.lookup` with `all: true`. */
  lookup?: LookupAll;
}

const V4_RULES: [string, number, AddressClass][] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['10.0.0.0', 8, 'private'],
  ['172.16.0.0', 12, 'private'],
  ['192.168.0.0', 16, 'private'],
  ['100.64.0.0', 10, 'shared (CGNAT)'],
  ['192.0.0.0', 24, 'reserved'],
  ['198.18.0.0', 15, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const V6_RULES: [string, number, AddressClass][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'],
  ['fc00::', 7, 'unique-local'],
  ['ff00::', 8, 'multicast'],
  ['100::', 64, 'reserved'],
  ['2001:db8::', 32, 'reserved'],
];

function blockList(rules: [string, number, AddressClass][], family: 'ipv4' | 'ipv6'): [net.BlockList, AddressClass][] {
  return rules.map(([a, p, c]) => {
    const b = new net.BlockList();
    b.addSubnet(a, p, family);
    return [b, c];
  });
}
const V4 = blockList(V4_RULES, 'ipv4');
const V6 = blockList(V6_RULES, 'ipv6');

/** The 16 bytes of an IPv6 address (dotted IPv4 tail allowed). Pure. */
function ipv6Bytes(address: string): number[] {
  let text = address.split('%')[0]!;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const p = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, dotted.index)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g || '0', 16);
    return [n >> 8, n & 0xff];
  });
}

/**
 * The IPv4 address an IPv6 address stands for, if any: IPv4-mapped (`::ffff:a.b.c.d`),
 * IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
 * Each reaches the IPv4 address on a dual-stack host or through a gateway, so it is judged as one.
 */
export function embeddedIpv4(address: string): string | null {
  const b = ipv6Bytes(address);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12);
  if (zero(0, 12) && !zero(12, 15)) return v4(12);
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2);
  return null;
}

/** Which class an IP address belongs to (`public` when none of the refused ones). Pure. */
export function classifyAddress(address: string): AddressClass {
  const family = net.isIP(address);
  if (family === 4) return V4.find(([b]) => b.check(address, 'ipv4'))?.[1] ?? 'public';
  if (family === 6) {
    const v4 = embeddedIpv4(address);
    if (v4 !== null) return classifyAddress(v4);
    return V6.find(([b]) => b.check(address, 'ipv6'))?.[1] ?? 'public';
  }
  return 'reserved';
}

/** Parses `buildpackUrlAllow` entries: a CIDR or address, else a host name. Throws on a bad CIDR. */
export function parseAllowList(entries: readonly string[]): { hosts: Set<string>; nets: net.BlockList } {
  const hosts = new Set<string>();
  const nets = new net.BlockList();
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    const [bracketed, bits] = entry.split('/') as [string, string | undefined];
    const addr = bracketed.replace(/^\[(.*)\]$/, '$1');
    const family = net.isIP(addr);
    if (family === 0) {
      if (bits !== undefined) throw new SlipwayError('E_CONFIG', `buildpackUrlAllow: ${JSON.stringify(raw)} is not a CIDR`);
      hosts.add(addr.replace(/\.$/, ''));
      continue;
    }
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) {
      throw new SlipwayError('E_CONFIG', `buildpackUrlAllow: ${JSON.stringify(raw)} has a bad prefix length`);
    }
    nets.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return { hosts, nets };
}

/** Every address this machine answers on: a URL naming one reaches the platform itself. */
export function machineAddresses(listen: string): string[] {
  const all = Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  return [...all, listen];
}

const defaultLookup: LookupAll = (host) => dns.lookup(host, { all: true, verbatim: true });

export class UrlGuard {
  readonly #allow: ReturnType<typeof parseAllowList>;
  readonly #own: () => readonly string[];
  readonly #lookup: LookupAll;

  constructor(o: UrlGuardOptions) {
    this.#allow = parseAllowList(o.allow);
    this.#own = o.ownAddresses ?? (() => []);
    this.#lookup = o.lookup ?? defaultLookup;
  }

  /** The class that refuses `address` for `host`, or null when it may be reached. */
  verdict(host: string, address: string): AddressClass | null {
    if (this.#allow.hosts.has(host.toLowerCase().replace(/\.$/, ''))) return null;
    const family = net.isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (this.#allow.nets.check(address, family)) return null;
    const v4 = family === 'ipv6' ? embeddedIpv4(address) : null;
    if (v4 !== null && this.#allow.nets.check(v4, 'ipv4')) return null;
    const own = this.#own().map((a) => a.split('%')[0]);
    if (own.includes(address.split('%')[0]) || (v4 !== null && own.includes(v4))) return "the platform's own";
    const c = classifyAddress(address);
    return c === 'public' ? null : c;
  }

  /**
   * Resolves the URL's host and returns the address to connect to. Every address the name
   * resolves to must pass (a name that also points inward is refused as a whole); the first
   * is the one used, and callers must connect to it, not resolve again.
   */
  async vet(url: URL): Promise<VettedAddress> {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port) || ({ 'https:': 443, 'http:': 80, 'git:': 9418 } as Record<string, number>)[url.protocol] || 0;
    let answers: { address: string; family: number }[];
    if (net.isIP(host)) {
      answers = [{ address: host, family: net.isIP(host) }];
    } else {
      try {
        answers = await this.#lookup(host);
      } catch (err) {
        throw new SlipwayError('E_BUILDPACK', `cannot resolve buildpack URL host ${JSON.stringify(host)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (answers.length === 0) throw new SlipwayError('E_BUILDPACK', `cannot resolve buildpack URL host ${JSON.stringify(host)}`);
    }
    for (const a of answers) {
      const refused = this.verdict(host, a.address);
      if (refused !== null) {
        const via = a.address === host ? '' : ` (resolves to ${a.address})`;
        throw new SlipwayError(
          'E_BUILDPACK',
          `buildpack URL host ${JSON.stringify(host)}${via} is ${refused === "the platform's own" ? "one of the platform's own addresses" : `a ${refused} address`}, which buildpacks are not fetched from; an operator can allow it with buildpackUrlAllow in config.json`,
        );
      }
    }
    const first = answers[0]!;
    return { host, port, address: first.address, family: first.family === 6 ? 6 : 4 };
  }
}
