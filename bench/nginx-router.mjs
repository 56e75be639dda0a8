// Shared by the router benches: a free loopback port, the platform's own nginx (renderer and
// supervisor) on a route table in a temp directory, and the hand-written baseline it is held to.
import net from 'node:net';
import path from 'node:path';
import { createLogger } from '../dist/core/log.js';
import { TLS_SETTINGS } from '../dist/router/nginx-config.js';
import { superviseNginx } from '../dist/router/nginx-process.js';
import { writeRouteTable } from '../dist/router/table.js';

export const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Writes `table` under `dir` and runs the router on `port`; `extra` goes into its settings. */
export async function startRouter(dir, table, port, extra = {}, logger = createLogger('error')) {
  const routesFile = path.join(dir, 'routes.json');
  await writeRouteTable(routesFile, table);
  return superviseNginx({
    nginx: 'nginx',
    logger,
    routesFile,
    domain: 'localhost',
    settings: { prefix: path.join(dir, 'router'), listen: '127.0.0.1', httpPort: port, https: null, maxPushBytes: 1 << 30, ...extra, ...(process.getuid?.() === 0 ? { user: 'root' } : {}) },
  });
}

/**
 * The baseline: what an operator would write by hand (with nginx's default access log, as the
 * platform logs every request too), with the platform's TLS protocol settings: like for like.
 * `upstream` is "host:port"; `tls` adds a TLS listener; `top` goes before the events block.
 */
export function plainNginxConfig(dir, upstream, httpPort, tls = null, { workers = 'auto', top = '' } = {}) {
  return `worker_processes ${workers}; pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log;
${process.getuid?.() === 0 ? 'user root;' : ''}
${top}
events { worker_connections 4096; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  upstream app { server ${upstream}; keepalive 32; }
  server {
    listen 127.0.0.1:${httpPort};
${tls ? `    listen 127.0.0.1:${tls.port} ssl http2;
    ssl_certificate ${tls.cert}; ssl_certificate_key ${tls.key};
    ${TLS_SETTINGS.join(' ').replace('slipway_tls', 'plain_tls')}
` : ''}    location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_pass http://app; }
  }
}
`;
}
