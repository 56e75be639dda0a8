/**
 * Turns a raw byte stream of build output into whole lines, indented Heroku-style: the platform's
 * and buildpacks' `----->` headers stand out, everything else sits under them. Lines a buildpack
 * already indented keep their own indentation.
 */
export interface LineIndenter {
  write(chunk: Buffer | string): void;
  /** Emits a final unterminated line, if any. */
  flush(): void;
}

const INDENT = '       ';

export function indentLine(line: string): string {
  return line.startsWith('----->') || line.startsWith(INDENT) || line === '' ? line : `${INDENT}${line}`;
}

export function lineIndenter(emit: (text: string) => void): LineIndenter {
  let pending = '';
  const decoder = new TextDecoder('utf-8');
  return {
    write(chunk) {
      pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      const lines = pending.split('\n');
      pending = lines.pop()!;
      if (lines.length > 0) emit(lines.map((l) => `${indentLine(l.replace(/\r$/, ''))}\n`).join(''));
    },
    flush() {
      pending += decoder.decode();
      if (pending !== '') emit(`${indentLine(pending)}\n`);
      pending = '';
    },
  };
}

/** `-----> Title` header lines and seven-space indented detail, as Heroku and Dokku users know them. */
export const header = (text: string): string => `-----> ${text}\n`;
