import net from 'node:net';
import { SlipwayError } from '../core/errors.js';
import { decodeLines, encode, type Frame } from '../core/wire.js';

/**
 * Runs one command on the local daemon over its socket, relaying output as it streams.
 * Resolves with the command's exit code. Ctrl-C closes the socket, which cancels the command.
 */
export async function runRemote(socketPath: string, argv: string[], stdin: string | undefined): Promise<number> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${err.code ?? err.message})`;
      reject(new SlipwayError('E_DAEMON', `the Slipway daemon ${reason} at ${socketPath}: start it with \`slipway server\``));
    });
  });
  socket.write(encode({ op: 'command', argv, ...(stdin === undefined ? {} : { stdin }) }));
  process.once('SIGINT', () => {
    socket.destroy();
    process.exit(130);
  });
  let code = 1;
  for await (const value of decodeLines(socket)) {
    const frame = value as Frame;
    if (frame.t === 'out') process.stdout.write(frame.d);
    else if (frame.t === 'err') process.stderr.write(frame.d);
    else if (frame.t === 'exit') code = frame.code;
  }
  return code;
}
