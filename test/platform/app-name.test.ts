import { describe, expect, it } from 'vitest';
import { isValidAppName, parseAppName } from '../../core/app-name.js';

describe('app names', () => {
  it.each(['a', 'my-app', 'app2', 'a'.repeat(30), 'x-1-y'])('accepts %j', (name) => {
    expect(isValidAppName(name)).toBe(true);
    expect(parseAppName(name)).toBe(name);
  });

  it.each([
    '', 'A', 'MyApp', '1app', '-app', '.app', '_app', 'a'.repeat(31), 'a b', 'a\nb', 'a;b', 'a$b', 'a`b', 'a|b', 'a&b',
    'a/b', 'a:b', '..', '../etc', 'app.git', 'a.b', 'é', 'app\0',
  ])('refuses %j with one line', (name) => {
    expect(isValidAppName(name)).toBe(false);
    expect(() => parseAppName(name)).toThrow(/^invalid app name .*: use 1-30 characters/);
  });

  it('accepts the repo spellings git clients send, and still checks the name', () => {
    expect(parseAppName('/my-app.git', { forRepo: true })).toBe('my-app');
    expect(parseAppName('my-app', { forRepo: true })).toBe('my-app');
    expect(() => parseAppName('/../x.git', { forRepo: true })).toThrow(/invalid app name/);
    expect(() => parseAppName('/a/b.git', { forRepo: true })).toThrow(/invalid app name/);
    expect(() => parseAppName('--upload-pack=x', { forRepo: true })).toThrow(/invalid app name/);
  });
});
