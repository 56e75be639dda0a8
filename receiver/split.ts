import { parse } from 'shell-quote';
import { SlipwayError } from '../platform/errors.js';

export const MAX_COMMAND_LENGTH = 8192;

/**
 * Splits an SSH exec request into argv the way a POSIX shell would quote it, without ever
 * running a shell: quotes and escapes are honoured, `$NAME` stays literal, and any shell
 * operator (`;`, `|`, `&`, `>`, backquotes, `$(...)`) is refused rather than interpreted.
 */
export function splitCommandLine(line: string): string[] {
  if (line.length > MAX_COMMAND_LENGTH) {
    throw new SlipwayError('E_USAGE', `command too long (${line.length} characters, at most ${MAX_COMMAND_LENGTH})`, { exitCode: 2 });
  }
  if (/[\0\r\n]/.test(line)) {
    throw new SlipwayError('E_USAGE', 'command contains a NUL byte or a line break', { exitCode: 2 });
  }
  if (line.includes('`') || line.includes('$(')) {
    throw new SlipwayError('E_USAGE', 'shell substitution is not allowed in commands', { exitCode: 2 });
  }
  const tokens = parse(line, (name) => `$${name}`);
  const argv: string[] = [];
  for (const token of tokens) {
    if (typeof token === 'string') {
      argv.push(token);
    } else if ('op' in token && token.op === 'glob') {
      argv.push(token.pattern);
    } else {
      const what = 'op' in token ? token.op : '#';
      throw new SlipwayError('E_USAGE', `shell operator "${what}" is not allowed: quote the argument if it is meant literally`, {
        exitCode: 2,
      });
    }
  }
  return argv;
}
