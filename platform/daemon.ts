import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import PQueue from 'p-queue';
import { parseAppName } from '../core/app-name.js';
import type { Config } from '../core/config.js';
import { SlipwayError, oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { appCachePath, repoPath, type Paths } from '../core/paths.js';
import { RouteBook } from '../router/route-book.js';
import { SettingsStore } from '../core/settings.js';
import { Life } from './life.js';
import { AppStore } from '../core/store.js';
import { decodeLines, encode, MAX_REQUEST_BYTES, parseRequest, type Frame, type Request } from '../core/wire.js';
import { commands, runCommand, type CommandIO, type Platform, type ProcessInfo, type StatusInfo } from '../receiver/commands/index.js';
import { initBareRepo, relayGitService, spawnGitService } from '../receiver/git.js';
import { createGitHttpHandler, listenGitHttp } from '../receiver/git-http.js';
import { FailureLimiter } from '../receiver/http-auth.js';
import { splitCommandLine } from '../receiver/split.js';
import { SshKeyStore } from '../receiver/ssh-keys.js';
import { startSshServer, type SshExec } from '../receiver/ssh-server.js';
import { TokenStore } from '../receiver/tokens.js';
import { directoryCatalog } from '../hooks/choose-buildpacks.js';
import { BuildpackService } from '../services/buildpack-service.js';
import { BuildpackPlugins } from '../buildpacks/plugins.js';
import { buildpacksHome } from '../buildpacks/runner.js';
import { machineAddresses, UrlGuard } from '../buildpacks/url-guard.js';
import { PackumentCache } from '../buildpacks/mirror/fetch.js';
import { deployRevision, type DeployDeps } from '../hooks/deploy.js';
import { MirrorAdmin } from '../services/mirror-admin.js';
import { AppQueues, handlePush } from '../hooks/push.js';
import { Operations } from '../services/operations.js';
import { BranchGuard, refReader } from '../hooks/branch-guard.js';
import { migrateDeployBranches } from '../hooks/deploy-branch.js';
import { LABELS, listAppContainers, removeApp } from '../runtime/containers.js';
import { removeAppImages } from '../runtime/images.js';
import { removeAppNetwork } from '../runtime/networks.js';
import { installAppFirewall } from './firewall.js';
import { ensureStackImage, stackImageRef } from '../runtime/stack.js';
import { assertAppNameFree, scopeToInstance } from '../runtime/instance-engine.js';
import { loadInstance } from '../core/instance-id.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repository's own folders, found relative to the compiled daemon (dist/platform). */
export const builtinBuildpacksDir = buildpacksHome();
export const gitHooksDir = path.join(root, 'hooks', 'git');

export interface DaemonOptions {
  config: Config;
  paths: Paths;
  docker: Dockerode;
  logger: Logger;
  /** Whether the router answers; the server knows, the daemon asks. */
  routerAlive: () => Promise<boolean>;
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
  const keys = new SshKeyStore(path.join(paths.stateDir, 'ssh-keys.json'));
  const tokens = new TokenStore(path.join(paths.stateDir, 'tokens.json'));
  const routes = new RouteBook(paths.routeTable, config.domain);
  const queues = new AppQueues();
  const mirror = new MirrorAdmin({ config, paths, docker, settings: new SettingsStore(path.join(paths.stateDir, 'settings.json')), serialize: (app, task) => queues.run(app, task) });
  const readRef = refReader((app) => repoPath(paths, app));
  const branches = new BranchGuard(readRef);
  await migrateDeployBranches(apps, readRef, logger);
  // One view of the built-in and installed buildpacks, for deploys and for the buildpacks commands.
  const plugins = new BuildpackPlugins(builtinBuildpacksDir, paths.buildpacksDir);
  const deployDeps: DeployDeps = {
    docker,
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
  };

  // Before any app container starts: apps must never reach the host (docs/security.md).
  await installAppFirewall({ logger });

  const life = new Life({ docker, apps, routes, paths, logger, graceSeconds: config.stopGraceSeconds });
  await life.start((line) => logger.info({ line }, 'recovery'));

  let sshPort = config.sshPort;
  const platform: Platform = {
    config,
    logger,
    apps,
    keys,
    ops: new Operations({ docker, config, apps, routes, queues, logger }),
    mirror,
    tokens,
    buildpacks: new BuildpackService({ plugins, apps, docker, config, paths, stackImage: stackImageRef }),
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
        router: (await o.routerAlive()) ? 'running' : 'stopped',
        ssh: `listening on ${config.listen}:${sshPort}`,
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
    buildStack: (progress) => ensureStackImage(o.docker, { progress, force: true, logger }),
    life,
  };

  const hookEnv = (app: string, pusher: string) => ({
    SLIPWAY_SOCKET: paths.socket,
    SLIPWAY_APP: app,
    SLIPWAY_PUSHER: pusher,
  });

  const deploy = (req: Parameters<typeof deployRevision>[1], io: Parameters<typeof deployRevision>[2]) => deployRevision(deployDeps, req, io);

  const socketServer = await listenSocket(paths.socket, logger, async (req, send, signal) => {
    if (req.op === 'command') {
      const io: CommandIO = {
        out: (d) => send({ t: 'out', d }),
        err: (d) => send({ t: 'err', d }),
        readStdin: async () => req.stdin ?? '',
        signal,
        actor: 'cli',
        local: true,
      };
      return runCommand(commands, req.argv, io, platform);
    }
    return handlePush({ apps, queues, logger, deploy, branches }, req, { out: (d) => send({ t: 'out', d }), signal });
  });

  const onExec = async (exec: SshExec): Promise<number> => {
    const write = (stream: NodeJS.WritableStream) => (d: string) => {
      if (!exec.signal.aborted) stream.write(d);
    };
    let argv: string[];
    try {
      argv = splitCommandLine(exec.command);
    } catch (err) {
      exec.stderr.write(`slipway: ${oneLine(err)}\n`);
      return err instanceof SlipwayError ? err.exitCode : 1;
    }
    const [verb, ...args] = argv;
    if (verb === 'git-receive-pack' || verb === 'git-upload-pack') {
      if (args.length !== 1) {
        exec.stderr.write(`slipway: usage: ${verb} '<app>'\n`);
        return 2;
      }
      let app: string;
      try {
        app = parseAppName(args[0]!, { forRepo: true });
        await apps.get(app);
      } catch (err) {
        exec.stderr.write(`slipway: ${oneLine(err)}\n`);
        return 1;
      }
      const child = spawnGitService({
        repoDir: repoPath(paths, app),
        service: verb === 'git-receive-pack' ? 'receive-pack' : 'upload-pack',
        hooksDir: gitHooksDir,
        maxPushBytes: config.maxPushBytes,
        hookEnv: hookEnv(app, exec.user),
      });
      const { code } = await relayGitService(child, { input: [exec.stdin], output: exec.stdout, errors: exec.stderr, signal: exec.signal });
      return code ?? 1;
    }
    const io: CommandIO = {
      out: write(exec.stdout),
      err: write(exec.stderr),
      readStdin: () => readAll(exec.stdin, 64 * 1024),
      readStdinBytes: (limit) => readAllBytes(exec.stdin, limit),
      signal: exec.signal,
      actor: exec.user,
      local: false,
    };
    return runCommand(commands, argv, io, platform);
  };

  const ssh = await startSshServer({
    listen: config.listen,
    port: config.sshPort,
    hostKeyFile: paths.hostKey,
    keys,
    onExec,
    logger,
  });
  sshPort = ssh.port;
  const gitSocket = path.join(paths.runDir, 'git-http.sock');
  const gitHttp = await listenGitHttp(gitSocket, createGitHttpHandler({
    findApp: (name) => apps.find(name),
    verifyToken: (secret) => tokens.verify(secret),
    limiter: new FailureLimiter(),
    repoDir: (app) => repoPath(paths, app),
    hooksDir: gitHooksDir,
    maxPushBytes: config.maxPushBytes,
    hookEnv,
    logger,
  }));
  await routes.setGit(`unix:${gitSocket}`);
  logger.info({ ssh: `${config.listen}:${ssh.port}`, socket: paths.socket }, 'daemon ready');

  return {
    platform,
    sshPort: ssh.port,
    async close() {
      // The router answers git requests with a clear 503 while no daemon serves them.
      await routes.setGit(null);
      gitHttp.closeAllConnections();
      life.close();
      await Promise.all([ssh.close(), new Promise<void>((resolve) => socketServer.close(() => resolve())), new Promise<void>((resolve) => gitHttp.close(() => resolve()))]);
      await fs.rm(paths.socket, { force: true });
    },
  };
}

function formatMemory(bytes: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

type Handler = (req: Request, send: (f: Frame) => void, signal: AbortSignal) => Promise<number>;

/** The admin socket: root-only, one request per connection, closing the connection cancels it. */
async function listenSocket(file: string, logger: Logger, handle: Handler): Promise<net.Server> {
  await clearStaleSocket(file);
  const server = net.createServer((socket) => {
    const controller = new AbortController();
    socket.on('close', () => controller.abort());
    socket.on('error', () => controller.abort());
    const send = (f: Frame) => {
      if (!socket.destroyed) socket.write(encode(f));
    };
    let bytes = 0;
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes > MAX_REQUEST_BYTES) socket.destroy();
    });
    (async () => {
      for await (const value of decodeLines(socket)) {
        const code = await handle(parseRequest(value), send, controller.signal);
        send({ t: 'exit', code });
        socket.end();
        return;
      }
    })().catch((err: unknown) => {
      logger.warn({ err: oneLine(err) }, 'bad request on the admin socket');
      send({ t: 'err', d: `slipway: ${oneLine(err)}\n` });
      send({ t: 'exit', code: 1 });
      socket.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  await fs.chmod(file, 0o600);
  return server;
}

async function clearStaleSocket(file: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(file);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  if (alive) throw new SlipwayError('E_DAEMON', `a Slipway daemon already answers on ${file}: stop it first, or use another SLIPWAY_HOME`);
  await fs.rm(file, { force: true });
}

// Events, not `for await`: async iteration destroys the stream at its end, and this one is the
// SSH channel the answer still has to go out on.
function readAllBytes(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit) reject(new SlipwayError('E_TOO_LARGE', `standard input is larger than ${limit} bytes`));
      else chunks.push(d);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.length > limit) reject(new SlipwayError('E_USAGE', 'standard input too large', { exitCode: 2 }));
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}
