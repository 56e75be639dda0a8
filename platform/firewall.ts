import { spawn } from 'node:child_process';
import { BRIDGE_PREFIX } from '../runtime/networks.js';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/**
 * App containers must not open connections to the host (a database or admin service bound to
 * 0.0.0.0, the platform's own ports on the bridge gateway). Packets from an app network arrive
 * on a `slwa*` bridge (runtime/networks.ts), from swarm tasks on `docker_gwbridge`; INPUT sends
 * them to SLIPWAY-APPS, which lets replies through and rejects everything else. The router is not affected: it connects from the
 * host to published loopback ports, and the container's answers are ESTABLISHED. Forwarded
 * traffic (the internet, Docker's embedded DNS) does not pass INPUT. docs/security.md.
 */
export const APPS_CHAIN = 'SLIPWAY-APPS';

/** The chain, as an iptables-restore file for the filter table (declaring it flushes it). Pure. */
export function appsChainRules(): string {
  return [
    '*filter',
    `:${APPS_CHAIN} - [0:0]`,
    `-A ${APPS_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
    `-A ${APPS_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${APPS_CHAIN} -j REJECT`,
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * The INPUT rules that send app traffic to the chain, one per way in. Pure.
 * - `slwa+`: every docker-local app network's bridge (runtime/networks.ts);
 * - `docker_gwbridge`: the bridge through which swarm tasks on this machine reach the host. The
 *   engine names it, and it is shared by every swarm service of the engine, which on a
 *   platform's machine are the platform's (README "Schedulers").
 */
export function inputJumps(): string[][] {
  return [
    ['INPUT', '-i', `${BRIDGE_PREFIX}+`, '-j', APPS_CHAIN],
    ['INPUT', '-i', 'docker_gwbridge', '-j', APPS_CHAIN],
  ];
}

export interface RunResult {
  code: number;
  stderr: string;
  /** What the program printed (iptables-save); runners that are not asked to read it may leave it out. */
  stdout?: string;
}
export type Runner = (argv: string[], input?: string) => Promise<RunResult>;

/** Spawns argv (never a shell); a missing program is code 127. */
export const spawnRunner: Runner = (argv, input) =>
  new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stdin.on('error', () => undefined);
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code === 'ENOENT' ? 127 : 1, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr, stdout }));
    child.stdin.end(input ?? '');
  });

/**
 * Installs the chain and the INPUT jumps for IPv4 and IPv6, idempotently: the chain is replaced
 * atomically (iptables-restore --noflush touches no other chain), each jump added once, first in
 * INPUT so no earlier ACCEPT lets app traffic in. Without iptables it warns and goes on: the
 * apps then reach host services (docs/security.md says what to do).
 */
export async function installAppFirewall(o: { logger: Logger; run?: Runner }): Promise<{ installed: string[]; failed: string[] }> {
  const run = o.run ?? spawnRunner;
  const installed: string[] = [];
  const failed: string[] = [];
  for (const family of ['iptables', 'ip6tables'] as const) {
    const restore = await run([`${family}-restore`, '-w', '--noflush'], appsChainRules());
    let problem: string | null = restore.code === 0 ? null : restore.stderr;
    for (const jump of problem === null ? inputJumps() : []) {
      const present = await run([family, '-w', '-C', ...jump]);
      if (present.code === 0) continue;
      const added = await run([family, '-w', '-I', jump[0]!, '1', ...jump.slice(1)]);
      if (added.code !== 0) {
        problem = added.stderr;
        break;
      }
    }
    if (problem === null) {
      installed.push(family);
      continue;
    }
    failed.push(family);
    o.logger.warn(
      { program: family, err: oneLine(problem || 'not found') },
      `could not install the ${APPS_CHAIN} firewall chain: app containers can reach services on this host; install iptables (apt-get install iptables) and restart the server`,
    );
  }
  if (installed.length > 0) o.logger.info({ chain: APPS_CHAIN, families: installed }, 'app-to-host firewall in place');
  return { installed, failed };
}
