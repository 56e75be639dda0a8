import net from 'node:net';

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
