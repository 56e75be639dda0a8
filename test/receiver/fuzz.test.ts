import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../../receiver/commands/index.js';
import { splitCommandLine } from '../../receiver/split.js';
import { SlipwayError, oneLine } from '../../core/errors.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

// Hostile command lines through the same path SSH takes (splitCommandLine, then runCommand) and
// hostile argv through the path the local CLI takes (runCommand directly), against the real
// stores in a temp dir. Every one must fail with one `slipway: ` line, exit 1 or 2, and leave
// no state behind. Seeded, so a failure replays: the seed is in the test name.
const SEED = Number(process.env.FUZZ_SEED ?? 20250101);
const ROUNDS = 400;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Each of these makes a name invalid for every kind of name (app, key, token), wherever it sits.
const POISON = [
  ';', '$', '`', '|', '&', '<', '>', '(', ')', '{', '}', '*', '?', '!', "'", '"', '\\', ' ', '\t', '#', '~', '=', ',', '%', '+',
  '\0', '\n', '\r', '\x1b[31m', 'é', '🙂', '\u202e', '\u0000', '\uffff',
  '..', '../', '/', ':', '$(id)', '${HOME}', '`id`', '; rm -rf /', '&& touch /tmp/slipway-fuzz-pwned',
];
const LEADING = ['-', '--', '.', '_', '-rf ', '--force=', '../', '/'];
const PLAIN = ['app', 'a', 'my-app', 'x1', 'web', 'ci'];

function hostileName(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  switch (Math.floor(r() * 6)) {
    case 0:
      return '';
    case 1:
      return pick(PLAIN) + 'a'.repeat(70 + Math.floor(r() * 9000)); // over-long for every kind
    case 2:
      return pick(LEADING) + pick(PLAIN);
    default: {
      const base = pick(PLAIN);
      const at = Math.floor(r() * (base.length + 1));
      return base.slice(0, at) + pick(POISON) + base.slice(at);
    }
  }
}

/** Quotes an argument the way a user might, or not at all. */
function quoteSomehow(arg: string, r: () => number): string {
  // Bare, these would be read as quoting and could turn a hostile name into a valid one.
  if (arg === '' || /[\\'"]/.test(arg)) return `'${arg.replaceAll("'", `'\\''`)}'`;
  switch (Math.floor(r() * 4)) {
    case 0:
      return `'${arg.replaceAll("'", `'\\''`)}'`;
    case 1:
      return `"${arg.replace(/["\\$`]/g, (c) => `\\${c}`)}"`;
    case 2:
      return arg.replace(/[^A-Za-z0-9_-]/g, (c) => `\\${c}`);
    default:
      return arg;
  }
}

function hostileArgv(r: () => number): string[] {
  const names = commands.map((c) => c.name).filter((n) => n !== 'help');
  const verb = r() < 0.1 ? hostileName(r) : names[Math.floor(r() * names.length)]!;
  const args = Array.from({ length: 1 + Math.floor(r() * 3) }, () => hostileName(r));
  if (r() < 0.2) args.push(`${hostileName(r)}=${hostileName(r)}`);
  return [verb, ...args];
}

const isHelp = (argv: string[]) => argv.some((a) => a === '--help' || a === '-h');

function expectCleanFailure(r: { code: number; out: string; err: string }, what: string): void {
  expect([1, 2], what).toContain(r.code);
  expect(r.err, what).toMatch(/^slipway: [^\n]*\n$/);
  expect(r.out, what).toBe('');
}

describe(`hostile command lines (seed ${SEED})`, () => {
  let mini: MiniPlatform;
  let before: string[];

  beforeAll(async () => {
    mini = await miniPlatform();
    before = await mini.files();
  });
  afterAll(() => mini?.close());

  it(`refuses ${ROUNDS} random lines over the SSH path`, async () => {
    const r = prng(SEED);
    let refusedBySplit = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const argv = hostileArgv(r);
      const line = argv.map((a) => quoteSomehow(a, r)).join(' ');
      const what = `line ${i}: ${JSON.stringify(line.slice(0, 200)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}`;
      let split: string[];
      try {
        split = splitCommandLine(line);
      } catch (err) {
        // What the SSH door prints for a line it cannot split.
        expect(err, what).toBeInstanceOf(SlipwayError);
        expectCleanFailure({ code: (err as SlipwayError).exitCode, out: '', err: `slipway: ${oneLine(err)}\n` }, what);
        refusedBySplit++;
        continue;
      }
      if (isHelp(split)) continue;
      expectCleanFailure(await mini.run(split), what);
    }
    // Both doors were exercised: some lines split, some did not.
    expect(refusedBySplit).toBeGreaterThan(0);
    expect(refusedBySplit).toBeLessThan(ROUNDS);
  });

  it(`refuses ${ROUNDS} random argv over the CLI path, as SSH and as the local admin`, async () => {
    const r = prng(SEED + 1);
    for (let i = 0; i < ROUNDS; i++) {
      const argv = hostileArgv(r);
      if (isHelp(argv)) continue;
      const what = `argv ${i}: ${JSON.stringify(argv).slice(0, 200)}`;
      expectCleanFailure(await mini.run(argv, i % 2 === 0 ? 'cli' : 'fuzz'), what);
    }
  });

  it('refuses the classic attacks by name', async () => {
    const lines = [
      'apps:create ../../etc',
      'apps:create -rf',
      "apps:create 'a b'",
      'apps:create app;id',
      'apps:create $(id)',
      'apps:create `id`',
      'apps:create "a\\nb"',
      'apps:create APP',
      'apps:create .hidden',
      'apps:create _x',
      "apps:create ''",
      `apps:create ${'a'.repeat(31)}`,
      'apps:info /etc/passwd',
      'apps:destroy .. --force',
      'tokens:create ../x',
      'tokens:revoke "*"',
      'ssh-keys:add ../k -',
      'ssh-keys:add k /etc/shadow',
      'ssh-keys:remove "-"',
      'git-receive-pack ../other',
      'sh -c id',
      'apps:list --json=1',
      'apps:list --format=json',
    ];
    for (const line of lines) {
      let argv: string[];
      try {
        argv = splitCommandLine(line);
      } catch (err) {
        expect((err as SlipwayError).exitCode, line).toBe(2);
        continue;
      }
      expectCleanFailure(await mini.run(argv), line);
    }
  });

  it('left no app, key, token or other state file behind, and hit no unexpected error', async () => {
    expect(await mini.files()).toEqual(before);
    expect(await mini.platform.apps.list()).toEqual([]);
    expect(mini.unexpected).toEqual([]);
  });
});
