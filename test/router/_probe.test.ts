import { it } from 'vitest';
import { rawExchange, startNginxFixture, startUpstream } from './helpers.js';
const H = 'Host: app.localhost\r\n';
const cases: Record<string, string> = {
  'CR inside': `GET / HTTP/1.1\r\n${H}X-A: one\rtwo\r\n\r\n`,
  'LF inside a header value': `GET / HTTP/1.1\r\n${H}X-A: one\ntwo: three\r\n\r\n`,
  'TE+CL': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
  'two CL': `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde`,
  'CL list': `POST / HTTP/1.1\r\n${H}Content-Length: 3, 5\r\n\r\nabcde`,
  'bare CR line end': `GET / HTTP/1.1\r${H}\r\n`,
  'bare CR ending header': `GET / HTTP/1.1\r\nHost: app.localhost\rX-A: b\r\n\r\n`,
  'space before colon': `GET / HTTP/1.1\r\nHost : app.localhost\r\n\r\n`,
  'space before colon other': `GET / HTTP/1.1\r\n${H}X-A : b\r\n\r\n`,
  'two TE': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'TE identity': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`,
  'obs fold': `GET / HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`,
  'two Host': `GET / HTTP/1.1\r\n${H}Host: other.localhost\r\n\r\n`,
  'absolute': `GET http://other.localhost/ HTTP/1.1\r\n${H}\r\n`,
  'no host': 'GET /app HTTP/1.1\r\n\r\n',
  'NUL': `GET / HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`,
  'TE chunked,chunked': `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`,
  'signed CL': `POST / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`,
  'bare LF': `GET / HTTP/1.1\n${H.replace('\r', '')}\n`,
  'CR in target': `GET /a\rb HTTP/1.1\r\n${H}\r\n`,
  'space in name': `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`,
  'host slash': `GET / HTTP/1.1\r\nHost: app.localhost/x\r\nConnection: close\r\n\r\n`,
  'host space': `GET / HTTP/1.1\r\nHost: app.localhost evil\r\nConnection: close\r\n\r\n`,
};
it('probe', async () => {
  const up = await startUpstream('app');
  const fx = await startNginxFixture({ version: 1, domain: 'localhost', apps: { app: { upstreams: [up.target] } }, git: null });
  for (const [n, b] of Object.entries(cases)) {
    const before = up.hits.length;
    const r = await rawExchange(fx.router.port, b, 1500);
    console.log(n.padEnd(28), JSON.stringify(r.split('\r\n')[0]), 'hits', up.hits.length - before);
  }
  await fx.close(); await up.close();
}, 120000);
