import net from 'node:net';
import type tty from 'node:tty';
import { SlipwayError } from '../core/errors.js';
import { decodeLines, encode, type Frame } from '../core/wire.js';

/** The CLI's own terminal, for an interactive command (`postgres:connect`). */
export interface ClientTerminal {
  input: tty.ReadStream;
  output: tty.WriteStream;
}

/**
 * Runs one command on the local daemon over its socket, relaying output as it streams.
 * Resolves with the command's exit code. Ctrl-C closes the socket, which cancels the command;
 * with `terminal` the terminal is raw instead, and Ctrl-C goes to the remote program.
 */
export async function runRemote(socketPath: string, argv: string[], stdin: string | undefined, o: { streamStdin?: NodeJS.ReadableStream; terminal?: ClientTerminal } = {}): Promise<number> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is not running' : `cannot be reached (${err.code ?? err.message})`;
      reject(new SlipwayError('E_DAEMON', `the Slipway daemon ${reason} at ${socketPath}: start it with \`slipway server\``));
    });
  });
  const term = o.terminal;
  const tty = term ? { tty: { rows: term.output.rows, cols: term.output.columns } } : {};
  socket.write(encode({ op: 'command', argv, ...(stdin === undefined ? {} : { stdin }), ...(o.streamStdin ? { stdinStream: true } : {}), ...tty }));
  const stopInput = o.streamStdin ? sendInput(socket, o.streamStdin) : () => undefined;
  const resize = () => {
    if (term && !socket.destroyed) socket.write(encode({ t: 'resize', rows: term.output.rows, cols: term.output.columns }));
  };
  if (term) {
    term.input.setRawMode(true);
    term.output.on('resize', resize);
  }
  process.once('SIGINT', () => {
    socket.destroy();
    process.exit(130);
  });
  let code = 1;
  try {
    for await (const value of decodeLines(socket)) {
      const frame = value as Frame;
      if (frame.t === 'out') process.stdout.write(frame.d);
      else if (frame.t === 'bin') process.stdout.write(Buffer.from(frame.d, 'base64'));
      else if (frame.t === 'err') process.stderr.write(frame.d);
      else if (frame.t === 'exit') code = frame.code;
    }
  } finally {
    stopInput();
    if (term) {
      term.output.off('resize', resize);
      term.input.setRawMode(false);
    }
  }
  return code;
}

/**
 * Standard input to the daemon as `in` frames, then `eof` (`postgres:import`, `postgres:connect`).
 * Returns a stop for when the command ends first (a terminal never ends by itself).
 */
function sendInput(socket: net.Socket, input: NodeJS.ReadableStream): () => void {
  const onData = (chunk: Buffer | string) => {
    if (socket.destroyed) return;
    if (!socket.write(encode({ t: 'in', d: Buffer.from(chunk).toString('base64') }))) {
      input.pause();
      socket.once('drain', () => input.resume());
    }
  };
  const onEnd = () => {
    if (!socket.destroyed) socket.write(encode({ t: 'eof' }));
  };
  // The daemon went away, or stdin failed: the socket closing ends the command either way.
  const onError = () => socket.destroy();
  input.on('data', onData);
  input.once('end', onEnd);
  input.once('error', onError);
  return () => {
    input.off('data', onData);
    input.off('end', onEnd);
    input.off('error', onError);
    input.pause();
  };
}
