import http from 'node:http';
import type net from 'node:net';

/**
 * A stand-in for nginx's sign-in check while the sign-in server is not merged: forwards a
 * browser's requests to the web server's unix socket, dropping any identity header the browser
 * sent and setting `X-Slipway-User` from the `test_identity` cookie (what a real sign-in makes
 * of the `slipway_session` cookie). Only `signIn` in test/web/browser.test.ts sets that cookie.
 */
export async function identityProxy(socketPath: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers['x-slipway-user'];
    delete headers['x-slipway-groups'];
    const user = /(?:^|;\s*)test_identity=([a-z][a-z0-9-]{0,29})(?:;|$)/.exec(req.headers.cookie ?? '')?.[1];
    if (user) headers['x-slipway-user'] = user;
    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '127.0.0.1';
    const upstream = http.request({ socketPath, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
