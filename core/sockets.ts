import fs from 'node:fs/promises';
import type net from 'node:net';

/**
 * Listens on a unix socket only this user may open (0600): the git-over-HTTP and auth servers,
 * reached by the router's workers, which run as the same user (docs/security.md). A socket file
 * left by an earlier run is replaced.
 */
export async function listenPrivateSocket(server: net.Server, socketPath: string): Promise<void> {
  await fs.rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o600);
}
