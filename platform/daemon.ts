import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { sourceRoot } from '../core/source-root.js';
import PQueue from 'p-queue';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/log.js';
import { repoPath, type Paths } from '../core/paths.js';
import { RouteBook } from '../router/route-book.js';
import type { RouteTable } from '../router/table.js';
import { SettingsStore } from '../core/settings.js';
import { Life } from './life.js';
import { AppStore } from '../core/store.js';
import type { Platform } from '../receiver/commands/index.js';
import { createGitHttpHandler, listenGitHttp } from '../receiver/git-http.js';
import { FailureLimiter } from '../receiver/http-auth.js';
import { loadSecret, signOutToken } from '../auth/csrf.js';
import { authFiles } from '../auth/files.js';
import { SshKeyStore } from '../receiver/ssh-keys.js';
import { openDb } from '../core/db.js';
import { UserStore } from '../core/users.js';
import { can } from '../core/access.js';
import { importLegacyKeysAndTokens } from '../core/legacy-state.js';
import { startSshServer } from '../receiver/ssh-server.js';
import { TokenStore } from '../receiver/tokens.js';
import { directoryCatalog } from '../hooks/choose-buildpacks.js';
import { BuildpackService } from '../services/buildpack-service.js';
import { BuildpackPlugins } from '../buildpacks/plugins.js';
import { buildpacksHome } from '../buildpacks/runner.js';
import { machineAddresses, UrlGuard } from '../buildpacks/url-guard.js';
import { PackumentCache } from '../buildpacks/mirror/fetch.js';
import { deployRevision, type DeployDeps } from '../hooks/deploy.js';
import { MirrorAdmin } from '../services/mirror-admin.js';
import { RuntimeUnpacks } from '../buildpacks/runtimes.js';
import { RuntimePreparer } from '../hooks/runtime-prep.js';
import { makeImageInChild, unpackInChild } from '../hooks/runtime-prep-process.js';
import { BuildHold } from '../hooks/build-hold.js';
import { nodeRuntimeHints } from '../hooks/prepare-mirror.js';
import { AppQueues } from '../hooks/push.js';
import { Operations } from '../services/operations.js';
import { ServiceManager } from '../services/service-manager.js';
import { ServiceStore } from '../core/service-store.js';
import { DockerLocalScheduler } from '../runtime/docker-local/scheduler.js';
import { DockerSwarmScheduler } from '../runtime/docker-swarm/scheduler.js';
import { ensureRegistry } from '../runtime/docker-swarm/registry.js';
import { AppSchedulers } from '../runtime/schedulers.js';
import { BranchGuard, refReader } from '../hooks/branch-guard.js';
import { migrateDeployBranches } from '../hooks/deploy-branch.js';
import { installAppFirewall } from './firewall.js';
import { IptablesFronts } from './fronts.js';
import { stackImageRef } from '../runtime/stack.js';
import { scopeToInstance } from '../runtime/instance-engine.js';
import { loadInstance } from '../core/instance-id.js';
import { adminRequestHandler, listenAdminSocket } from './admin-socket.js';
import { createPlatform } from './platform-service.js';
import { upstreamTurnover } from './router-process.js';
import { sshExecHandler, wantsPty } from './ssh-dispatch.js';
import { createWebHandler, listenWeb } from '../web/server.js';
import { webCommandDoor } from './web-door.js';

/** How long a new web process may take to answer on $PORT before a deploy or scale gives up. */
const HEALTH_TIMEOUT_MS = 60_000;
const root = sourceRoot(import.meta.url);
export const builtinBuildpacksDir = buildpacksHome();
export const gitHooksDir = path.join(root, 'hooks', 'git');
export const webAssetsDir = path.join(root, 'web', 'assets');

export interface DaemonOptions {
  config: Config;
  paths: Paths;
  docker: Dockerode;
  logger: Logger;
  /** Whether the router answers; the server knows, the daemon asks. */
  routerAlive: () => Promise<boolean>;
  /** Has the router serve a route table before it is written (nginx tested and reloaded). */
  serveRoutes?: (table: RouteTable) => Promise<void>;
}

export interface Daemon {
  platform: Platform;
  sshPort: number;
  close(): Promise<void>;
}

/**
 * The platform daemon: owns state, runs deploys, answers the local socket (CLI and git hook)
 * and the SSH receiver. It is the composition root: everything below receives its
 * dependencies from here.
 */
export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const { config, paths, logger } = o;
  for (const dir of [paths.stateDir, paths.appsDir, paths.reposDir, paths.cacheDir, paths.buildsDir, paths.mirrorDir, paths.buildpacksDir, paths.tmpDir, paths.runDir, paths.logDir]) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  // The mirror is read by build containers (as uid 1000, read-only): it must be traversable.
  await fs.chmod(paths.mirrorDir, 0o755);
  await fs.chmod(paths.home, 0o755);
  // Build scratch (config values as ENV_DIR files, owned by the build's uid 1000, which may be a
  // real host user) lives under tmp: only root may enter it, whatever an older version left.
  await fs.chmod(paths.tmpDir, 0o700);
  const apps = new AppStore(paths.appsDir);
  await apps.init();
  // Every engine call below sees only this instance's objects (docs/security.md).
  const instance = await loadInstance({ idFile: paths.instanceIdFile, legacyAppsFile: paths.legacyAppsFile, listApps: async () => (await apps.list()).map((a) => a.name) });
  const docker = scopeToInstance(o.docker, instance.id, { legacyApps: instance.legacyApps });
  // Users, keys, tokens, app access and the audit log (README, "Users and access"). Keys and
  // tokens from before users move in once, owned by the built-in admin.
  const db = openDb(paths.database);
  const users = new UserStore(db);
  const migrated = await importLegacyKeysAndTokens(db, paths.stateDir);
  if (migrated.keys + migrated.tokens > 0) logger.info(migrated, 'moved SSH keys and tokens into the database, owned by admin');
  const keys = new SshKeyStore(db);
  const tokens = new TokenStore(db);
  // Only public apps skip the sign-in check; a level change re-renders the router at once.
  // Each app's route is a stable front address the kernel forwards to its containers, so deploys
  // and scales do not reload nginx (docs/router.md, "Stable fronts"); rules from before a restart
  // keep serving until the first table written below replaces them.
  const fronts = new IptablesFronts({ instanceId: instance.id, file: path.join(paths.stateDir, 'fronts.json'), logger, turnoverMs: upstreamTurnover(config.drainMs) });
  const routes = new RouteBook(paths.routeTable, config.domain, o.serveRoutes, (app) => users.access(app).level !== 'public', fronts);
  const gitSocket = path.join(paths.runDir, 'git-http.sock');
  // The App Manager and Portal (docs/web.md): only nginx reaches this socket, behind its sign-in check.
  const webSocket = path.join(paths.runDir, 'web.sock');
  routes.presetEndpoints({ git: `unix:${gitSocket}`, web: `unix:${webSocket}` });
  users.watchLevels(() => {
    routes.refreshAccess().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'route table write failed'));
  });
  const queues = new AppQueues();
  // Runtimes unpacked and made into their shared image once, whoever asks first: a push, `mirror:add
  // node`, or the preparation at start (README "Server options", `prepareRuntimes`).
  // Both are done by a short-lived child process, so the daemon's own memory stays small.
  const runtimeDirs = { runtimesDir: paths.runtimesDir, mirrorDir: paths.mirrorDir };
  // Builds and preparations hold it together; `slipway prune` alone (README "Cleaning up").
  const hold = new BuildHold();
  const runtimes = new RuntimePreparer({
    docker,
    unpacks: new RuntimeUnpacks({ ...runtimeDirs, unpackWith: unpackInChild(runtimeDirs) }),
    makeImage: makeImageInChild({ docker, instanceId: instance.id }),
    stackImage: stackImageRef,
    mirrorDir: paths.mirrorDir,
    logger,
    hold,
  });
  const mirror = new MirrorAdmin({
    config,
    paths,
    docker,
    settings: new SettingsStore(path.join(paths.stateDir, 'settings.json')),
    serialize: (app, task) => queues.run(app, task),
    ...(config.prepareRuntimes ? { prepareNode: (r: { node: string; npm: string }, progress: (line: string) => void) => runtimes.prepare(nodeRuntimeHints(r), (line) => progress(`-----> ${line}`)) } : {}),
  });
  const readRef = refReader((app) => repoPath(paths, app));
  const branches = new BranchGuard(readRef);
  await migrateDeployBranches(apps, readRef, logger);
  // One view of the built-in and installed buildpacks, for deploys and for the buildpacks commands.
  const plugins = new BuildpackPlugins(builtinBuildpacksDir, paths.buildpacksDir);
  // The schedulers of this instance's app processes (runtime/scheduler.ts); each app's record
  // names its own, and everything else holds the one dispatcher.
  const timings = { logger, settleMs: config.healthSettleMs, healthTimeoutMs: HEALTH_TIMEOUT_MS, graceSeconds: config.stopGraceSeconds };
  let registry: Promise<string> | null = null;
  const scheduler = new AppSchedulers({
    findApp: (app) => apps.find(app),
    schedulers: [
      new DockerLocalScheduler({ docker, ...timings, drainMs: config.drainMs }),
      new DockerSwarmScheduler({
        docker,
        ...timings,
        // Started on first use: a platform whose apps all run on docker-local needs no registry.
        registry: () =>
          (registry ??= ensureRegistry({ dir: paths.registryDir, address: config.registryAddress, ...(config.registryPort ? { port: config.registryPort } : {}), logger, progress: (line) => logger.info({ line }, 'registry') }).catch((err: unknown) => {
            registry = null;
            throw err;
          })),
      }),
    ],
  });
  const deployDeps: DeployDeps = {
    docker,
    scheduler,
    config,
    paths,
    apps,
    routes,
    logger,
    stackImage: stackImageRef,
    buildpacks: directoryCatalog(plugins, new UrlGuard({ allow: config.buildpackUrlAllow, ownAddresses: () => machineAddresses(config.listen) })),
    buildQueue: new PQueue({ concurrency: config.buildConcurrency }),
    packuments: new PackumentCache(),
    mirrorUpstream: (kind) => mirror.upstream(kind),
    runtimes,
    hold,
  };

  // Before any app container starts: apps must never reach the host (docs/security.md).
  await installAppFirewall({ logger });

  const life = new Life({ docker, scheduler, apps, routes, paths, logger });
  await life.start((line) => logger.info({ line }, 'recovery'));
  // `services` is made just below; a rollback asks it only later, once it exists.
  const ops = new Operations({ docker, scheduler, schedulerNamed: (name) => scheduler.byName(name), config, apps, routes, queues, logger, keepLinks: (app, c) => services.configWithLinks(app, c) });
  // Postgres and Redis services; after a restart each is running and on its link networks again.
  const services = new ServiceManager({ docker, engine: o.docker, store: new ServiceStore(db), ops, apps, config, paths, logger });
  await services.reconcile((line) => logger.warn({ line }, 'service recovery'));

  let sshPort = config.sshPort;
  const platform = createPlatform({
    config,
    paths,
    logger,
    docker,
    scheduler,
    engine: o.docker,
    apps,
    keys,
    tokens,
    users,
    routes,
    queues,
    ops,
    services,
    mirror,
    buildpacks: new BuildpackService({ plugins, apps, docker, config, paths, stackImage: stackImageRef }),
    life,
    hold,
    runtimes,
    routerAlive: o.routerAlive,
    sshPort: () => sshPort,
  });

  const hookEnv = (app: string, pusher: string) => ({
    SLIPWAY_SOCKET: paths.socket,
    SLIPWAY_APP: app,
    SLIPWAY_PUSHER: pusher,
  });

  const deploy = (req: Parameters<typeof deployRevision>[1], io: Parameters<typeof deployRevision>[2]) => deployRevision(deployDeps, req, io);

  const socketServer = await listenAdminSocket(paths.socket, logger, adminRequestHandler(platform, { apps, queues, logger, deploy, branches }));
  const onExec = sshExecHandler({ config, paths, apps, platform, gitHooksDir, hookEnv });

  const ssh = await startSshServer({
    listen: config.listen,
    port: config.sshPort,
    hostKeyFile: paths.hostKey,
    keys,
    onExec,
    wantsPty,
    logger,
  });
  sshPort = ssh.port;
  const gitHttp = await listenGitHttp(gitSocket, createGitHttpHandler({
    findApp: (name) => apps.find(name),
    verifyToken: (secret) => tokens.verify(secret),
    decide: async (tokenName, app) => {
      const owner = tokens.userOf(tokenName);
      const actor = owner === null ? null : users.actor(owner);
      if (!actor) return 'denied';
      return can(actor, 'app:manage', (await apps.find(app)) ? users.access(app) : null);
    },
    onPushed: (tokenName, app, client) => {
      users.audit({ actor: tokens.userOf(tokenName) ?? tokenName, source: `http ${client} token=${tokenName}` }, 'git:push', app, 'over http');
    },
    limiter: new FailureLimiter(),
    repoDir: (app) => repoPath(paths, app),
    hooksDir: gitHooksDir,
    maxPushBytes: config.maxPushBytes,
    // Releases record who pushed: the token's user, not the token's name.
    hookEnv: (app, token) => hookEnv(app, tokens.userOf(token) ?? token),
    logger,
  }));
  // The sign-in server's secret (it starts first, `slipway server`), so each page's `Sign out` is one click.
  const authSecret = await loadSecret(authFiles(paths).secret);
  const web = await listenWeb(
    webSocket,
    await createWebHandler({ door: webCommandDoor(platform), logger, assetsDir: webAssetsDir, signOutToken: (session) => signOutToken(authSecret, session) }),
  );
  logger.info({ ssh: `${config.listen}:${ssh.port}`, socket: paths.socket }, 'daemon ready');
  // In the background, after everything serves: a push that needs the runtime meanwhile waits for
  // this preparation rather than starting its own.
  if (config.prepareRuntimes) void runtimes.prepareDefault(config.defaultNodeRange);

  return {
    platform,
    sshPort: ssh.port,
    async close() {
      // The route table keeps naming the sockets: once they are closed nginx's connection is
      // refused and it answers git and the web pages with a clear 503 (router/nginx-config.ts),
      // and the next daemon start renders the same config, so nginx is not reloaded for it.
      gitHttp.closeAllConnections();
      web.closeAllConnections();
      life.close();
      await Promise.all([ssh.close(), new Promise<void>((resolve) => socketServer.close(() => resolve())), new Promise<void>((resolve) => gitHttp.close(() => resolve())), new Promise<void>((resolve) => web.close(() => resolve()))]);
      await fs.rm(paths.socket, { force: true });
      db.close();
    },
  };
}
