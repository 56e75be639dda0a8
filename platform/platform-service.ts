import fs from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { Config } from '../core/config.js';
import { SlipwayError, oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { appCachePath, repoPath, type Paths } from '../core/paths.js';
import type { AppStore } from '../core/store.js';
import type { RouteBook } from '../router/route-book.js';
import type { Platform, ProcessInfo, StatusInfo } from '../receiver/commands/index.js';
import { initBareRepo } from '../receiver/git.js';
import type { SshKeyStore } from '../receiver/ssh-keys.js';
import type { TokenStore } from '../receiver/tokens.js';
import type { UserStore } from '../core/users.js';
import type { BuildpackService } from '../services/buildpack-service.js';
import type { MirrorAdmin } from '../services/mirror-admin.js';
import type { Operations } from '../services/operations.js';
import type { AppQueues } from '../hooks/push.js';
import { removeAppImages, removeUnusedRuntimeImages } from '../runtime/images.js';
import type { BuildHold } from '../hooks/build-hold.js';
import { pruneInstance } from '../hooks/prune.js';
import type { RuntimePreparer } from '../hooks/runtime-prep.js';
import { assertAppNameFree } from '../runtime/instance-engine.js';
import type { Scheduler } from '../runtime/scheduler.js';
import { joinCommand, listNodes, swarmSummary } from '../runtime/docker-swarm/swarm.js';
import { registrySummary } from '../runtime/docker-swarm/registry.js';
import { ensureStackImage, stackImageRef } from '../runtime/stack.js';
import type { Life } from './life.js';
import type { ServiceManager } from '../services/service-manager.js';
import { discoverOidc } from '../auth/oidc.js';

export interface PlatformDeps {
  config: Config;
  paths: Paths;
  logger: Logger;
  /** This instance's view of the engine (docs/security.md): images and status; app processes go through `scheduler`. */
  docker: Dockerode;
  scheduler: Scheduler;
  /** The whole engine: the stack image is shared by every instance on it. */
  engine: Dockerode;
  apps: AppStore;
  keys: SshKeyStore;
  tokens: TokenStore;
  users: UserStore;
  routes: RouteBook;
  queues: AppQueues;
  ops: Operations;
  mirror: MirrorAdmin;
  buildpacks: BuildpackService;
  services: ServiceManager;
  life: Life;
  /** Builds on one side, removing what only builds use on the other (README "Cleaning up"). */
  hold: BuildHold;
  runtimes: RuntimePreparer;
  routerAlive: () => Promise<boolean>;
  /** Known once the SSH server listens (port 0 picks one). */
  sshPort: () => number;
}

/** The `Platform` the commands act on: app lifecycle, status and processes, over the services. */
export function createPlatform(d: PlatformDeps): Platform {
  const { config, logger, apps, keys, tokens, docker, scheduler, paths, routes, queues, mirror, life } = d;
  return {
    config,
    logger,
    apps,
    keys,
    ops: d.ops,
    mirror,
    tokens,
    users: d.users,
    buildpacks: d.buildpacks,
    services: d.services,
    async status(): Promise<StatusInfo> {
      const dockerVersion = await docker
        .version()
        .then((v) => `running (engine ${v.Version})`)
        .catch(() => 'not answering');
      const stack = stackImageRef();
      const stackPresent = await docker
        .getImage(stack)
        .inspect()
        .then(() => true)
        .catch(() => false);
      const list = await apps.list();
      const swarmApps = list.some((a) => a.scheduler === 'docker-swarm');
      return {
        daemon: 'running',
        docker: dockerVersion,
        router: (await d.routerAlive()) ? 'running' : 'stopped',
        ssh: `listening on ${config.listen}:${d.sshPort()}`,
        http: `${config.listen}:${config.httpPort}`,
        stackImage: stackPresent ? stack : `${stack} (missing: run \`slipway stack:build\`)`,
        apps: list.length,
        ...(swarmApps
          ? {
              swarm: await swarmSummary(d.engine).catch((err: unknown) => `not answering (${oneLine(err)})`),
              registry: await registrySummary(paths.registryDir),
            }
          : {}),
      };
    },
    async createApp(name) {
      await assertAppNameFree(docker, name);
      await apps.create(name);
      try {
        await fs.rm(repoPath(paths, name), { recursive: true, force: true });
        await initBareRepo(repoPath(paths, name));
      } catch (err) {
        await apps.remove(name);
        throw new SlipwayError('E_INTERNAL', `could not create the git repository for ${name}: ${oneLine(err)}`);
      }
      await routes.setApp(name, []);
    },
    async destroyApp(name, progress) {
      await queues.run(name, async () => {
        progress('-----> Removing containers');
        await scheduler.removeApp(name);
        const links = await d.services.appDestroyed(name);
        if (links.length > 0) progress(`-----> Unlinked ${links.map((l) => `${l.kind} ${l.name}`).join(', ')}`);
        await routes.removeApp(name);
        progress('-----> Removing images');
        await removeAppImages(docker, name);
        // Not from under a running build of another app (hooks/build-hold.ts); prune gets them later.
        if ((await d.hold.ifIdle(() => removeUnusedRuntimeImages(docker))) === null) progress('-----> Builds are running: unused runtime images stay until `slipway prune`');
        progress('-----> Removing repository, build cache and logs');
        for (const dir of [repoPath(paths, name), appCachePath(paths, name), path.join(paths.buildsDir, name)]) {
          await fs.rm(dir, { recursive: true, force: true });
        }
        await apps.remove(name);
      });
    },
    async processes(app): Promise<ProcessInfo[]> {
      // `ps --json` keeps its fields: hostPort is the port of the process's upstream.
      return (await scheduler.processes(app, { limits: true })).map((p) => ({
        name: p.name,
        type: p.type,
        index: p.index,
        state: p.state,
        release: p.release,
        hostPort: p.upstream === null ? null : Number(p.upstream.slice(p.upstream.lastIndexOf(':') + 1)),
        memory: p.memory ?? null,
        cpus: p.cpus ?? null,
      }));
    },
    routed: (app) => routes.table.apps[app]?.upstreams.length ?? 0,
    // The stack is shared by every instance on the engine (content-addressed, no instance label).
    // The swarm is the engine's, not this instance's: asked of the whole engine.
    nodes: () => listNodes(d.engine),
    joinCommand: () => joinCommand(d.engine),
    prune: (all, progress) =>
      d.hold.alone(
        async () => pruneInstance({ docker, runtimesDir: paths.runtimesDir, keep: all || !config.prepareRuntimes ? null : await d.runtimes.keptForPushes(config.defaultNodeRange), progress }),
        (builds) => progress(`waiting for ${builds} running build${builds === 1 ? '' : 's'} to end`),
      ),
    buildStack: (progress) => ensureStackImage(d.engine, { progress, force: true, logger }),
    life,
    sso: { check: async (s) => void (await discoverOidc(s)) },
  };
}
