import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import ssh2, { type Connection, type ServerChannel, type Session } from 'ssh2';
import type { Logger } from '../core/log.js';
import { oneLine } from '../core/errors.js';
import { writeFileAtomicText } from '../core/files.js';
import { MAX_COMMAND_BYTES } from './split.js';
import type { SshKeyStore, StoredKey } from './ssh-keys.js';

const { Server, utils } = ssh2;

/** One exec request on an authenticated channel. */
export interface SshExec {
  command: string;
  user: string;
  /** The client's address, for the audit log. */
  remote?: string;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Aborted when the client closes the channel. */
  signal: AbortSignal;
  /** The client's pty, granted only to commands that ask for one (`wantsPty`). */
  terminal?: { rows: number; cols: number; onResize(listener: (size: { rows: number; cols: number }) => void): void };
}

/** A client's pty request, answered when its exec arrives. */
interface PtyRequest {
  accept?: () => void;
  reject?: () => void;
  rows: number;
  cols: number;
}

export type SshExecHandler = (exec: SshExec) => Promise<number>;

export interface SshServerOptions {
  listen: string;
  port: number;
  hostKeyFile: string;
  keys: SshKeyStore;
  onExec: SshExecHandler;
  /** Whether an exec command is interactive and gets the pty its client asked for (`postgres:connect`). */
  wantsPty(command: string): boolean;
  logger: Logger;
}

/**
 * Loads the host key, creating it on first start so clients see the same host key forever.
 * A stored key ssh2 cannot parse never served a connection (the server refuses to start with it),
 * so replacing it changes nothing any client has seen.
 */
export async function loadHostKey(file: string, logger?: Logger): Promise<Buffer> {
  try {
    const stored = await fs.readFile(file);
    if (!(utils.parseKey(stored) instanceof Error)) return stored;
    logger?.warn({ file }, 'ssh: the stored host key cannot be parsed; making a new one');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = generateHostKey();
  await writeFileAtomicText(file, key, 0o600);
  return Buffer.from(key);
}

/**
 * ssh2's ed25519 generator drops a leading zero byte of the public key, so about one key in 256
 * cannot be parsed back (mscdex/ssh2 issues 1390 and 1513); such a key stopped the server from
 * starting. Keep only keys that parse, private and public half.
 */
export function generateHostKey(generate: () => { private: string; public: string } = () => utils.generateKeyPairSync('ed25519')): string {
  for (let attempt = 0; attempt < 32; attempt++) {
    const pair = generate();
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair.private;
  }
  throw new Error('could not generate an SSH host key ssh2 can read: upgrade Slipway or report this');
}

/**
 * The SSH front door, speaking only exec requests: no shell, no port forwarding, and a pty only
 * for the interactive commands (`ssh -t ... postgres:connect db`).
 * Each connection is independent, so many pushes and commands run at once.
 */
export async function startSshServer(o: SshServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const hostKey = await loadHostKey(o.hostKeyFile, o.logger);
  // Open connections by the key they signed in with, so removing a key ends its sessions.
  const byKey = new Map<Connection, { key: StoredKey; channels: Set<ServerChannel> }>();
  const unsubscribe = o.keys.onRemoved((removed) => {
    for (const [client, conn] of byKey) {
      if (conn.key.fingerprint !== removed.fingerprint) continue;
      o.logger.info({ key: removed.name, sessions: conn.channels.size }, 'ssh: key removed, ending its sessions');
      for (const channel of conn.channels) {
        channel.stderr.write(`slipway: the SSH key "${removed.name}" was removed: this session ends\n`);
        channel.exit(1);
        channel.end();
      }
      byKey.delete(client);
      // Give the lines above a moment to leave before the connection goes.
      setTimeout(() => client.end(), 100).unref();
    }
  });
  const server = new Server({ hostKeys: [hostKey], ident: 'Slipway' }, (client, info) => {
    let user = '';
    let signedInWith: StoredKey | null = null;
    const channels = new Set<ServerChannel>();
    // Sessions opened but still waiting for their exec request (see the packet-size note below).
    const waiting = new Set<Session>();
    const remote = info.ip;
    const log = o.logger.child({ remote });
    client.on('close', () => byKey.delete(client));
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
            signedInWith = match.key;
          }
          ctx.accept();
        })
        .catch(() => ctx.reject(['publickey']));
    });
    client.on('ready', () => {
      if (signedInWith) byKey.set(client, { key: signedInWith, channels });
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        waiting.add(session);
        // A pty request comes before the exec it is for: its answer waits for the command, and
        // only interactive ones get it (a pty would turn everything else's \n into a staircase).
        let ptyAsked: PtyRequest | null = null;
        const resized = new EventEmitter();
        session.on('pty', (accept, reject, info) => {
          ptyAsked = { accept, reject, rows: info.rows || 24, cols: info.cols || 80 };
        });
        session.on('window-change', (accept, _reject, info) => {
          accept?.();
          if (info.rows > 0 && info.cols > 0) resized.emit('resize', { rows: info.rows, cols: info.cols });
        });
        session.on('shell', (accept) => {
          waiting.delete(session);
          ptyAsked?.reject?.();
          const channel = accept();
          channel.stderr.write('slipway: interactive shells are not offered: run `ssh ... help` for the commands\n');
          channel.exit(2);
          channel.end();
        });
        session.on('exec', (accept, _reject, info) => {
          waiting.delete(session);
          const asked = ptyAsked;
          const pty = asked !== null && o.wantsPty(info.command) ? asked : null;
          if (pty) pty.accept?.();
          else asked?.reject?.();
          const channel = accept();
          // A client that vanishes makes writes to its channel fail: that ends this exchange only.
          channel.on('error', (err: Error) => log.debug({ err: err.message }, 'ssh: channel error'));
          channel.stderr.on('error', (err: Error) => log.debug({ err: err.message }, 'ssh: channel error'));
          channels.add(channel);
          const controller = new AbortController();
          channel.on('close', () => {
            channels.delete(channel);
            controller.abort();
          });
          // A channel whose stdin nobody reads (`logs --follow`) emits 'close' only after its
          // input ends, which never happens if the client just vanishes: watch the connection too.
          const gone = () => controller.abort();
          client.once('close', gone);
          controller.signal.addEventListener('abort', () => client.off('close', gone), { once: true });
          o.onExec({ command: info.command, user, remote, stdin: channel, stdout: channel, stderr: channel.stderr, signal: controller.signal,
            ...(pty ? { terminal: { rows: pty.rows, cols: pty.cols, onResize: (listener) => resized.on('resize', listener) } } : {}),
          })
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
    client.on('error', (err) => {
      log.debug({ err: err.message }, 'ssh: client error');
      if (/^Bad packet length/.test(err.message)) answerOversizePacket(client, waiting);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.listen, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : o.port,
    close: () =>
      new Promise((resolve) => {
        unsubscribe();
        server.close(() => resolve());
      }),
  };
}

/** The parts of ssh2's internals used to answer a request ssh2 refuses to read (see below). */
interface Ssh2Internals {
  _protocol?: {
    channelExtData(chan: number, data: Buffer, type: number): void;
    exitStatus(chan: number, status: number): void;
    channelEOF(chan: number): void;
    channelClose(chan: number): void;
  };
}

/**
 * ssh2 refuses any packet over 35000 bytes (the RFC 4253 minimum every implementation must
 * read) by dropping the connection, and OpenSSH sends a whole exec request as one packet: a
 * command over ~35 KB would end in "Connection closed" with no word why. The session channel is
 * already open then and our outgoing cipher still works, so answer on it the way every
 * refused command is answered: one line on stderr and exit status 2. ssh2 ends the socket
 * right after, in the same tick; what we queue here goes out first.
 */
function answerOversizePacket(client: Connection, waiting: Set<Session>): void {
  const proto = (client as unknown as Ssh2Internals)._protocol;
  if (!proto) return;
  for (const session of waiting) {
    const remote = (session as unknown as { _chanInfo?: { outgoing?: { id?: number } } })._chanInfo?.outgoing?.id;
    if (typeof remote !== 'number') continue;
    try {
      proto.channelExtData(remote, Buffer.from(`slipway: command too long (over 35000 bytes, at most ${MAX_COMMAND_BYTES})\n`), 1);
      proto.exitStatus(remote, 2);
      proto.channelEOF(remote);
      proto.channelClose(remote);
    } catch {
      // The connection is going either way; this was only the courtesy of a reason.
    }
  }
  waiting.clear();
}
