import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, hasBody, requestProblem, upstreamRequestHeaders } from '../../router/headers.js';
import { parseUpstream, rotate } from '../../router/upstream.js';

const client = { remoteAddress: '127.0.0.1', proto: 'http' as const, port: 8080 };

describe('upstreamRequestHeaders', () => {
  it('drops hop-by-hop headers, including those named in Connection', () => {
    const h = upstreamRequestHeaders(
      ['Host', 'a.localhost', 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Expect', '100-continue', 'Accept', '*/*'],
      client,
    );
    expect(h).toMatchObject({ host: 'a.localhost', accept: '*/*' });
    for (const name of ['connection', 'x-hop', 'keep-alive', 'te', 'expect', 'upgrade']) expect(h).not.toHaveProperty(name);
  });

  it('appends to X-Forwarded-For and sets the other X-Forwarded-* itself', () => {
    const h = upstreamRequestHeaders(
      ['Host', 'a.localhost:8080', 'X-Forwarded-For', '10.0.0.1', 'X-Forwarded-For', '10.0.0.2', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil'],
      { ...client, remoteAddress: '127.0.0.9' },
    );
    expect(h['x-forwarded-for']).toBe('10.0.0.1, 10.0.0.2, 127.0.0.9');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('a.localhost:8080');
    expect(h['x-forwarded-port']).toBe('8080');
  });

  it('keeps repeated end-to-end headers as separate values and a chunked body chunked', () => {
    const h = upstreamRequestHeaders(['Host', 'x', 'Cookie', 'a=1', 'Cookie', 'b=2', 'Transfer-Encoding', 'chunked'], client);
    expect(h.cookie).toEqual(['a=1', 'b=2']);
    expect(h['transfer-encoding']).toBe('chunked');
  });

  it('keeps Upgrade and Connection for an upgrade', () => {
    const raw = ['Host', 'x', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'];
    expect(upstreamRequestHeaders(raw, client, true)).toMatchObject({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' });
    expect(upstreamRequestHeaders(raw, client)).not.toHaveProperty('upgrade');
  });
});

describe('clientResponseHeaders', () => {
  it('drops framing and connection headers but keeps repeated Set-Cookie', () => {
    const h = clientResponseHeaders(['Transfer-Encoding', 'chunked', 'Connection', 'close', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/html']);
    expect(h).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/html' });
  });
});

describe('requestProblem', () => {
  it('accepts an ordinary request', () => {
    expect(requestProblem(['Host', 'a', 'Content-Length', '3'], '/x')).toBeNull();
    expect(requestProblem(['Host', 'a', 'Transfer-Encoding', 'Chunked'], '/x')).toBeNull();
  });
  it('refuses what Node lets through but a proxy must not', () => {
    expect(requestProblem(['Host', 'a', 'Host', 'b'], '/')).toMatch(/Host/);
    expect(requestProblem(['Host', 'a', 'Transfer-Encoding', 'identity'], '/')).toMatch(/Transfer-Encoding/);
    expect(requestProblem(['Host', 'a', 'Transfer-Encoding', 'chunked', 'Content-Length', '1'], '/')).toMatch(/Content-Length/);
    expect(requestProblem(['Host', 'a', 'Content-Length', '1', 'Content-Length', '1'], '/')).toMatch(/Content-Length/);
    expect(requestProblem(['Host', 'a'], 'http://b/x')).toMatch(/path/);
    expect(requestProblem(['Host', 'a'], '*')).toMatch(/path/);
  });
});

describe('hasBody', () => {
  it('tells replayable requests from ones with a body', () => {
    expect(hasBody({})).toBe(false);
    expect(hasBody({ 'content-length': '0' })).toBe(false);
    expect(hasBody({ 'content-length': '5' })).toBe(true);
    expect(hasBody({ 'transfer-encoding': 'chunked' })).toBe(true);
  });
});

describe('upstreams', () => {
  it('parses TCP, IPv6 and unix targets', () => {
    expect(parseUpstream('127.0.0.1:5000')).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(parseUpstream('[::1]:5000')).toEqual({ host: '::1', port: 5000 });
    expect(parseUpstream('unix:/run/git.sock')).toEqual({ socketPath: '/run/git.sock' });
  });
  it('rotates for round robin', () => {
    expect(rotate(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(rotate(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a']);
    expect(rotate(['a', 'b', 'c'], 5)).toEqual(['c', 'a', 'b']);
    expect(rotate([], 3)).toEqual([]);
  });
});
