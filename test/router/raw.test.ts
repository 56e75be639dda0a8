import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, startRouterFixture, startUpstream, type RouterFixture, type Upstream } from './helpers.js';

/**
 * Requests a proxy must refuse (request smuggling and header injection), written as raw bytes so
 * no client library tidies them up first. Each must get 400 and never reach the upstream.
 */
const H = 'Host: app.localhost\r\n';
const bad: Record<string, string> = {
  'CR inside a header value': `GET / HTTP/1.1\r\n${H}X-A: one\rtwo\r\n\r\n`,
  'LF inside a header value': `GET / HTTP/1.1\r\n${H}X-A: one\ntwo: three\r\n\r\n`,
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
  'bare LF line ends': `GET / HTTP/1.1\n${H.replace('\r', '')}\n`,
  'a CR inside the request target': `GET /a\rb HTTP/1.1\r\n${H}\r\n`,
  'a space inside a header name': `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`,
};

/**
 * Malformed bodies behind well-formed headers. The router streams bodies, so it may already have
 * connected to the upstream when the parser finds the fault; the upstream must still never see a
 * complete request.
 */
const badBodies: Record<string, string> = {
  'a hex prefix on a chunk size': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`,
  'a bare LF ending a chunk': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`,
  'a chunk longer than its size': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n`,
};

/** Hosts that merely contain the app's host "app.localhost": routed by the exact name, never found. */
const lookalikes = ['evilapp.localhost', 'app.localhost.evil.com', 'evil@app.localhost', 'app.localhost.', 'app.localhost/x', 'app.localhost evil'];

describe('malformed requests at the router', () => {
  let up: Upstream;
  let fx: RouterFixture;

  beforeAll(async () => {
    up = await startUpstream('app');
    fx = await startRouterFixture({ version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null });
  });
  afterAll(async () => {
    await fx.close();
    await up.close();
  });

  it('passes a well-formed raw request (the baseline for the cases below)', async () => {
    const reply = await rawExchange(fx.router.port, `POST /x HTTP/1.1\r\n${H}Content-Length: 3\r\nConnection: close\r\n\r\nabc`);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(up.hits).toHaveLength(1);
    up.hits.length = 0;
  });

  for (const host of lookalikes) {
    it(`answers 404 to Host ${JSON.stringify(host)}, upstream untouched`, async () => {
      const reply = await rawExchange(fx.router.port, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 404 /);
      expect(up.hits).toHaveLength(0);
    });
  }

  for (const [name, bytes] of Object.entries(bad)) {
    it(`answers 400 to ${name}, upstream untouched`, async () => {
      const reply = await rawExchange(fx.router.port, bytes);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      expect(up.hits).toHaveLength(0);
      expect(up.connections).toBeLessThanOrEqual(1);
    });
  }

  // After the header cases: these may open upstream connections, which those count.
  for (const [name, bytes] of Object.entries(badBodies)) {
    it(`answers 400 to ${name}, and no complete request reaches the upstream`, async () => {
      const reply = await rawExchange(fx.router.port, bytes);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      await new Promise((r) => setTimeout(r, 100));
      expect(up.hits.filter((h) => h.complete)).toHaveLength(0);
    });
  }
});
