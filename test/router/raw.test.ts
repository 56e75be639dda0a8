import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, sleep, startNginxFixture, startUpstream, type NginxFixture, type Upstream } from './helpers.js';

/**
 * Requests a proxy must refuse (request smuggling and header injection, ../shared/bad-inputs.md),
 * written as raw bytes so no client library tidies them up first, sent to the router (nginx
 * rendered from the route table). Each must get 400 and never reach the app.
 */
const H = 'Host: app.localhost\r\n';
const bad: Record<string, string> = {
  'CR inside a header value': `GET / HTTP/1.1\r\n${H}X-A: one\rtwo\r\n\r\n`,
  'Transfer-Encoding and Content-Length': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
  'Content-Length and Transfer-Encoding (other order)': `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'two conflicting Content-Length': `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde`,
  'two equal Content-Length': `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
  'a Content-Length list': `POST / HTTP/1.1\r\n${H}Content-Length: 3, 5\r\n\r\nabcde`,
  'a bare CR as line end': `GET / HTTP/1.1\r${H}\r\n`,
  'a bare CR ending a header': `GET / HTTP/1.1\r\nHost: app.localhost\rX-A: b\r\n\r\n`,
  'a space before the colon': `GET / HTTP/1.1\r\nHost : app.localhost\r\n\r\n`,
  'a space before the colon (other header)': `GET / HTTP/1.1\r\n${H}X-A : b\r\n\r\n`,
  'two Transfer-Encoding': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'Transfer-Encoding other than chunked': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`,
  'obsolete line folding': `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`,
  'two Host headers': `GET / HTTP/1.1\r\n${H}Host: other.localhost\r\n\r\n`,
  'an absolute-form target': `GET http://other.localhost/ HTTP/1.1\r\n${H}\r\n`,
  'no Host in HTTP/1.1': 'GET /app HTTP/1.1\r\n\r\n',
  'a NUL in a header value': `GET / HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`,
  'chunked listed twice in one Transfer-Encoding': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`,
  'a coding before chunked': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
  'a signed Content-Length': `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`,
  'a negative Content-Length': `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`,
  'a hex Content-Length': `POST / HTTP/1.1\r\n${H}Content-Length: 0x3\r\n\r\nabc`,
  'a slash in Host': 'GET / HTTP/1.1\r\nHost: app.localhost/x\r\n\r\n',
  'a space in Host': 'GET / HTTP/1.1\r\nHost: app.localhost evil\r\n\r\n',
  'a CR inside the request target': `GET /a\rb HTTP/1.1\r\n${H}\r\n`,
  'a space inside a header name': `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`,
};

/**
 * Malformed bodies behind well-formed headers. nginx reads an app's request body whole before it
 * connects to the app, so the fault is found first and the app never sees any of it.
 */
const badBodies: Record<string, string> = {
  'a hex prefix on a chunk size': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`,
  'a chunk longer than its size': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n`,
};

/**
 * Hosts that merely contain the app's host "app.localhost": routed by the exact name, never found.
 * (A Host with a slash or a space is not a host at all: nginx refuses it, in `bad` above.)
 */
const lookalikes = ['evilapp.localhost', 'app.localhost.evil.com', 'evil@app.localhost', 'app.localhost.'];

describe('malformed requests at the router', () => {
  let up: Upstream;
  let fx: NginxFixture;
  /** Requests that reached the app since `mark()`. */
  let from = 0;
  const mark = (): void => {
    from = up.hits.length;
  };
  const reached = (): number => up.hits.length - from;

  beforeAll(async () => {
    up = await startUpstream('app');
    fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('passes a well-formed raw request (the baseline for the cases below)', async () => {
    const reply = await rawExchange(fx.router.port, `POST /x HTTP/1.1\r\n${H}Content-Length: 3\r\nConnection: close\r\n\r\nabc`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(up.hits).toHaveLength(1);
    expect(up.hits[0]!.complete).toBe(true);
  });

  for (const host of lookalikes) {
    it(`answers 404 to Host ${JSON.stringify(host)}, upstream untouched`, async () => {
      mark();
      const reply = await rawExchange(fx.router.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 404 /);
      expect(reply).toContain('app not found');
      expect(reached()).toBe(0);
    });
  }

  for (const [name, bytes] of Object.entries(bad)) {
    it(`answers 400 to ${name}, upstream untouched`, async () => {
      mark();
      const reply = await rawExchange(fx.router.port, bytes, 1500);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      await sleep(50);
      expect(reached()).toBe(0);
    });
  }

  for (const [name, bytes] of Object.entries(badBodies)) {
    it(`answers 400 to ${name}, and no complete request reaches the upstream`, async () => {
      mark();
      const reply = await rawExchange(fx.router.port, bytes, 1500);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      await sleep(100);
      expect(reached()).toBe(0);
    });
  }

  /**
   * RFC 9112 2.2 lets a recipient read a bare LF as a line end, and nginx does. That is safe at a
   * proxy as long as what it forwards is clean: the app gets the same headers the router read, in
   * CRLF lines, so the two can never disagree about where a header ends.
   */
  it('reads a bare LF as a line end and forwards clean CRLF headers, never a raw LF', async () => {
    mark();
    const reply = await rawExchange(fx.router.port, `GET / HTTP/1.1\r\n${H}X-A: one\ntwo: three\r\nConnection: close\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reached()).toBe(1);
    const hit = up.hits[from]!;
    expect(hit.headers['x-a']).toBe('one');
    expect(hit.headers.two).toBe('three');
  });

  it('reads bare LF line ends throughout a request the same way', async () => {
    mark();
    const reply = await rawExchange(fx.router.port, `GET /lf HTTP/1.1\n${H.replace('\r', '')}Connection: close\n\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reached()).toBe(1);
    expect(up.hits[from]!.url).toBe('/lf');
  });

  it('reads a chunked body with bare LF line ends whole, and hands the app a plain body', async () => {
    mark();
    const reply = await rawExchange(fx.router.port, `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\nabc\n0\n\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reached()).toBe(1);
    const hit = up.hits[from]!;
    // The app sees a body with a length, not the client's chunk framing.
    expect(hit.headers['content-length']).toBe('3');
    expect(hit.headers['transfer-encoding']).toBeUndefined();
  });
});
