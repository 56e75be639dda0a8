// Shared by the router benches: a free loopback port, and the platform's own nginx (renderer and
// supervisor) on a route table in a temp directory.
import net from 'node:net';
import path from 'node:path';
import { createLogger } from '../dist/core/log.js';
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
