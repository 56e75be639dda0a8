import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import { SlipwayError, oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { BUILTIN_ADMIN } from '../core/users.js';
import { PassThrough, Writable } from 'node:stream';
import { decodeLines, encode, MAX_REQUEST_BYTES, parseInputFrame, parseRequest, type Frame, type Request } from '../core/wire.js';
import { commands, runCommand, type CommandIO, type Platform } from '../receiver/commands/index.js';
import { handlePush, type PushDeps } from '../hooks/push.js';

/**
 * The admin socket's requests: the local CLI's commands (as the local admin, the only caller
 * with `local` rights: docs/security.md) and the git hook's pushes.
 */
export function adminRequestHandler(platform: Platform, push: PushDeps): Handler {
  return async (req, send, signal, stdin, resized) => {
    if (req.op === 'command') {
      const tty = req.tty;
      const io: CommandIO = {
        out: (d) => send({ t: 'out', d }),
        err: (d) => send({ t: 'err', d }),
        stdout: new Writable({
          write(chunk: Buffer, _enc, done) {
            send({ t: 'bin', d: chunk.toString('base64') });
            done();
          },
        }),
        ...(stdin ? { stdin } : {}),
        ...(tty && resized ? { terminal: { rows: tty.rows, cols: tty.cols, onResize: (listener) => resized.on('resize', listener) } } : {}),
        readStdin: async () => req.stdin ?? '',
        signal,
        actor: 'cli',
        local: true,
        user: BUILTIN_ADMIN,
        from: 'local socket',
      };
      return runCommand(commands, req.argv, io, platform);
    }
    return handlePush(push, req, { out: (d) => send({ t: 'out', d }), signal });
  };
}

/**
 * `stdin`: the client's standard input, for a request with `stdinStream`; `resized` emits
 * `resize` with the client terminal's new size.
 */
type Handler = (req: Request, send: (f: Frame) => void, signal: AbortSignal, stdin?: NodeJS.ReadableStream, resized?: EventEmitter) => Promise<number>;

/** The admin socket: root-only, one request per connection, closing the connection cancels it. */
export async function listenAdminSocket(file: string, logger: Logger, handle: Handler): Promise<net.Server> {
  await clearStaleSocket(file);
  const server = net.createServer((socket) => {
    const controller = new AbortController();
    socket.on('close', () => controller.abort());
    socket.on('error', () => controller.abort());
    const send = (f: Frame) => {
      if (!socket.destroyed) socket.write(encode(f));
    };
    let bytes = 0;
    // The request is bounded; a standard input streamed after it (`postgres:import`) is not.
    let stdin: PassThrough | null = null;
    const resized = new EventEmitter();
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (stdin === null && bytes > MAX_REQUEST_BYTES) socket.destroy();
    });
    let finished = false;
    controller.signal.addEventListener('abort', () => {
      // After the command, nobody reads its input: an interactive one's never ends by itself.
      if (stdin && !stdin.writableEnded && !finished) stdin.destroy(new SlipwayError('E_USAGE', 'the client went away before the end of its input'));
    });
    (async () => {
      let running: Promise<void> | null = null;
      for await (const value of decodeLines(socket)) {
        if (running === null) {
          const req = parseRequest(value);
          if (req.op === 'command' && req.stdinStream) stdin = new PassThrough();
          running = handle(req, send, controller.signal, stdin ?? undefined, resized).then((code) => {
            finished = true;
            send({ t: 'exit', code });
            socket.end();
          });
          if (stdin === null) return running;
          continue;
        }
        const frame = parseInputFrame(value);
        if (frame.t === 'eof') stdin?.end();
        else if (frame.t === 'resize') resized.emit('resize', { rows: frame.rows, cols: frame.cols });
        else stdin?.write(Buffer.from(frame.d, 'base64'));
      }
      return running;
    })().catch((err: unknown) => {
      logger.warn({ err: oneLine(err) }, 'bad request on the admin socket');
      send({ t: 'err', d: `slipway: ${oneLine(err)}\n` });
      send({ t: 'exit', code: 1 });
      socket.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  await fs.chmod(file, 0o600);
  return server;
}

async function clearStaleSocket(file: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(file);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  if (alive) throw new SlipwayError('E_DAEMON', `a Slipway daemon already answers on ${file}: stop it first, or use another SLIPWAY_HOME`);
  await fs.rm(file, { force: true });
}
