import net from 'node:net';
import { SlipwayError } from '../core/errors.js';
import { decodeLines, encode, type Frame } from '../core/wire.js';

/**
 * Runs one command on the local daemon over its socket, relaying output as it streams.
 * Resolves with the command's exit code. Ctrl-C closes the socket, which cancels the command.
 */
export async function runRemote(socketPath: string, argv: string[], stdin: string | undefined, o: { streamStdin?: NodeJS.ReadableStream } = {}): Promise<number> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${err.code ?? err.message})`;
      reject(new SlipwayError('E_DAEMON', `the Slipway daemon ${reason} at ${socketPath}: start it with \`slipway server\``));
    });
  });
  socket.write(encode({ op: 'command', argv, ...(stdin === undefined ? {} : { stdin }), ...(o.streamStdin ? { stdinStream: true } : {}) }));
  if (o.streamStdin) void sendInput(socket, o.streamStdin);
  process.once('SIGINT', () => {
    socket.destroy();
    process.exit(130);
  });
  let code = 1;
  for await (const value of decodeLines(socket)) {
    const frame = value as Frame;
    if (frame.t === 'out') process.stdout.write(frame.d);
    else if (frame.t === 'bin') process.stdout.write(Buffer.from(frame.d, 'base64'));
    else if (frame.t === 'err') process.stderr.write(frame.d);
    else if (frame.t === 'exit') code = frame.code;
  }
  return code;
}

/** Standard input to the daemon as `in` frames, then `eof` (a `streamIn` command: `postgres:import`). */
async function sendInput(socket: net.Socket, input: NodeJS.ReadableStream): Promise<void> {
  try {
    for await (const chunk of input) {
      if (socket.destroyed) return;
      const ok = socket.write(encode({ t: 'in', d: Buffer.from(chunk as Buffer).toString('base64') }));
      if (!ok) await new Promise((resolve) => socket.once('drain', resolve));
    }
    if (!socket.destroyed) socket.write(encode({ t: 'eof' }));
  } catch {
    // The daemon went away, or stdin failed: the socket closing ends the command either way.
    socket.destroy();
  }
}
