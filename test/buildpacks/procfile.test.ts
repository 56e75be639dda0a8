import { describe, expect, it } from 'vitest';
import { parseProcfile } from '../../buildpacks/procfile.js';
import { SlipwayError } from '../../core/errors.js';

const fails = (text: string, message: RegExp) => {
  let caught: unknown;
  try {
    parseProcfile(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SlipwayError);
  expect((caught as SlipwayError).code).toBe('E_PROCFILE');
  expect((caught as SlipwayError).message).toMatch(message);
  expect((caught as SlipwayError).message).not.toContain('\n');
};

describe('parseProcfile', () => {
  it('reads types and commands, skipping blanks and comments', () => {
    const text = '# processes\n\nweb: node server.js --port $PORT\nworker:   python3 worker.py  \nrelease: ./migrate: up\n';
    expect(parseProcfile(text)).toEqual({
      web: 'node server.js --port $PORT',
      worker: 'python3 worker.py',
      release: './migrate: up',
    });
  });

  it('accepts CRLF line ends', () => {
    expect(parseProcfile('web: a\r\nclock-2: b\r\n')).toEqual({ web: 'a', 'clock-2': 'b' });
  });

  it('returns a plain object even for a type named like an Object property', () => {
    const types = parseProcfile('constructor: x\n');
    expect(types.constructor).toBe('x');
  });

  it('refuses lines it cannot parse, naming the line', () => {
    fails('web: a\njust words\n', /^Procfile line 2: expected "<type>: <command>"$/);
  });

  it('refuses bad types', () => {
    fails('Web: a\n', /line 1: invalid process type "Web"/);
    fails('-web: a\n', /line 1: invalid process type/);
    fails('web-: a\n', /line 1: invalid process type/);
    fails('we b: a\n', /line 1: invalid process type/);
    fails('web.1: a\n', /line 1: invalid process type/);
    fails(`${'a'.repeat(64)}: a\n`, /line 1: invalid process type/);
    fails(': a\n', /line 1: invalid process type ""/);
    fails('$(id): a\n', /line 1: invalid process type/);
  });

  it('accepts a 63-character type', () => {
    expect(Object.keys(parseProcfile(`${'a'.repeat(63)}: x`))).toHaveLength(1);
  });

  it('refuses empty commands and duplicates', () => {
    fails('web:\n', /line 1: process type "web" has no command/);
    fails('web:   \n', /line 1: process type "web" has no command/);
    fails('web: a\nworker: b\nweb: c\n', /line 3: duplicate process type "web"/);
  });

  it('refuses NUL bytes and stray carriage returns', () => {
    fails('web: a\0b\n', /NUL byte/);
    fails('web: a\rworker: b\n', /line 1: stray carriage return/);
  });
});
