import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config.js';
import { openDb } from '../core/db.js';
import { oneLine } from '../core/errors.js';
import { writeFileAtomicText } from '../core/files.js';
import { createLogger } from '../core/log.js';
import { defaultHome } from '../core/paths.js';
import { UserStore } from '../core/users.js';
import { loadSecret } from './csrf.js';
import { authFiles } from './files.js';
import { ssoProviderLoader } from './oidc.js';
import { SignInLimiter } from './rate-limit.js';
import { createAuthHandler, listenAuth } from './server.js';
import { SessionStore } from './sessions.js';

/**
 * The sign-in server as its own process (README "Users and access"), started and supervised by
 * `slipway server` like the router, so sign-in and private apps keep working while the daemon
 * restarts:  node dist/auth/main.js [--home DIR]
 * It listens on $SLIPWAY_HOME/run/auth.sock and records its pid in run/auth.pid.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { home: { type: 'string' } }, strict: true });
  const home = values.home ? path.resolve(values.home) : defaultHome();
  const { config, paths } = await loadConfig(home);
  const files = authFiles(paths);
  const logger = createLogger(config.logLevel);
  const db = openDb(paths.database);
  const handler = createAuthHandler({
    users: new UserStore(db),
    sessions: new SessionStore(db, { idleMs: config.sessionIdleMinutes * 60_000, maxMs: config.sessionMaxHours * 3_600_000 }),
    limiter: new SignInLimiter(db),
    secret: await loadSecret(files.secret),
    domain: config.domain,
    cookieMaxAgeSeconds: config.sessionMaxHours * 3600,
    // Read per request: `auth:oidc` and `auth:oidc:off` apply without restarting this server.
    sso: ssoProviderLoader({ db, paths, logger }),
    logger,
  });
  const server = await listenAuth(files.socket, handler);
  await writeFileAtomicText(files.pid, `${process.pid}\n`, 0o644);
  logger.info({ socket: files.socket }, 'auth server ready');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'auth server stopping');
    server.closeIdleConnections();
    server.close(() => {
      // Only our own pid file: a newer server may have replaced it meanwhile.
      try {
        if (fs.readFileSync(files.pid, 'utf8').trim() === String(process.pid)) fs.rmSync(files.pid, { force: true });
      } catch {
        // already gone
      }
      db.close();
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`slipway-auth: ${oneLine(err)}\n`);
  process.exit(1);
});
