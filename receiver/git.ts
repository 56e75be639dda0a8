import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export type GitService = 'receive-pack' | 'upload-pack';

export interface GitServiceOptions {
  repoDir: string;
  service: GitService;
  /** Directory holding Slipway's `pre-receive`; set as core.hooksPath so repos carry no hook files of their own. */
  hooksDir: string;
  maxPushBytes: number;
  /** Extra environment for the hook: the socket path, app name and pusher. */
  hookEnv: Record<string, string>;
  /** For smart HTTP: `--stateless-rpc` and optionally `--advertise-refs`. */
  http?: { advertise: boolean };
}

/**
 * Spawns the real git server-side program on an app's bare repository. argv only, never a shell;
 * the repository path is built from a validated app name, and `--` style ambiguity cannot arise
 * because git receives it as the single positional argument after its options.
 */
export function spawnGitService(o: GitServiceOptions): ChildProcess {
  const args = [
    '-c', `core.hooksPath=${o.hooksDir}`,
    '-c', `receive.maxInputSize=${o.maxPushBytes}`,
    // Keep what was pushed honest: a corrupt pack is refused, not stored.
    '-c', 'receive.fsckObjects=true',
    o.service,
  ];
  if (o.http) {
    args.push('--stateless-rpc');
    if (o.http.advertise) args.push('--advertise-refs');
  }
  args.push(path.resolve(o.repoDir));
  return spawn('git', args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: process.env.HOME ?? '/root',
      LANG: 'C.UTF-8',
      ...o.hookEnv,
    },
  });
}

/** Creates an empty bare repository whose default branch is main. */
export async function initBareRepo(repoDir: string): Promise<void> {
  await run(['init', '--bare', '--quiet', '--initial-branch=main', repoDir]);
}

export function run(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`git ${args[0]} failed: ${err.trim()}`))));
  });
}
