import { StringDecoder } from 'node:string_decoder';

/** One line an app printed, as Docker recorded it (`timestamps: true`). */
export interface LogLine {
  /** Docker's RFC 3339 time, fraction padded to nanoseconds so that strings sort as times. */
  time: string;
  /** The container that printed it: `<app>.<type>.<n>`. */
  source: string;
  text: string;
}

// Docker writes RFC3339Nano and trims trailing zeros of the fraction (`.1Z`, `.123456789Z`),
// so two raw stamps do not compare as strings; padded ones do.
const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/;

export function normalizeStamp(stamp: string): string | null {
  const m = STAMP.exec(stamp);
  if (!m) return null;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}Z`;
}

/** `2026-11-25T12:00:00.123456789Z hello` -> a LogLine; a line without a stamp keeps `fallback`. */
export function parseDockerLine(raw: string, source: string, fallback: string): LogLine {
  const space = raw.indexOf(' ');
  const time = space > 0 ? normalizeStamp(raw.slice(0, space)) : normalizeStamp(raw);
  if (time === null) return { time: fallback, source, text: raw };
  return { time, source, text: space > 0 ? raw.slice(space + 1) : '' };
}

/** What users see: millisecond time, the container, the line (`2026-11-25T12:00:00.123Z app.web.1: hi`). */
export function formatLine(line: LogLine): string {
  return `${line.time.slice(0, 23)}Z ${line.source}: ${line.text}\n`;
}

/**
 * Merges the lines of several containers into time order and keeps the last `n` overall. The
 * sort is stable, so lines of one container with the same stamp keep their order.
 */
export function mergeTail(perSource: LogLine[][], n: number): LogLine[] {
  const all = perSource.flat().sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  return n <= 0 ? [] : all.slice(-n);
}

/** `since` for Docker's logs API: seconds and nanoseconds of a normalized stamp. */
export function sinceOf(time: string): string {
  const seconds = Math.floor(Date.parse(`${time.slice(0, 19)}Z`) / 1000);
  return `${seconds}.${time.slice(20, 29)}`;
}

/**
 * Cuts a byte stream into whole lines (UTF-8 safe across chunk borders). `push` returns the
 * complete lines of a chunk; `end` the unterminated rest, if any.
 */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  #rest = '';

  push(chunk: Buffer | string): string[] {
    const text = this.#rest + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk));
    const lines = text.split('\n');
    this.#rest = lines.pop() ?? '';
    return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }

  end(): string[] {
    const last = this.#rest + this.#decoder.end();
    this.#rest = '';
    return last === '' ? [] : [last];
  }
}
