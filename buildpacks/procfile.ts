import { SlipwayError } from '../core/errors.js';
import { readFileUnder } from '../core/safe-read.js';

/** A process type becomes part of container names and labels, so it must be a DNS label. */
const PROCESS_TYPE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Parses a Procfile strictly: a typo must fail the deploy with the line number, not silently
 * drop a process type the user expects to run.
 */
export function parseProcfile(text: string): Record<string, string> {
  if (text.includes('\0')) throw new SlipwayError('E_PROCFILE', 'Procfile contains a NUL byte: it must be a text file');
  const types: Record<string, string> = Object.create(null) as Record<string, string>;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const fail = (what: string) => new SlipwayError('E_PROCFILE', `Procfile line ${i + 1}: ${what}`);
    const line = lines[i]!;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (line.includes('\r')) throw fail('stray carriage return');
    const colon = line.indexOf(':');
    if (colon === -1) throw fail('expected "<type>: <command>"');
    const type = line.slice(0, colon).trim();
    const command = line.slice(colon + 1).trim();
    if (!PROCESS_TYPE.test(type)) {
      throw fail(`invalid process type ${JSON.stringify(type.slice(0, 70))}: use a-z, 0-9 and '-' (at most 63)`);
    }
    if (command === '') throw fail(`process type "${type}" has no command`);
    if (Object.hasOwn(types, type)) throw fail(`duplicate process type "${type}"`);
    types[type] = command;
  }
  return { ...types };
}

/** A Procfile longer than this is not a list of process types. */
export const PROCFILE_MAX_BYTES = 256 * 1024;

/**
 * The built app's Procfile, parsed, or null when it has none. The build (uid 1000) may have
 * replaced it, so it is read without following links and refused unless a regular file
 * (core/safe-read.ts): a symlink to a host file must never be read, shown or run.
 */
export async function readProcfile(appDir: string): Promise<Record<string, string> | null> {
  const text = await readFileUnder(appDir, 'Procfile', { maxBytes: PROCFILE_MAX_BYTES, what: 'Procfile' });
  return text === null ? null : parseProcfile(text);
}
