/** Small output helpers shared by commands: aligned tables and one-document JSON. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * A value as POSIX sh reads it back: bare when it holds only characters sh leaves alone, else in
 * single quotes (a `'` becomes `'\''`). A multi-line or odd value then has one reading; `always`
 * quotes plain values too (`config --shell`). Pure.
 */
export function shellQuote(value: string, o: { always?: boolean } = {}): string {
  if (!o.always && /^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
