import path from 'node:path';
import type { Paths } from '../core/paths.js';

/** Where the auth server's files live; the platform (its supervisor) and nginx use the same. */
export function authFiles(paths: Paths) {
  return {
    /** nginx reaches the server here; 0600, like the git socket beside it. */
    socket: path.join(paths.runDir, 'auth.sock'),
    pid: path.join(paths.runDir, 'auth.pid'),
    /** The CSRF secret (csrf.ts), 0600. */
    secret: path.join(paths.stateDir, 'auth-secret'),
    log: path.join(paths.logDir, 'auth.log'),
  };
}
