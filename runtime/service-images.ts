import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import type { Logger } from '../core/log.js';
import type { ServiceKind } from '../core/service-store.js';
import type { Progress } from './host-setup.js';
import { buildRecipeImage, hostSuite, imageId, type DebianRecipe } from './stack.js';

/**
 * The images backing services (README "Services"), built here from Debian packages the same
 * way as the stack (runtime/stack.ts): nothing is pulled from a registry. Each server runs as its
 * package's own user, given a fixed uid (SERVICE_UID) before the package is installed, so the
 * platform can hand it the data directory on the host.
 */

export const SERVICE_REPO_PREFIX = 'slipway-platform/';
export const SERVICE_IMAGE_LABEL = 'slipway.service-image';
/** The uid and gid of `postgres` and `redis` inside their images; owns the data directory. */
export const SERVICE_UID = 999;
/** Where the data directory is mounted, and where dumps pass in and out (both on the host). */
export const DATA_MOUNT: Record<ServiceKind, string> = { postgres: '/var/lib/postgresql/data', redis: '/var/lib/redis' };
export const IO_MOUNT = '/var/lib/slipway-io';
export const SERVICE_PORT: Record<ServiceKind, number> = { postgres: 5432, redis: 6379 };

const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';

/**
 * First start: initdb with the service's password (from a file, never argv), password logins
 * from the network, a database named after the service. Every start: the server as PID 2 under
 * the engine's init. Local (socket) logins are `peer`: `docker exec` as postgres needs no password.
 * The socket lives in /tmp (PGHOST): the image's /run is root's and empty.
 */
const POSTGRES_ENTRY = `#!/bin/sh
set -eu
bin=${POSTGRES_BIN}
data=${DATA_MOUNT.postgres}
if [ ! -s "$data/PG_VERSION" ]; then
  umask 077
  pwfile=$(mktemp)
  printf '%s\\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" --pgdata="$data" --username=postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\\n' >> "$data/pg_hba.conf"
  printf "listen_addresses = '*'\\n" >> "$data/postgresql.conf"
  printf 'CREATE DATABASE "%s";\\n' "$POSTGRES_DB" | "$bin/postgres" --single -D "$data" postgres >/dev/null
fi
exec "$bin/postgres" -D "$data" -c unix_socket_directories=/tmp
`;

/**
 * Redis reads its password from a config file written at start (not argv, which `ps` shows).
 * Persistence is RDB: a snapshot within 10 s of a write and at shutdown, so `import` and
 * `restore` are a file swap (docs/security.md, README "Services"). `export` and `backup` read the
 * snapshot as a replica would (redis-cli --rdb): without a diskless-sync delay it starts at once
 * instead of waiting 5 s for other replicas that never come.
 */
const REDIS_ENTRY = `#!/bin/sh
set -eu
umask 077
conf=/tmp/redis.conf
cat > "$conf" <<EOF
bind * -::*
protected-mode no
port ${SERVICE_PORT.redis}
dir ${DATA_MOUNT.redis}
dbfilename dump.rdb
appendonly no
save 10 1
repl-diskless-sync-delay 0
requirepass $REDIS_PASSWORD
EOF
exec redis-server "$conf"
`;

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/**
 * Gives the package's user a fixed uid before the package would create it (its postinst then
 * finds the user and keeps it). Written into the files directly: `useradd` is not installed yet
 * when essential hooks run.
 */
function fixedUser(name: string, home: string): string[] {
  return [`echo '${name}:x:${SERVICE_UID}:${SERVICE_UID}::${home}:/bin/sh' >> "$1/etc/passwd" && echo '${name}:x:${SERVICE_UID}:' >> "$1/etc/group"`];
}

/** Writes an entry script into the chroot (base64 keeps the hook one quoting-free line). */
function entryScript(file: string, text: string): string {
  return `printf %s ${b64(text)} | base64 -d > "$1${file}" && chmod 755 "$1${file}"`;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const COMMON_CHANGES = ['ENV LANG=C.UTF-8', `USER ${SERVICE_UID}:${SERVICE_UID}`];
const CLEANUP = 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin';

export const SERVICE_RECIPES: Record<ServiceKind, DebianRecipe> = {
  postgres: {
    suite: hostSuite(),
    variant: 'minbase',
    packages: ['postgresql-15'],
    essentialHooks: fixedUser('postgres', '/var/lib/postgresql'),
    customizeHooks: [
      entryScript('/usr/local/bin/slipway-postgres', POSTGRES_ENTRY),
      // The package's cluster is never used: the service's lives in the mounted directory.
      'rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15',
      `mkdir -p "$1${DATA_MOUNT.postgres}" "$1${IO_MOUNT}" && chroot "$1" chown postgres:postgres ${DATA_MOUNT.postgres} ${IO_MOUNT}`,
      CLEANUP,
    ],
    changes: [...COMMON_CHANGES, `ENV PATH=${POSTGRES_BIN}:${PATH}`, 'ENV PGHOST=/tmp', 'CMD ["/usr/local/bin/slipway-postgres"]'],
  },
  redis: {
    suite: hostSuite(),
    variant: 'minbase',
    packages: ['redis-server'],
    essentialHooks: fixedUser('redis', '/var/lib/redis'),
    customizeHooks: [
      entryScript('/usr/local/bin/slipway-redis', REDIS_ENTRY),
      `mkdir -p "$1${DATA_MOUNT.redis}" "$1${IO_MOUNT}" && chroot "$1" chown redis:redis ${DATA_MOUNT.redis} ${IO_MOUNT}`,
      CLEANUP,
    ],
    changes: [...COMMON_CHANGES, `ENV PATH=${PATH}`, 'CMD ["/usr/local/bin/slipway-redis"]'],
  },
};

export function serviceImageHash(kind: ServiceKind): string {
  return createHash('sha256').update(JSON.stringify(SERVICE_RECIPES[kind])).digest('hex').slice(0, 12);
}

/** `slipway-platform/<kind>:<recipe hash>`: a recipe change is a new tag, never a stale image. */
export function serviceImageRef(kind: ServiceKind): string {
  return `${SERVICE_REPO_PREFIX}${kind}:${serviceImageHash(kind)}`;
}

/** Returns the kind's image ref, building it first when absent (with progress lines). */
export async function ensureServiceImage(docker: Dockerode, kind: ServiceKind, o: { progress: Progress; logger: Logger; tmpDir?: string }): Promise<string> {
  const ref = serviceImageRef(kind);
  if ((await imageId(docker, ref)) !== null) return ref;
  await buildRecipeImage(docker, { recipe: SERVICE_RECIPES[kind], repo: `${SERVICE_REPO_PREFIX}${kind}`, tag: serviceImageHash(kind), label: SERVICE_IMAGE_LABEL, what: `${kind} image` }, o);
  o.progress(`-----> ${kind} image ${ref} ready`);
  return ref;
}
