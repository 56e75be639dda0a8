/** Where to connect for one route-table target: TCP "host:port" or "unix:/abs/path.sock". */
export type Upstream = { host: string; port: number } | { socketPath: string };

export function parseUpstream(target: string): Upstream {
  if (target.startsWith('unix:')) return { socketPath: target.slice('unix:'.length) };
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon);
  // "[::1]:8080": Node wants the bare address.
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(target.slice(colon + 1)) };
}

/** Round robin: the targets in the order to try them for the request numbered `turn`. */
export function rotate<T>(targets: readonly T[], turn: number): T[] {
  if (targets.length === 0) return [];
  const start = turn % targets.length;
  return [...targets.slice(start), ...targets.slice(0, start)];
}

/** Errors that mean the request never reached the upstream, so another one may take it. */
export function isConnectFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === 'ECONNREFUSED' ||
    code === 'ENOENT' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'EADDRNOTAVAIL' ||
    code === 'ETIMEDOUT'
  );
}

/** A kept-alive socket the upstream closed just as we reused it. */
export function isStaleSocketFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}
