import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type ConfigInput } from '../core/config.js';
import { startDaemon } from './daemon.js';
import { installLastResort } from './last-resort.js';
import { createLogger } from '../core/log.js';
import { ensureAuthServer } from './auth-process.js';
import { ensureRouter, portAnswers } from './router-process.js';
import { ensureDocker } from '../runtime/host-setup.js';
import { ensureSwarm } from '../runtime/docker-swarm/swarm.js';
import { oneLine } from '../core/errors.js';
import { ensureStackImage } from '../runtime/stack.js';

/**
 * `slipway server`: sets up what is missing (Docker Engine, nginx, the stack image), then runs
 * the daemon and SSH receiver in this process and supervises the router (nginx, its own
 * processes) and the auth server from here. SIGTERM stops the daemon and SSH cleanly; app
 * containers, nginx and the auth server keep serving, and the next `slipway server` adopts them.
 */
export async function runServer(home: string, flags: ConfigInput): Promise<void> {
  const { config, paths } = await loadConfig(home, flags);
  fs.mkdirSync(paths.logDir, { recursive: true, mode: 0o700 });
  const logger = createLogger(config.logLevel, fs.createWriteStream(path.join(paths.logDir, 'slipway.log'), { flags: 'a', mode: 0o600 }));
  // A broken client connection that escaped its stream's own handling must not end the daemon.
  installLastResort({ logger, exit: (code) => process.exit(code) });
  const progress = (line: string) => process.stdout.write(`${line}\n`);

  progress(`-----> Slipway starting (SLIPWAY_HOME=${paths.home})`);
  const docker = await ensureDocker({ progress, logger });
  await ensureStackImage(docker, { progress, logger });
  // docker-local needs no swarm: an engine that cannot join one only loses docker-swarm.
  await ensureSwarm(docker, { advertiseAddr: config.swarmAdvertiseAddr, progress }).catch((err: unknown) => progress(` !     docker-swarm unavailable: ${oneLine(err)}`));
  // The auth server and the router first: they serve sign-in and the last route table while
  // the daemon adopts running apps.
  const auth = await ensureAuthServer(paths, logger, progress);
  const router = await ensureRouter(config, paths, logger, progress);
  const daemon = await startDaemon({
    config,
    paths,
    docker,
    logger,
    routerAlive: () => portAnswers(config.listen, config.httpPort),
    serveRoutes: (table) => router.serve(table),
  });
  progress(`-----> SSH receiver on ${config.listen}:${daemon.sshPort}`);
  progress(`-----> Ready. Next: slipway ssh-keys:add me ~/.ssh/id_ed25519.pub && slipway apps:create myapp`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    progress(`-----> Stopping (${signal}); apps and the router keep serving`);
    daemon
      .close()
      // The daemon's last route change (git: 503) reaches nginx before we stop watching.
      .then(() => router.settled())
      .then(() => {
        router.detach();
        auth.detach();
      })
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
