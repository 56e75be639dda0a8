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
import type { BuildpackService } from '../services/buildpack-service.js';
import type { MirrorAdmin } from '../services/mirror-admin.js';
import type { Operations } from '../services/operations.js';
import type { AppQueues } from '../hooks/push.js';
import { LABELS, listAppContainers, removeApp } from '../runtime/containers.js';
import { removeAppImages } from '../runtime/images.js';
import { assertAppNameFree } from '../runtime/instance-engine.js';
import { removeAppNetwork } from '../runtime/networks.js';
import { ensureStackImage, stackImageRef } from '../runtime/stack.js';
import type { Life } from './life.js';

export interface PlatformDeps {
  config: Config;
  paths: Paths;
  logger: Logger;
  /** This instance's view of the engine (docs/security.md). */
  docker: Dockerode;
  /** The whole engine: the stack image is shared by every instance on it. */
  engine: Dockerode;
  apps: AppStore;
  keys: SshKeyStore;
  tokens: TokenStore;
  routes: RouteBook;
  queues: AppQueues;
  ops: Operations;
  mirror: MirrorAdmin;
  buildpacks: BuildpackService;
  life: Life;
  routerAlive: () => Promise<boolean>;
  /** Known once the SSH server listens (port 0 picks one). */
  sshPort: () => number;
}

/** The `Platform` the commands act on: app lifecycle, status and processes, over the services. */
export function createPlatform(d: PlatformDeps): Platform {
  const { config, logger, apps, keys, tokens, docker, paths, routes, queues, mirror, life } = d;
  return {
    config,
    logger,
    apps,
    keys,
    ops: d.ops,
    mirror,
    tokens,
    buildpacks: d.buildpacks,
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
      return {
        daemon: 'running',
        docker: dockerVersion,
        router: (await d.routerAlive()) ? 'running' : 'stopped',
        ssh: `listening on ${config.listen}:${d.sshPort()}`,
        http: `${config.listen}:${config.httpPort}`,
        stackImage: stackPresent ? stack : `${stack} (missing: run \`slipway stack:build\`)`,
        apps: (await apps.list()).length,
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
        await removeApp(docker, name);
        await routes.removeApp(name);
        await removeAppNetwork(docker, name);
        progress('-----> Removing images');
        await removeAppImages(docker, name);
        progress('-----> Removing repository, build cache and logs');
        for (const dir of [repoPath(paths, name), appCachePath(paths, name), path.join(paths.buildsDir, name)]) {
          await fs.rm(dir, { recursive: true, force: true });
        }
        await apps.remove(name);
      });
    },
    async processes(app): Promise<ProcessInfo[]> {
      const list = await listAppContainers(docker, app);
      const limits = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect().then((i) => i.HostConfig, () => null)));
      return list
        .map((c, i) => ({
          name: (c.Names[0] ?? '').replace(/^\//, ''),
          type: c.Labels[LABELS.type] ?? '?',
          index: Number(c.Labels[LABELS.index] ?? 0),
          state: c.State,
          release: c.Labels[LABELS.release] ? Number(c.Labels[LABELS.release]) : null,
          hostPort: c.Ports.find((p) => p.PrivatePort === 5000 && p.PublicPort)?.PublicPort ?? null,
          memory: limits[i]?.Memory ? formatMemory(limits[i].Memory) : null,
          cpus: limits[i]?.NanoCpus ? limits[i].NanoCpus / 1e9 : null,
        }))
        .sort((a, b) => a.type.localeCompare(b.type) || a.index - b.index);
    },
    // The stack is shared by every instance on the engine (content-addressed, no instance label).
    buildStack: (progress) => ensureStackImage(d.engine, { progress, force: true, logger }),
    life,
  };
}

function formatMemory(bytes: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}
