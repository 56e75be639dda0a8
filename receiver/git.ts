import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Writable, pipeline } from 'node:stream';

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

export interface GitRelay {
  /**
   * The client's bytes for git's stdin: a source and any transforms (byte caps, gunzip), or null
   * when git reads nothing. git's stdin is ended only when all of it arrived intact.
   */
  input: Array<NodeJS.ReadableStream | NodeJS.ReadWriteStream> | null;
  /** Where git's stdout goes. Never ended here: SSH still sends the exit status on it. */
  output: NodeJS.WritableStream;
  /** Where git's stderr goes; without one it is only collected for the result. */
  errors?: NodeJS.WritableStream;
  /** Aborted when the client is gone: git is stopped with `kill`. */
  signal?: AbortSignal;
  kill?: NodeJS.Signals;
  /** Called before git's first output byte is handed on (HTTP sends its headers then). */
  onFirstOutput?: () => void;
  /** Called when the input failed (truncated, over a cap, unreadable); git is killed first. */
  onInputError?: (err: Error) => void;
}

export interface GitRelayResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The first 4 KB of git's stderr. */
  stderr: string;
}

/**
 * Connects a git server program to a client (SSH channel or HTTP request/response) with
 * stream.pipeline on every side, so a client that sends garbage, stops reading or vanishes, and
 * a git that exits early (EPIPE on its stdin), end this one exchange and never reach the
 * process as an unhandled 'error' (issue 9, High 2). Resolves once git exited and all of its
 * output was handed on.
 */
export function relayGitService(child: ChildProcess, o: GitRelay): Promise<GitRelayResult> {
  let stderr = '';
  const collect = (d: Buffer): void => {
    if (stderr.length < 4096) stderr += d.toString();
  };
  child.stderr!.on('data', collect);
  const stdoutDone = new Promise<void>((resolve) => pipeline(child.stdout!, forwardTo(o.output, o.onFirstOutput), () => resolve()));
  const stderrDone = o.errors
    ? new Promise<void>((resolve) => pipeline(child.stderr!, forwardTo(o.errors!), () => resolve()))
    : Promise.resolve();
  if (o.input) {
    const stages: ReadonlyArray<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream> = [...o.input, intoChild(child)];
    pipeline(stages, (err: NodeJS.ErrnoException | null) => {
      if (!err) return;
      // Never let git see a clean end of a truncated body: kill it before its stdin closes.
      child.kill('SIGKILL');
      child.stdin?.destroy();
      o.onInputError?.(err);
    });
  } else {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end();
  }
  const stop = (): void => {
    child.kill(o.kill ?? 'SIGTERM');
  };
  if (o.signal?.aborted) stop();
  else o.signal?.addEventListener('abort', stop, { once: true });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', () => undefined); // spawn failures surface as a non-zero 'close'
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return Promise.all([exited, stdoutDone, stderrDone]).then(([{ code, signal }]) => {
    o.signal?.removeEventListener('abort', stop);
    return { code, signal, stderr };
  });
}

/**
 * A sink that writes into `dest` with backpressure and never ends it; once `dest` is closed or
 * failing, the rest is read and dropped, so the source still drains and its pipeline completes.
 */
export function forwardTo(dest: NodeJS.WritableStream, onFirst?: () => void): Writable {
  let failed = false;
  const fail = (): void => {
    failed = true;
  };
  dest.on('error', fail);
  let first = true;
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const d = dest as NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean };
      if (failed || d.destroyed || d.writableEnded || !dest.writable) {
        cb();
        return;
      }
      if (first) {
        first = false;
        onFirst?.();
      }
      if (dest.write(chunk)) {
        cb();
        return;
      }
      waitDrain(dest, cb);
    },
    destroy(_err, cb) {
      dest.off('error', fail);
      cb(null);
    },
    final(cb) {
      dest.off('error', fail);
      cb();
    },
  });
}

function waitDrain(dest: NodeJS.WritableStream, cb: () => void): void {
  const settle = (): void => {
    dest.off('drain', settle);
    dest.off('close', settle);
    dest.off('error', settle);
    cb();
  };
  dest.on('drain', settle);
  dest.on('close', settle);
  dest.on('error', settle);
}

/**
 * A sink that writes into git's stdin with backpressure and ends it only on a clean finish. When
 * git stops reading early (it refused the input and says why on stdout), the rest is read and
 * dropped so that answer still reaches the client.
 */
function intoChild(child: ChildProcess): Writable {
  const stdin = child.stdin!;
  stdin.on('error', () => undefined); // EPIPE after git exited: handled as "stopped reading"
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (stdin.destroyed || !stdin.writable) {
        cb();
        return;
      }
      if (stdin.write(chunk)) {
        cb();
        return;
      }
      waitDrain(stdin, cb);
    },
    final(cb) {
      if (stdin.destroyed || stdin.writableEnded) cb();
      else stdin.end(() => cb());
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
