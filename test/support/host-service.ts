import net from 'node:net';
import { run } from './platform.js';

/** A TCP service on every host address, as a careless host daemon would bind: apps must not reach it. */
export async function startHostService(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    // A probe that connects and goes away resets the socket: that is expected, not a failure.
    s.on('error', () => {});
    s.end('host-service\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Exit code of a TCP connect made from inside a container: 0 connected. */
export const connectFrom = async (container: string, host: string, port: number): Promise<number> =>
  (await run('docker', ['exec', container, 'bash', '-c', `timeout 4 bash -c '</dev/tcp/${host}/${port}'`])).code;

/** Whether this host itself connects to `host:port` (so a refusal from a container is the firewall's). */
export const hostConnects = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 4000 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
