import type { Duplex } from 'node:stream';
import readline from 'node:readline';

/**
 * The local socket protocol between the daemon and its clients (the CLI and the pre-receive
 * hook): newline-delimited JSON. The client sends one request; the daemon answers with a stream
 * of output frames and ends with one exit frame. Closing the socket cancels the request.
 */
export interface PushRef {
  oldRev: string;
  newRev: string;
  ref: string;
}

export type Request =
  /**
   * `stdinStream`: the client's standard input follows as `in` frames, then `eof`. `tty`: the
   * client's terminal size, when it runs an interactive command at a terminal (`postgres:connect`).
   */
  | { op: 'command'; argv: string[]; stdin?: string; stdinStream?: boolean; tty?: TtySize }
  | { op: 'push'; app: string; refs: PushRef[]; gitEnv: Record<string, string>; pusher: string };

/** `bin`: bytes for standard output, base64 (`postgres:export`). */
export type Frame = { t: 'out'; d: string } | { t: 'err'; d: string } | { t: 'bin'; d: string } | { t: 'exit'; code: number };

export interface TtySize {
  rows: number;
  cols: number;
}

/** What a client sends after a `stdinStream` request: its standard input, base64, then `eof`; `resize` when its terminal changes size. */
export type InputFrame = { t: 'in'; d: string } | { t: 'eof' } | ({ t: 'resize' } & TtySize);

/** A terminal size as a client sends it: whole numbers within what a terminal can be. */
export function isTtySize(v: unknown): v is TtySize {
  const s = v as Partial<Record<string, unknown>> | null;
  const dim = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 10_000;
  return s !== null && typeof s === 'object' && dim(s.rows) && dim(s.cols);
}

export function parseInputFrame(value: unknown): InputFrame {
  const v = value as Partial<Record<string, unknown>> | null;
  if (v && v.t === 'in' && typeof v.d === 'string') return { t: 'in', d: v.d };
  if (v && v.t === 'eof') return { t: 'eof' };
  if (v && v.t === 'resize' && isTtySize(v)) return { t: 'resize', rows: v.rows, cols: v.cols };
  throw new Error('malformed input frame');
}

export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export function encode(frame: Frame | Request | InputFrame): string {
  return `${JSON.stringify(frame)}\n`;
}

/** Reads newline-delimited JSON values from a stream; a line that is not JSON ends the stream. */
export async function* decodeLines(stream: Duplex): AsyncGenerator<unknown> {
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  // readline ends on the input's 'end' only: a socket destroyed mid-line (over the request
  // limit, a client gone) would leave this reader waiting forever.
  stream.once('close', () => rl.close());
  for await (const line of rl) {
    if (line.length === 0) continue;
    yield JSON.parse(line) as unknown;
  }
}

/** Checks a request read from the socket; the socket is root-only, but a malformed frame still gets a clear error. */
export function parseRequest(value: unknown): Request {
  const v = value as Partial<Record<string, unknown>> | null;
  const strings = (a: unknown): a is string[] => Array.isArray(a) && a.every((x) => typeof x === 'string');
  if (v && v.op === 'command' && strings(v.argv) && (v.stdin === undefined || typeof v.stdin === 'string') && (v.stdinStream === undefined || typeof v.stdinStream === 'boolean') && (v.tty === undefined || isTtySize(v.tty))) return v as Request;
  if (
    v &&
    v.op === 'push' &&
    typeof v.app === 'string' &&
    typeof v.pusher === 'string' &&
    Array.isArray(v.refs) &&
    v.refs.every((r: Partial<PushRef>) => typeof r?.oldRev === 'string' && typeof r.newRev === 'string' && typeof r.ref === 'string') &&
    typeof v.gitEnv === 'object' && v.gitEnv !== null && Object.values(v.gitEnv).every((x) => typeof x === 'string')
  ) {
    return v as Request;
  }
  throw new Error('malformed request');
}
