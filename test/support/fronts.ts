import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import { pathsFor } from '../../core/paths.js';
import { FRONT_PORT, frontChain } from '../../platform/fronts.js';

const exec = promisify(execFile);

/** A route table upstream that is one of the stable fronts (platform/fronts.ts). */
export const isFront = (upstream: string): boolean => new RegExp(`^127\\.(8\\d|9[0-5])\\.\\d{1,3}\\.\\d{1,3}:${FRONT_PORT}$`).test(upstream);

/** The instance id of a platform's home: its chains carry it. */
export async function instanceIdOf(home: string): Promise<string> {
  return (await fs.readFile(pathsFor(home).instanceIdFile, 'utf8')).trim();
}

/**
 * Where the kernel sends new connections to a front: the DNAT targets in the instance's nat
 * chain, sorted. The idle listener (nginx's own, in the fronts' range, where a front with nothing
 * healthy leads) is no upstream: such a front has none.
 */
export async function frontTargets(home: string, front: string): Promise<string[]> {
  const chain = frontChain(await instanceIdOf(home));
  const address = front.slice(0, front.lastIndexOf(':'));
  const { stdout } = await exec('iptables-save', ['-t', 'nat']);
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(`-A ${chain} -d ${address}/32 `))
    .map((l) => /--to-destination (\S+)/.exec(l)?.[1] ?? '')
    .filter((target) => !isFront(target))
    .sort();
}

/** The table's upstreams of an app, each front replaced by where the kernel sends it. */
export async function resolvedUpstreams(home: string, upstreams: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const u of upstreams) out.push(...(isFront(u) ? await frontTargets(home, u) : [u]));
  return out.sort();
}

/** Every iptables line (any table) that names the instance's chain: its chains and their jumps. */
export async function chainLines(id: string): Promise<string[]> {
  const { stdout } = await exec('iptables-save');
  return stdout.split('\n').filter((l) => l.includes(frontChain(id)));
}
