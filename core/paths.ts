import os from 'node:os';
import path from 'node:path';

/** Where everything of one platform instance lives. Pure: computing paths touches no disk. */
export interface Paths {
  home: string;
  socket: string;
  configFile: string;
  hostKey: string;
  stateDir: string;
  /** The SQLite database: users, keys, tokens, app access, the audit log (core/db.ts). */
  database: string;
  /** The key that seals single sign-on round trips in the browser's cookie (auth/sso-transaction.ts). */
  ssoKey: string;
  appsDir: string;
  reposDir: string;
  cacheDir: string;
  buildsDir: string;
  mirrorDir: string;
  /** Runtimes unpacked once per version from the mirror, mounted read-only into builds (buildpacks/runtimes.ts). */
  runtimesDir: string;
  buildpacksDir: string;
  routeTable: string;
  logDir: string;
  tmpDir: string;
  runDir: string;
  /** The platform image registry's config, pid file, log and storage (docker-swarm). */
  registryDir: string;
  /** This instance's id (core/instance-id.ts), the label on every engine object it makes. */
  instanceIdFile: string;
  /** Apps whose engine objects predate instance ids (core/instance-id.ts). */
  legacyAppsFile: string;
}

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SLIPWAY_HOME) return path.resolve(env.SLIPWAY_HOME);
  return process.getuid?.() === 0 ? '/var/lib/slipway' : path.join(os.homedir(), '.slipway');
}

export function pathsFor(home: string): Paths {
  const p = (...parts: string[]) => path.join(home, ...parts);
  return {
    home,
    socket: p('slipway.sock'),
    configFile: p('config.json'),
    hostKey: p('ssh_host_ed25519_key'),
    stateDir: p('state'),
    database: p('state', 'slipway.db'),
    ssoKey: p('state', 'sso.key'),
    appsDir: p('state', 'apps'),
    reposDir: p('repos'),
    cacheDir: p('cache'),
    buildsDir: p('builds'),
    mirrorDir: p('mirror'),
    runtimesDir: p('runtimes'),
    buildpacksDir: p('buildpacks'),
    routeTable: p('routes.json'),
    logDir: p('logs'),
    tmpDir: p('tmp'),
    runDir: p('run'),
    registryDir: p('registry'),
    instanceIdFile: p('instance-id'),
    legacyAppsFile: p('state', 'unlabelled-apps.json'),
  };
}

export const repoPath = (paths: Paths, app: string): string => path.join(paths.reposDir, `${app}.git`);
export const appCachePath = (paths: Paths, app: string): string => path.join(paths.cacheDir, app);
