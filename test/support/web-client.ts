import http from 'node:http';

export interface WebResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP request to the web server's unix socket, as nginx would send it: the identity header
 * only when `user` is given (nginx's sign-in check sets it, and strips any a client sent).
 */
export function webRequest(
  socketPath: string,
  o: { method?: string; path: string; user?: string; headers?: Record<string, string>; body?: string },
): Promise<WebResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Host: 'localhost:8080', ...(o.user === undefined ? {} : { 'X-Slipway-User': o.user }), ...o.headers };
    const req = http.request({ socketPath, method: o.method ?? 'GET', path: o.path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The CSRF token a page hands its script. */
export function csrfOf(page: string): string {
  const m = /<meta name="slipway-csrf" content="([^"]+)">/.exec(page);
  if (!m) throw new Error('the page has no CSRF token');
  return m[1]!;
}
