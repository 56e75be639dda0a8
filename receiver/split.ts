import { parse } from 'shell-quote';
import { SlipwayError } from '../core/errors.js';

/**
 * The longest command accepted, in bytes. Well below ssh2's 35000-byte packet limit, so an
 * oversize command usually gets this one-line refusal rather than a dropped connection (the
 * SSH server answers the rare request over that limit itself, see receiver/ssh-server.ts).
 */
export const MAX_COMMAND_BYTES = 8192;

const usage = (message: string) => new SlipwayError('E_USAGE', message, { exitCode: 2 });

/**
 * Splits an SSH exec request into argv the way a POSIX shell would quote it, without ever
 * running a shell: quotes and escapes are honoured, `$NAME` stays literal, and any shell
 * operator (`;`, `|`, `&`, `>`, backquotes, `$(...)`) is refused rather than interpreted.
 */
export function splitCommandLine(line: string): string[] {
  const bytes = Buffer.byteLength(line);
  if (bytes > MAX_COMMAND_BYTES) {
    throw usage(`command too long (${bytes} bytes, at most ${MAX_COMMAND_BYTES})`);
  }
  if (/[\0\r\n]/.test(line)) {
    throw usage('command contains a NUL byte or a line break');
  }
  if (line.includes('`') || line.includes('$(')) {
    throw usage('shell substitution is not allowed in commands');
  }
  checkQuoting(line);
  const tokens = parse(line, (name) => `$${name}`);
  const argv: string[] = [];
  for (const token of tokens) {
    if (typeof token === 'string') {
      argv.push(token);
    } else if ('op' in token && token.op === 'glob') {
      argv.push(token.pattern);
    } else {
      const what = 'op' in token ? token.op : '#';
      throw usage(`shell operator "${what}" is not allowed: quote the argument if it is meant literally`);
    }
  }
  return argv;
}

/**
 * Refuses what a shell would refuse and shell-quote silently accepts: a quote left open or a
 * backslash with nothing after it. Guessing where the argument was meant to end could turn
 * `config:set app K='a b` into a value the user never wrote.
 */
export function checkQuoting(line: string): void {
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
    } else if (c === '\\') {
      if (i === line.length - 1) throw usage('the command ends in a backslash: escape it as \\\\ or quote it');
      i++;
    } else if (quote === '"') {
      if (c === '"') quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    }
  }
  if (quote) throw usage(`unterminated ${quote} quote in the command: close it, or escape it with a backslash`);
}
