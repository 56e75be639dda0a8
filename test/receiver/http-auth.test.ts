import { describe, expect, it } from 'vitest';
import { FailureLimiter, clientAddress, parseBasicAuth } from '../../receiver/http-auth.js';
import { FLUSH, pktLine, requestedCapabilities, serviceAnnouncement, sidebandError } from '../../receiver/pkt-line.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('parseBasicAuth', () => {
  it('reads user and password, the password keeping any colons', () => {
    expect(parseBasicAuth(`Basic ${b64('x:slw_abc')}`)).toEqual({ user: 'x', password: 'slw_abc' });
    expect(parseBasicAuth(`basic ${b64(':a:b')}`)).toEqual({ user: '', password: 'a:b' });
    expect(parseBasicAuth(`Basic ${b64('üser:pässword')}`)).toEqual({ user: 'üser', password: 'pässword' });
  });

  it.each([
    undefined,
    '',
    'Bearer abc',
    'Basic',
    'Basic !!!!',
    `Basic ${b64('no-colon')}`,
    `Basic ${b64('a:b\nc')}`,
    `Basic ${b64('a:b\0')}`,
    `Basic ${b64('a:b')}x`,
    `Basic ${'A'.repeat(2000)}`,
  ])('returns null for %j', (header) => {
    expect(parseBasicAuth(header)).toBeNull();
  });
});

describe('clientAddress', () => {
  it('takes the last hop, which the router appended', () => {
    expect(clientAddress('203.0.113.9, 127.0.0.1')).toBe('127.0.0.1');
    expect(clientAddress('1.1.1.1,2.2.2.2 , 192.0.2.7')).toBe('192.0.2.7');
    expect(clientAddress(['1.1.1.1', '192.0.2.8'])).toBe('192.0.2.8');
    expect(clientAddress(undefined)).toBe('local');
    expect(clientAddress(' , ')).toBe('local');
  });
});

describe('FailureLimiter', () => {
  it('blocks after maxFailures within the window, for blockMs, per client', () => {
    let now = 0;
    const limiter = new FailureLimiter({ maxFailures: 3, windowMs: 60_000, blockMs: 300_000 }, () => now);
    expect(limiter.fail('a')).toBe(false);
    expect(limiter.fail('a')).toBe(false);
    expect(limiter.blockedFor('a')).toBe(0);
    expect(limiter.fail('a')).toBe(true);
    expect(limiter.blockedFor('a')).toBe(300_000);
    expect(limiter.blockedFor('b')).toBe(0);
    now = 299_999;
    expect(limiter.blockedFor('a')).toBe(1);
    now = 300_000;
    expect(limiter.blockedFor('a')).toBe(0);
  });

  it('forgets failures once their window has passed', () => {
    let now = 0;
    const limiter = new FailureLimiter({ maxFailures: 3, windowMs: 60_000, blockMs: 1000 }, () => now);
    limiter.fail('a');
    limiter.fail('a');
    now = 60_000;
    expect(limiter.fail('a')).toBe(false);
    expect(limiter.fail('a')).toBe(false);
    expect(limiter.fail('a')).toBe(true);
  });

  it('tracks a bounded number of clients, dropping the oldest', () => {
    const limiter = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, blockMs: 60_000, maxClients: 2 }, () => 0);
    limiter.fail('a');
    limiter.fail('b');
    limiter.fail('c');
    expect(limiter.blockedFor('a')).toBe(0);
    expect(limiter.blockedFor('b')).toBeGreaterThan(0);
    expect(limiter.blockedFor('c')).toBeGreaterThan(0);
  });
});

describe('pkt-line', () => {
  it('frames payloads with a 4-hex-digit length that counts itself', () => {
    expect(pktLine('a\n').toString()).toBe('0006a\n');
    expect(pktLine('').toString()).toBe('0004');
    expect(pktLine(Buffer.alloc(65516)).subarray(0, 4).toString()).toBe('fff0');
    expect(() => pktLine(Buffer.alloc(65517))).toThrow(RangeError);
    expect(FLUSH).toBe('0000');
  });

  it('announces a service the way git-http-backend does', () => {
    expect(serviceAnnouncement('git-upload-pack').toString()).toBe('001e# service=git-upload-pack\n0000');
  });

  it('reads the capabilities of a push request from its first line', () => {
    const first = pktLine(`${'0'.repeat(40)} ${'a'.repeat(40)} refs/heads/main\0 report-status side-band-64k agent=git/2.39\n`);
    expect(requestedCapabilities(Buffer.concat([first, Buffer.from('0000PACK')]))).toEqual(['report-status', 'side-band-64k', 'agent=git/2.39']);
    expect(requestedCapabilities(first.subarray(0, 20))).toEqual([]);
    expect(requestedCapabilities(Buffer.from('zzzz'))).toEqual([]);
    expect(requestedCapabilities(pktLine('no caps here\n'))).toEqual([]);
  });

  it('frames a fatal side-band message on channel 3', () => {
    expect(sidebandError('no').toString('latin1')).toBe('0008\x03no\n0000');
  });
});
