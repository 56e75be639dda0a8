import fs from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { Logger } from '../platform/log.js';
import { oneLine } from '../platform/errors.js';
import { writeFileAtomicText } from '../platform/files.js';
import type { SshKeyStore } from './ssh-keys.js';

const { Server, utils } = ssh2;

/** One exec request on an authenticated channel. */
export interface SshExec {
  command: string;
  user: string;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Aborted when the client closes the channel. */
  signal: AbortSignal;
}

export type SshExecHandler = (exec: SshExec) => Promise<number>;

export interface SshServerOptions {
  listen: string;
  port: number;
  hostKeyFile: string;
  keys: SshKeyStore;
  onExec: SshExecHandler;
  logger: Logger;
}

/** Loads the host key, creating it on first start so clients see the same host key forever. */
export async function loadHostKey(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const pair = utils.generateKeyPairSync('ed25519');
    await writeFileAtomicText(file, pair.private, 0o600);
    return Buffer.from(pair.private);
  }
}

/**
 * The SSH front door, speaking only exec requests: no shell, no pty, no port forwarding.
 * Each connection is independent, so many pushes and commands run at once.
 */
export async function startSshServer(o: SshServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const hostKey = await loadHostKey(o.hostKeyFile);
  const server = new Server({ hostKeys: [hostKey], ident: 'Slipway' }, (client, info) => {
    let user = '';
    const log = o.logger.child({ remote: info.ip });
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') {
        ctx.reject(['publickey']);
        return;
      }
      o.keys
        .match(ctx.key.algo, ctx.key.data)
        .then((match) => {
          if (!match) {
            log.info({ user: ctx.username }, 'ssh: unknown key refused');
            ctx.reject(['publickey']);
            return;
          }
          if (ctx.signature && ctx.blob) {
            if (!match.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
              ctx.reject(['publickey']);
              return;
            }
            user = match.key.name;
          }
          ctx.accept();
        })
        .catch(() => ctx.reject(['publickey']));
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        // Git and commands need exec only: ptys and shells are refused.
        session.on('pty', (_accept, reject) => reject?.());
        session.on('shell', (accept) => {
          const channel = accept();
          channel.stderr.write('slipway: interactive shells are not offered: run `ssh ... help` for the commands\n');
          channel.exit(2);
          channel.end();
        });
        session.on('exec', (accept, _reject, info) => {
          const channel = accept();
          const controller = new AbortController();
          channel.on('close', () => controller.abort());
          // A channel whose stdin nobody reads (`logs --follow`) emits 'close' only after its
          // input ends, which never happens if the client just vanishes: watch the connection too.
          const gone = () => controller.abort();
          client.once('close', gone);
          controller.signal.addEventListener('abort', () => client.off('close', gone), { once: true });
          o.onExec({ command: info.command, user, stdin: channel, stdout: channel, stderr: channel.stderr, signal: controller.signal })
            .catch((err: unknown) => {
              channel.stderr.write(`slipway: ${oneLine(err)}\n`);
              return 1;
            })
            .then((code) => {
              if (!controller.signal.aborted) {
                channel.exit(code);
                channel.end();
              }
            });
        });
      });
    });
    client.on('error', (err) => log.debug({ err: err.message }, 'ssh: client error'));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.listen, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : o.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
