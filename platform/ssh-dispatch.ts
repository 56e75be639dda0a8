import type { Config } from '../core/config.js';
import { SlipwayError, oneLine } from '../core/errors.js';
import { parseAppName } from '../core/app-name.js';
import { repoPath, type Paths } from '../core/paths.js';
import type { AppStore } from '../core/store.js';
import { commands, runCommand, type CommandIO, type Platform } from '../receiver/commands/index.js';
import { relayGitService, spawnGitService } from '../receiver/git.js';
import { splitCommandLine } from '../receiver/split.js';
import { authorize, originOf } from '../receiver/commands/caller.js';
import type { SshExec } from '../receiver/ssh-server.js';

export interface SshDispatchDeps {
  config: Config;
  paths: Paths;
  apps: AppStore;
  platform: Platform;
  gitHooksDir: string;
  hookEnv: (app: string, pusher: string) => Record<string, string>;
}

/**
 * What an SSH exec request runs: `git-receive-pack`/`git-upload-pack '<app>'` go to the real git
 * (its hook reports back over the admin socket), anything else is a Slipway command with the
 * key holder's rights, never the local admin's (docs/security.md).
 */
export function sshExecHandler(d: SshDispatchDeps): (exec: SshExec) => Promise<number> {
  return async (exec) => {
    const write = (stream: NodeJS.WritableStream) => (text: string) => {
      if (!exec.signal.aborted) stream.write(text);
    };
    let argv: string[];
    try {
      argv = splitCommandLine(exec.command);
    } catch (err) {
      exec.stderr.write(`slipway: ${oneLine(err)}\n`);
      return err instanceof SlipwayError ? err.exitCode : 1;
    }
    const [verb, ...args] = argv;
    // The key's user, with that user's rights (README, "Users and access"); a key whose user is
    // gone or locked acts as nobody, and every check below refuses it.
    const key = await d.platform.keys.get(exec.user);
    const io: CommandIO = {
      out: write(exec.stdout),
      err: write(exec.stderr),
      readStdin: () => readAll(exec.stdin, 64 * 1024),
      readStdinBytes: (limit) => readAllBytes(exec.stdin, limit),
      stdout: exec.stdout,
      stdin: exec.stdin,
      signal: exec.signal,
      actor: exec.user,
      local: false,
      user: key?.user ?? '',
      from: `ssh ${exec.remote ?? '?'} key=${exec.user}`,
      ...(exec.terminal ? { terminal: exec.terminal } : {}),
    };
    if (verb === 'git-receive-pack' || verb === 'git-upload-pack') {
      if (args.length !== 1) {
        exec.stderr.write(`slipway: usage: ${verb} '<app>'\n`);
        return 2;
      }
      let app: string;
      try {
        app = parseAppName(args[0]!, { forRepo: true });
        // Git both ways is for those who manage the app: viewers have no git (contract).
        await authorize(io, d.platform, 'app:manage', app);
        await d.apps.get(app);
      } catch (err) {
        exec.stderr.write(`slipway: ${oneLine(err)}\n`);
        return 1;
      }
      const child = spawnGitService({
        repoDir: repoPath(d.paths, app),
        service: verb === 'git-receive-pack' ? 'receive-pack' : 'upload-pack',
        hooksDir: d.gitHooksDir,
        maxPushBytes: d.config.maxPushBytes,
        // Releases record who pushed: the key's user, not the key's name.
        hookEnv: d.hookEnv(app, originOf(io).actor),
      });
      const { code } = await relayGitService(child, { input: [exec.stdin], output: exec.stdout, errors: exec.stderr, signal: exec.signal });
      if (code === 0 && verb === 'git-receive-pack') d.platform.users.audit(originOf(io), 'git:push', app, 'over ssh');
      return code ?? 1;
    }
    return runCommand(commands, argv, io, d.platform);
  };
}

/** Whether an SSH command line names an interactive command, which gets the client's pty. */
export function wantsPty(command: string): boolean {
  try {
    const [verb] = splitCommandLine(command);
    return commands.find((c) => c.name === verb)?.terminal === true;
  } catch {
    return false;
  }
}

// Events, not `for await`: async iteration destroys the stream at its end, and this one is the
// SSH channel the answer still has to go out on.
function readAllBytes(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit) reject(new SlipwayError('E_TOO_LARGE', `standard input is larger than ${limit} bytes`));
      else chunks.push(d);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.length > limit) reject(new SlipwayError('E_USAGE', 'standard input too large', { exitCode: 2 }));
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}
