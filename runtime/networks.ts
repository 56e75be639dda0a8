import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import type Dockerode from 'dockerode';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { unscopedEngine } from './instance-engine.js';

/**
 * Each app's containers live on a network of their own, `slipway-app-<app>`: a bridge with
 * inter-container traffic off (containers of one app do not talk to each other either), whose
 * Linux bridge is named `slwa<hash>` so one host firewall rule (`-i slwa+`, platform/firewall.ts)
 * covers every app. Docker already drops traffic between different bridge networks, so an app
 * reaches no other app's container; the router reaches web containers through their published
 * loopback port, which does not depend on the network. docs/security.md explains the model.
 */

export const APP_NETWORK_PREFIX = 'slipway-app-';
/** Linux interface names are at most 15 bytes: `slwa` + 11 hex digits. */
export const BRIDGE_PREFIX = 'slwa';
/**
 * App subnets are /24s carved from here. It lies inside the 172.16.0.0/12 block Docker already
 * takes for its own networks, so a site's LAN and VPN plans avoid it; Docker's allocator skips
 * subnets in use, and we skip Docker's networks and the host's routes.
 */
export const APP_SUBNET_POOL = '172.24.0.0/13';
const SUBNET_BITS = 24;

export function appNetworkName(app: string): string {
  if (!isValidAppName(app)) throw new SlipwayError('E_APP_NAME', `invalid app name ${JSON.stringify(app)}`);
  return `${APP_NETWORK_PREFIX}${app}`;
}

/** `slwa` + 11 hex digits of the network's name: 15 characters, stable per network. Pure. */
export function bridgeName(network: string): string {
  return `${BRIDGE_PREFIX}${crypto.createHash('sha256').update(network).digest('hex').slice(0, 11)}`;
}

/** Every label an app network carries: built only here, so additions reach every network. */
export function networkLabels(app: string): Record<string, string> {
  return { 'slipway.app': app, 'slipway.network': 'app' };
}

interface Range {
  start: number;
  end: number;
}

/** `a.b.c.d/n` -> the addresses it covers; null for IPv6 or garbage. Pure. */
export function cidrRange(cidr: string): Range | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return null;
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  const start = Math.floor(ip / size) * size;
  return { start, end: start + size - 1 };
}

const dotted = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** The first /24 of `pool` that overlaps none of `used` (CIDRs; IPv6 ones ignored). Pure. */
export function pickSubnet(used: readonly string[], pool: string = APP_SUBNET_POOL): string | null {
  const range = cidrRange(pool);
  if (!range) throw new SlipwayError('E_CONFIG', `invalid subnet pool ${JSON.stringify(pool)}`);
  const taken = used.map(cidrRange).filter((r): r is Range => r !== null);
  const size = 2 ** (32 - SUBNET_BITS);
  for (let start = range.start; start + size - 1 <= range.end; start += size) {
    const end = start + size - 1;
    if (!taken.some((t) => t.start <= end && start <= t.end)) return `${dotted(start)}/${SUBNET_BITS}`;
  }
  return null;
}

/** IPv4 routes of the host (`/proc/net/route`, little-endian hex), default route left out. */
async function hostRoutes(): Promise<string[]> {
  const text = await fs.readFile('/proc/net/route', 'utf8').catch(() => '');
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const [, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (!dest || !mask || dest === '00000000') continue;
    const le = (hex: string) => Buffer.from(hex, 'hex').readUInt32LE(0);
    const bits = le(mask).toString(2).replace(/0/g, '').length;
    out.push(`${dotted(le(dest))}/${bits}`);
  }
  return out;
}

async function usedSubnets(docker: Dockerode): Promise<string[]> {
  // Every network on the engine, other instances' and foreign ones too: a subnet is free only if
  // nobody holds it (an instance-scoped engine would list only this instance's networks).
  const networks = await unscopedEngine(docker).listNetworks();
  const fromDocker = networks.flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '')).filter(Boolean);
  const interfaces = Object.values(os.networkInterfaces())
    .flat()
    .flatMap((i) => (i && i.family === 'IPv4' && i.cidr ? [i.cidr] : []));
  return [...fromDocker, ...interfaces, ...(await hostRoutes())];
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number }).statusCode;
const messageOf = (err: unknown): string => ((err as { json?: { message?: string } }).json?.message ?? (err as Error).message ?? String(err)).split('\n')[0]!;

// Subnets are chosen then claimed: one creation at a time in this process, so two deploys do not
// pick the same free /24. Another process on the engine racing us gets an overlap error: retry.
let creating: Promise<unknown> = Promise.resolve();

/** The app's network, created when missing (every container start calls this). Returns its name. */
export async function ensureAppNetwork(docker: Dockerode, app: string): Promise<string> {
  const name = appNetworkName(app);
  await ensureBridgeNetwork(docker, { name, labels: networkLabels(app), icc: false, internal: false, what: `the network of ${app}` });
  return name;
}

/**
 * A bridge network of Slipway's, created when missing, on a free /24 of APP_SUBNET_POOL, its Linux
 * bridge named `slwa<hash>` so the host firewall covers it too (platform/firewall.ts). `internal`
 * networks have no way out (service links: runtime/service-containers.ts).
 */
export async function ensureBridgeNetwork(docker: Dockerode, n: { name: string; labels: Record<string, string>; icc: boolean; internal: boolean; what: string }): Promise<void> {
  const { name } = n;
  if (await networkExists(docker, name)) return;
  const run = creating.then(async () => {
    if (await networkExists(docker, name)) return;
    const skip: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const subnet = pickSubnet([...(await usedSubnets(docker)), ...skip]);
      if (subnet === null) {
        throw new SlipwayError('E_DOCKER', `no free /24 left in ${APP_SUBNET_POOL} for ${n.what}: destroy unused apps or services, or free Docker networks (docker network prune)`);
      }
      try {
        await docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Internal: n.internal,
          IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
          Options: { 'com.docker.network.bridge.enable_icc': String(n.icc), 'com.docker.network.bridge.name': bridgeName(name) },
          Labels: n.labels,
        });
        return;
      } catch (err) {
        if (statusOf(err) === 409 && (await networkExists(docker, name))) return;
        if (!/overlap/i.test(messageOf(err))) throw new SlipwayError('E_DOCKER', `creating network ${name} failed: ${messageOf(err)}`, { cause: err });
        skip.push(subnet);
      }
    }
    throw new SlipwayError('E_DOCKER', `creating network ${name} failed: every subnet tried overlapped another network; retry`);
  });
  creating = run.catch(() => undefined);
  await run;
}

async function networkExists(docker: Dockerode, name: string): Promise<boolean> {
  try {
    const info = (await docker.getNetwork(name).inspect()) as { Name?: string };
    // The engine also answers for an id prefix or a network of another name: only an exact match counts.
    return info.Name === name;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw new SlipwayError('E_DOCKER', `inspecting network ${name} failed: ${messageOf(err)}`, { cause: err });
  }
}

/** Removes the app's network (apps:destroy, after its containers). Gone already: fine. */
export async function removeAppNetwork(docker: Dockerode, app: string): Promise<void> {
  await removeNetwork(docker, appNetworkName(app));
}

/** Removes a network of Slipway's once nothing uses it. Gone already: fine. */
export async function removeNetwork(docker: Dockerode, name: string): Promise<void> {
  if (!(await networkExists(docker, name))) return;
  try {
    await docker.getNetwork(name).remove();
  } catch (err) {
    if (statusOf(err) === 404) return;
    throw new SlipwayError('E_DOCKER', `removing network ${name} failed: ${messageOf(err)}; stop what still uses it (docker network inspect ${name}) and try again`, { cause: err });
  }
}
