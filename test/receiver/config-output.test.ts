import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellQuote } from '../../receiver/commands/output.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

const execFileP = promisify(execFile);

// Values that read two ways when printed raw: a newline that looks like a second variable, quotes,
// substitutions, trailing spaces and an empty value.
const config: Record<string, string> = {
  PLAIN: 'postgres://u@db:5432/app',
  MULTI: 'line one\nFAKE=injected',
  QUOTE: "it's \"here\"",
  SUBST: '$(id) `id` $HOME;|&',
  SPACES: '  padded  ',
  EMPTY: '',
  KEY: '-----BEGIN KEY-----\nabc\n-----END KEY-----\n',
};

/** What sh makes of `text` followed by printing each variable's value, NUL-separated. */
async function readBack(text: string, keys: string[]): Promise<Record<string, string>> {
  const script = `${text}\n${keys.map((k) => `printf '%s\\0' "$${k}"`).join('\n')}\n`;
  const { stdout } = await execFileP('sh', ['-c', script], { env: {} });
  const values = stdout.split('\0').slice(0, -1);
  return Object.fromEntries(keys.map((k, i) => [k, values[i]!]));
}

describe('config output', () => {
  let mini: MiniPlatform;
  beforeAll(async () => {
    mini = await miniPlatform();
    await mini.platform.apps.create('shop');
    await mini.platform.apps.update('shop', (a) => {
      a.config = { ...config };
    });
  });
  afterAll(() => mini?.close());

  it('quotes only what needs it, the POSIX way', () => {
    expect(shellQuote('abc-1.2/x:y@z')).toBe('abc-1.2/x:y@z');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
    expect(shellQuote('a\nb')).toBe("'a\nb'");
    expect(shellQuote('plain', { always: true })).toBe("'plain'");
  });

  it('prints KEY=VALUE lines that sh reads back to exactly the stored values', async () => {
    const r = await mini.run(['config', 'shop']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('PLAIN=postgres://u@db:5432/app\n');
    expect(r.out).toContain("MULTI='line one\nFAKE=injected'\n");
    // Read raw, the second line of MULTI was a variable FAKE; read as sh does, there is none.
    expect(await readBack(r.out, [...Object.keys(config), 'FAKE'])).toEqual({ ...config, FAKE: '' });
  });

  it('prints export lines with --shell, every value quoted', async () => {
    const r = await mini.run(['config', 'shop', '--shell']);
    expect(r.code).toBe(0);
    expect(r.out).toContain("export PLAIN='postgres://u@db:5432/app'\n");
    expect(r.out.split('\n').filter((l) => l.startsWith('export ')).length).toBe(Object.keys(config).length);
    expect(await readBack(r.out, Object.keys(config))).toEqual(config);
    const both = await mini.run(['config', 'shop', '--shell', '--json']);
    expect(both).toMatchObject({ code: 2, err: 'slipway: config: choose --json or --shell, not both\n' });
  });

  it('left nothing else behind', async () => {
    expect(mini.unexpected).toEqual([]);
    expect((await mini.platform.apps.get('shop')).config).toEqual(config);
  });
});
