import { describe, expect, it } from 'vitest';
import { splitCommandLine } from '../../receiver/split.js';
import { throwsOneLine } from '../support/errors.js';

describe('splitCommandLine', () => {
  it('splits like a shell quotes, without running one', () => {
    expect(splitCommandLine(`git-receive-pack '/my-app.git'`)).toEqual(['git-receive-pack', '/my-app.git']);
    expect(splitCommandLine(`config:set app A="x y" B='$HOME' C=a\\ b`)).toEqual(['config:set', 'app', 'A=x y', 'B=$HOME', 'C=a b']);
    expect(splitCommandLine('config:set app K=$HOME')).toEqual(['config:set', 'app', 'K=$HOME']);
    expect(splitCommandLine('config:set app K=a*b')).toEqual(['config:set', 'app', 'K=a*b']);
  });

  it.each([
    'apps:list; rm -rf /',
    'apps:list | cat',
    'apps:list && id',
    'apps:list > /tmp/x',
    'apps:create `id`',
    'apps:create $(id)',
    'apps:list & id',
    'apps:list\nid',
    'apps:list\0',
  ])('refuses %j with a usage error', (line) => {
    expect(throwsOneLine(() => splitCommandLine(line)).exitCode).toBe(2);
  });

  it('refuses very long lines, counting bytes', () => {
    expect(() => splitCommandLine(`apps:create ${'a'.repeat(10_000)}`)).toThrow(/^command too long \(10012 bytes, at most 8192\)$/);
    // 3000 characters, 9000 bytes of UTF-8.
    expect(() => splitCommandLine(`config:set app K=${'€'.repeat(3000)}`)).toThrow(/too long \(9017 bytes/);
  });

  it.each([
    [`config:set app K='a b`, /unterminated ' quote/],
    [`config:set app K="a b`, /unterminated " quote/],
    [`config:set app K="a \\" b`, /unterminated " quote/],
    [`apps:create x\\`, /ends in a backslash/],
    [`config:set app "K=a\\`, /ends in a backslash/],
    [`'`, /unterminated ' quote/],
  ])('refuses %j: unterminated quoting', (line, message) => {
    const error = throwsOneLine(() => splitCommandLine(line));
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
  });

  it('still accepts closed quotes, escaped quotes and backslashes inside single quotes', () => {
    expect(splitCommandLine(`config:set app K='a \\ b'`)).toEqual(['config:set', 'app', 'K=a \\ b']);
    expect(splitCommandLine(`config:set app K="it's" L=\\'x`)).toEqual(['config:set', 'app', "K=it's", "L='x"]);
    expect(splitCommandLine(`config:set app K="a \\" b"`)).toEqual(['config:set', 'app', 'K=a " b']);
    expect(splitCommandLine(`config:set app K=\\\\`)).toEqual(['config:set', 'app', 'K=\\']);
  });
});
