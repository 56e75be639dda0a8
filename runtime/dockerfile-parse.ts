import { SlipwayError } from '../core/errors.js';

/**
 * A Dockerfile parser that reads a file the way the Docker Engine's own parser does (the
 * classic builder of Docker Engine 20.10, which vendors BuildKit's `frontend/dockerfile/parser`),
 * so the checks in dockerfile-check.ts see the same instructions the engine will run. Where the
 * two could disagree the checks refuse, so the differences that remain only ever refuse more.
 * Pure: no I/O.
 */

/** A parser directive at the top of the file (`# escape=` or `# syntax=`). */
export interface ParserDirective {
  name: 'escape' | 'syntax';
  value: string;
  /** 1-based line number. */
  line: number;
}

/** One instruction, continuation lines joined. */
export interface DockerfileInstruction {
  /** Lower-case instruction word: `from`, `run`, `copy`, ... */
  keyword: string;
  /** `--name=value` flags before the arguments, quotes and escapes removed as the engine does. */
  flags: string[];
  /** The rest of the line after the flags, trimmed. */
  args: string;
  /** 1-based line where the instruction starts (what the engine reports in its errors). */
  line: number;
}

export interface ParsedDockerfile {
  escape: '\\' | '`';
  directives: ParserDirective[];
  instructions: DockerfileInstruction[];
}

// The engine's directive grammar: `# key = value`, key case-insensitive; only these two keys are
// directives (any other line, a blank one included, ends the directive block).
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/s;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax']);
const COMMENT = /^#/;
const BOM = '\uFEFF';

const parseError = (line: number, what: string): SlipwayError => new SlipwayError('E_BUILD', `Dockerfile line ${line}: ${what}`);

/** Go's unicode.IsSpace on one byte, for ASCII (non-ASCII never reaches it, see extractFlags). */
const isSpace = (ch: string): boolean => /^[\t\n\v\f\r ]$/.test(ch);
const isAscii = (ch: string): boolean => ch.charCodeAt(0) < 0x80;
// Go's unicode.IsSpace, which trims comments and instructions (JavaScript's \s differs).
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_SPACE = new RegExp(`^[${GO_SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${GO_SPACE}]+$`);
const trimLeft = (s: string): string => s.replace(LEADING_SPACE, '');
const trimBoth = (s: string): string => trimLeft(s).replace(TRAILING_SPACE, '');

/**
 * Splits a Dockerfile into parser directives and instructions. Lines end at `\n` (a `\r` right
 * before it is dropped, as Go's line scanner does); a leading byte-order mark is ignored.
 */
export function parseDockerfileText(text: string): ParsedDockerfile {
  const lines = (text.startsWith(BOM) ? text.slice(BOM.length) : text).split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const directives: ParserDirective[] = [];
  let escape: '\\' | '`' = '\\';
  let i = 0;
  // Directives: only an unbroken run of known `# key=value` lines at the very top.
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(trimLeft(lines[i]!));
    if (!m) break;
    const name = m[1]!.toLowerCase();
    if (!KNOWN_DIRECTIVES.has(name)) break;
    if (directives.some((d) => d.name === name)) throw parseError(i + 1, `only one ${name} parser directive can be used`);
    const value = m[2]!;
    if (name === 'escape') {
      if (value !== '\\' && value !== '`') throw parseError(i + 1, `invalid escape token ${JSON.stringify(value)}: use \` or \\`);
      escape = value;
    }
    directives.push({ name: name as ParserDirective['name'], value, line: i + 1 });
  }
  // Directive lines are comments to the instruction parser.
  const continuation = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);
  const instructions: DockerfileInstruction[] = [];
  for (; i < lines.length; i++) {
    const first = trimLeft(lines[i]!);
    if (first === '' || COMMENT.test(first)) continue;
    const start = i + 1;
    let line = first;
    let ended = !continuation.test(line);
    if (!ended) line = line.replace(continuation, '');
    while (!ended && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      // Comment lines and blank lines inside a continued instruction are skipped, not joined.
      if (COMMENT.test(trimLeft(next)) || trimLeft(next) === '') continue;
      ended = !continuation.test(next);
      // The engine joins continuation lines with nothing in between: `FROM a\` + `b` is `FROM ab`.
      line += ended ? next : next.replace(continuation, '');
    }
    const trimmed = trimBoth(line);
    if (trimmed === '') continue;
    // The engine splits the instruction word off at ASCII whitespace only.
    const m = /^([^\t\v\f\r ]+)(?:[\t\v\f\r ]+([\s\S]*))?$/.exec(trimmed)!;
    const { flags, rest } = extractFlags(m[2] ?? '', start);
    instructions.push({ keyword: m[1]!.toLowerCase(), flags, args: trimBoth(rest), line: start });
  }
  return { escape, directives, instructions };
}

/**
 * The engine's `extractBuilderFlags`: leading words that start with `--` are flags; quotes group
 * and a backslash escapes (always a backslash here, whatever the escape directive says); `--`
 * alone ends the flags. The engine walks bytes and takes bytes 0x85 and 0xA0 for spaces, which
 * splits some UTF-8 characters; a non-ASCII character among the flags is refused rather than
 * guessed at.
 */
export function extractFlags(line: string, lineNo = 0): { flags: string[]; rest: string } {
  const nonAscii = () => parseError(lineNo, 'a non-ASCII character before or among the instruction flags: write flags in plain ASCII');
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && isSpace(line[pos]!)) pos++;
    if (pos >= line.length) return { flags, rest: '' };
    if (!line.startsWith('--', pos)) return { flags, rest: line.slice(pos) };
    let word = '';
    let quote = '';
    let blankOk = false;
    for (; pos < line.length; pos++) {
      let ch = line[pos]!;
      if (!isAscii(ch)) throw nonAscii();
      if (quote === '') {
        if (isSpace(ch)) break;
        if (ch === "'" || ch === '"') {
          quote = ch;
          blankOk = true;
          continue;
        }
      } else if (ch === quote) {
        quote = '';
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        pos++;
        ch = line[pos]!;
        if (!isAscii(ch)) throw nonAscii();
      }
      word += ch;
    }
    if (word === '--') return { flags, rest: line.slice(pos) };
    if (blankOk || word.length > 0) flags.push(word);
  }
}

/** `--name=value` flags by name; a bare `--name` has the value `''`. Later repeats are kept in order. */
export function flagValues(flags: string[], name: string): string[] {
  const out: string[] = [];
  for (const flag of flags) {
    const body = flag.slice(2);
    const eq = body.indexOf('=');
    const key = eq === -1 ? body : body.slice(0, eq);
    if (key === name) out.push(eq === -1 ? '' : body.slice(eq + 1));
  }
  return out;
}

/** The flag names used, without `--`. */
export function flagNames(flags: string[]): string[] {
  return flags.map((f) => {
    const body = f.slice(2);
    const eq = body.indexOf('=');
    return eq === -1 ? body : body.slice(0, eq);
  });
}
