import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, repoRoot, run, uniqueApp } from '../support/platform.js';
import { stopWithServices } from '../support/services.js';

const docker = async (args: string[]): Promise<string> => {
  const r = await run('docker', args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Polls `probe` until it gives a value; bounded by attempts, not by a timed assertion. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, attempts = 240, everyMs = 500): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}

// Issue 13's end-to-end tests: the fixture app (fixtures/apps/node-services) uses the real `pg`
// and `redis` packages, installed from the test mirror during its build (scripts/fill-test-mirror.mjs
// reads its lockfile), and counts hits in both services.
describe('services: a real app counting in postgres and redis', () => {
  let platform: TestPlatform;
  let wc = '';
  const app = uniqueApp('svc-count');
  const pg = uniqueApp('cpg');
  const rd = uniqueApp('crd');
  const passwords: string[] = [];
  /** Every text a credential must never show in: push output, and the daemon's log over its restarts. */
  const pushOutputs: string[] = [];
  const serverLogs: string[] = [];
  let backupsMount = '';

  const hit = () =>
    until('the app to count', async () => {
      const r = await platform.fetchApp(app, { by: 'host', path: '/hit' });
      const m = /^pg=(\d+) redis=(\d+)$/.exec(r.body.trim());
      return r.status === 200 && m ? { pg: Number(m[1]), redis: Number(m[2]) } : undefined;
    });
  const push = async () => {
    const r = await platform.push(wc, platform.sshRemote(app));
    pushOutputs.push(r.stdout + r.stderr);
    return r;
  };
  const killDaemon = async () => {
    await platform.stopDaemon('SIGKILL');
    serverLogs.push(platform.serverLog);
  };
  const restartDaemon = async () => {
    serverLogs.push(platform.serverLog);
    await platform.restartDaemon();
  };
  const psql = async (sql: string) => docker(['exec', `slipway.postgres.${pg}`, 'psql', '-v', 'ON_ERROR_STOP=1', '-tA', '-d', pg, '-c', sql]);
  const redisCli = async (args: string[]) => docker(['exec', `slipway.redis.${rd}`, 'sh', '-c', 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli "$@"', 'sh', ...args]);
  const serviceDir = (kind: string, name: string, sub: string) => path.join(platform.home, 'services', kind, name, sub);
  const backupIds = async (kind: string, name: string) => (JSON.parse((await platform.cli([`${kind}:backups`, name, '--json'])).stdout) as { id: string }[]).map((b) => b.id);
  const healthy = (kind: string, name: string) =>
    until(`${kind} ${name} to be healthy`, async () => ((await docker(['inspect', '-f', '{{.State.Health.Status}}', `slipway.${kind}.${name}`])) === 'healthy' ? true : undefined));

  beforeAll(async () => {
    platform = await TestPlatform.start();
    await platform.createApp(app);
    // Both at once: each waits for its server's first health check.
    const services = [['postgres', pg], ['redis', rd]] as const;
    for (const created of await Promise.all(services.map(([kind, name]) => platform.cli([`${kind}:create`, name])))) {
      expect(created.code, created.stderr).toBe(0);
      pushOutputs.push(created.stdout + created.stderr);
    }
    for (const [kind, name] of services) {
      const linked = await platform.cli([`${kind}:link`, name, app]);
      expect(linked.code, linked.stderr).toBe(0);
      pushOutputs.push(linked.stdout + linked.stderr);
      const url = JSON.parse((await platform.cli([`${kind}:info`, name, '--json', '--reveal'])).stdout).url as string;
      passwords.push(/:([0-9a-f]{48})@/.exec(url)![1]!);
    }
    wc = await platform.workingCopy('node-services');
    const pushed = await push();
    expect(pushed.code, pushed.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    if (backupsMount) await run('umount', [backupsMount]);
    await stopWithServices(platform, [['postgres', pg], ['redis', rd]], [app]);
  }, 300_000);

  it('installs pg and redis from the mirror and counts in both, over a redeploy, a daemon restart and service restarts', async () => {
    // The build installed the real packages from the platform's mirror (no other registry is configured).
    expect(pushOutputs.at(-1)).toMatch(/added \d+ packages/);
    expect(await hit()).toEqual({ pg: 1, redis: 1 });
    expect(await hit()).toEqual({ pg: 2, redis: 2 });

    // (a) A redeploy: a new release, new containers, the same links.
    await fs.appendFile(path.join(wc, 'server.js'), '// redeploy\n');
    await platform.commitAll(wc, 'redeploy');
    const again = await push();
    expect(again.code, again.stderr).toBe(0);
    expect(await hit()).toEqual({ pg: 3, redis: 3 });

    // (b) A daemon restart.
    await restartDaemon();
    expect(await hit()).toEqual({ pg: 4, redis: 4 });

    // (c) Both service containers restarted (Redis saves its snapshot on the way down).
    for (const kind of ['postgres', 'redis']) await docker(['restart', `slipway.${kind}.${kind === 'postgres' ? pg : rd}`]);
    expect(await hit()).toEqual({ pg: 5, redis: 5 });

    // (d) The containers die (their init killed from the host: a crash, not a manual stop) and
    // their restart policy brings them back; the linked app keeps working. Postgres loses nothing
    // (its WAL); Redis loses what it wrote since its last snapshot (README "Services").
    const pgRestarts = Number(await docker(['inspect', '-f', '{{.RestartCount}}', `slipway.postgres.${pg}`]));
    process.kill(Number(await docker(['inspect', '-f', '{{.State.Pid}}', `slipway.postgres.${pg}`])), 'SIGKILL');
    await until('postgres to be restarted', async () => (Number(await docker(['inspect', '-f', '{{.RestartCount}}', `slipway.postgres.${pg}`])) > pgRestarts ? true : undefined));
    await healthy('postgres', pg);
    expect(await hit()).toEqual({ pg: 6, redis: 6 });
    // Redis writes its snapshot (as it does within 10 s of a write: README), then dies: nothing lost.
    expect(await redisCli(['SAVE'])).toBe('OK');
    const rdRestarts = Number(await docker(['inspect', '-f', '{{.RestartCount}}', `slipway.redis.${rd}`]));
    process.kill(Number(await docker(['inspect', '-f', '{{.State.Pid}}', `slipway.redis.${rd}`])), 'SIGKILL');
    await until('redis to be restarted', async () => (Number(await docker(['inspect', '-f', '{{.RestartCount}}', `slipway.redis.${rd}`])) > rdRestarts ? true : undefined));
    await healthy('redis', rd);
    expect(await hit()).toEqual({ pg: 7, redis: 7 });
    expect((await platform.cli(['ps', app])).stdout).toContain(`service redis ${rd} healthy`);
  }, 600_000);

  it('a full disk during a backup: one clean line, the older backups kept, no partial file', async () => {
    // The service's backup directory on a tiny filesystem of its own (root: a real tmpfs).
    backupsMount = path.join(platform.home, 'backups', 'postgres', pg);
    await fs.mkdir(backupsMount, { recursive: true });
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=128k,mode=0700', 'tmpfs', backupsMount]);
    expect(mounted.code, mounted.stderr).toBe(0);
    const first = await platform.cli(['postgres:backup', pg]);
    expect(first.code, first.stderr).toBe(0);
    const kept = await backupIds('postgres', pg);
    expect(kept).toHaveLength(1);
    // Fill what is left.
    const filler = await fs.open(path.join(backupsMount, 'filler'), 'w');
    const block = Buffer.alloc(4096, 1);
    const full = await (async () => {
      for (let i = 0; i < 128; i++) {
        try {
          await filler.write(block);
        } catch (err) {
          return (err as NodeJS.ErrnoException).code;
        }
      }
      return 'never full';
    })();
    await filler.close();
    expect(full).toBe('ENOSPC');

    const failed = await platform.cli(['postgres:backup', pg]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(failed.stderr).toMatch(/^slipway: writing backup .* failed \(ENOSPC\): free disk space and retry; older backups are kept$/m);
    expect(await backupIds('postgres', pg)).toEqual(kept);
    expect((await fs.readdir(backupsMount)).sort()).toEqual([`${kept[0]}.dump`, 'filler']);
    // The io directory keeps no dump either.
    expect(await fs.readdir(serviceDir('postgres', pg, 'io'))).toEqual([]);

    // With room again, backups work.
    await fs.rm(path.join(backupsMount, 'filler'));
    const next = await platform.cli(['postgres:backup', pg]);
    expect(next.code, next.stderr).toBe(0);
    expect(await backupIds('postgres', pg)).toHaveLength(2);
    expect((await run('umount', [backupsMount])).code).toBe(0);
    backupsMount = '';
  }, 300_000);

  it('a daemon killed during a backup or an import loses nothing and lists no half backup', async () => {
    // One whole backup first: a killed one must not add to or replace it.
    const made = await platform.cli(['postgres:backup', pg]);
    expect(made.code, made.stderr).toBe(0);
    // Enough data that pg_dump takes a while: the kill lands mid-dump.
    await psql("CREATE TABLE filler AS SELECT i, md5(i::text) || md5((i * 7)::text) AS t FROM generate_series(1, 400000) i");
    const pgBefore = await psql('SELECT n FROM hits WHERE id = 1');
    const fillerSum = await psql('SELECT sum(i), count(DISTINCT t) FROM filler');
    const pgBackups = await backupIds('postgres', pg);

    // (1) Mid-backup: killed once the dump has begun.
    const io = serviceDir('postgres', pg, 'io');
    const backingUp = platform.cli(['postgres:backup', pg]);
    await until('the dump to begin', async () => ((await fs.readdir(io)).some((f) => f.startsWith('export-')) ? true : undefined), 3000, 10);
    await killDaemon();
    expect((await backingUp).code).not.toBe(0);
    await restartDaemon();
    expect(await backupIds('postgres', pg)).toEqual(pgBackups);
    expect(await fs.readdir(path.join(platform.home, 'backups', 'postgres', pg)).catch(() => [])).toEqual(pgBackups.map((id) => `${id}.dump`));
    expect(await fs.readdir(io)).toEqual([]);
    expect(await psql('SELECT n FROM hits WHERE id = 1')).toBe(pgBefore);
    expect(await psql('SELECT sum(i), count(DISTINCT t) FROM filler')).toBe(fillerSum);

    // (2) Mid-import (the dump half uploaded): the old data stays, the partial upload goes.
    const dumpFile = path.join(platform.home, 'pg.dump');
    const exported = await cliToFile(platform, ['postgres:export', pg], dumpFile);
    expect(exported.code, exported.stderr).toBe(0);
    expect((await hit()).pg).toBe(Number(pgBefore) + 1);
    const dump = await fs.readFile(dumpFile);
    const importing = spawn(path.join(repoRoot, 'slipway'), ['postgres:import', pg], { env: platform.env, stdio: ['pipe', 'ignore', 'ignore'] });
    const importExit = new Promise<number | null>((resolve) => importing.on('close', resolve));
    importing.stdin.on('error', () => undefined);
    importing.stdin.write(dump.subarray(0, dump.length >> 1));
    await until('the upload to begin', async () => {
      const f = (await fs.readdir(io)).find((x) => x.startsWith('import-'));
      return f && (await fs.stat(path.join(io, f))).size > 0 ? true : undefined;
    }, 3000, 10);
    await killDaemon();
    importing.stdin.destroy();
    expect(await importExit).not.toBe(0);
    await restartDaemon();
    expect(await psql('SELECT n FROM hits WHERE id = 1')).toBe(String(Number(pgBefore) + 1));
    expect(await psql('SELECT sum(i), count(DISTINCT t) FROM filler')).toBe(fillerSum);
    expect(await fs.readdir(io)).toEqual([]);
    expect(await backupIds('postgres', pg)).toEqual(pgBackups);

    // (3) A redis import killed while the server is being switched to the new file: after the
    // restart the data from before the import is back, and the app counts on from it.
    const rdb = path.join(platform.home, 'rd.rdb');
    expect((await cliToFile(platform, ['redis:export', rd], rdb)).code).toBe(0);
    const counted = await hit();
    const redisNow = await redisCli(['GET', 'hits']);
    expect(redisNow).toBe(String(counted.redis));
    const data = serviceDir('redis', rd, 'data');
    const handle = await fs.open(rdb, 'r');
    const swapping = new Promise<number | null>((resolve) => {
      const child = spawn(path.join(repoRoot, 'slipway'), ['redis:import', rd], { env: platform.env, stdio: [handle.fd, 'ignore', 'ignore'] });
      child.on('close', resolve);
    });
    await until('the swap to begin', async () => ((await fs.readdir(data)).includes('dump.rdb.before-import') ? true : undefined), 3000, 10);
    await killDaemon();
    expect(await swapping).not.toBe(0);
    await handle.close();
    await restartDaemon();
    await healthy('redis', rd);
    expect(await redisCli(['GET', 'hits'])).toBe(redisNow);
    expect(await fs.readdir(data)).not.toContain('dump.rdb.before-import');
    expect(await fs.readdir(serviceDir('redis', rd, 'io'))).toEqual([]);
    // Every backup listed is whole: its server's own checker reads it to the end.
    for (const [kind, name] of [['postgres', pg], ['redis', rd]] as const) {
      const ids = await backupIds(kind, name);
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids) expect(await wholeBackup(platform, kind, name, id), `${kind} backup ${id}`).toBe(true);
    }
    expect(await hit()).toEqual({ pg: counted.pg + 1, redis: counted.redis + 1 });
  }, 600_000);

  it('credentials never show in push output, logs, builds:log or the server log', async () => {
    expect(passwords).toHaveLength(2);
    const config = JSON.parse((await platform.cli(['config', app, '--json'])).stdout) as Record<string, string>;
    // The passwords are the real ones: the app's config holds them.
    expect(config.DATABASE_URL).toContain(passwords[0]);
    expect(config.REDIS_URL).toContain(passwords[1]);
    const logs = await platform.cli(['logs', app, '-n', '1000']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/node-services listening/);
    const builds = JSON.parse((await platform.cli(['builds', app, '--json'])).stdout) as { id: string }[];
    expect(builds.length).toBeGreaterThanOrEqual(2);
    const buildLogs: string[] = [];
    for (const b of builds) {
      const r = await platform.cli(['builds:log', app, b.id]);
      expect(r.code, r.stderr).toBe(0);
      buildLogs.push(r.stdout);
    }
    serverLogs.push(platform.serverLog);
    const texts = { push: pushOutputs, logs: [logs.stdout], 'builds:log': buildLogs, 'server log': serverLogs };
    for (const [where, list] of Object.entries(texts)) {
      expect(list.join('').length, where).toBeGreaterThan(0);
      for (const password of passwords) expect(list.join('\n').includes(password), `a password in the ${where}`).toBe(false);
    }
  }, 120_000);
});

/** Checks a backup file with the server's own tools, in the service's container (fed on stdin). */
async function wholeBackup(platform: TestPlatform, kind: 'postgres' | 'redis', name: string, id: string): Promise<boolean> {
  const file = path.join(platform.home, 'backups', kind, name, `${id}.${kind === 'postgres' ? 'dump' : 'rdb'}`);
  const check = kind === 'postgres' ? 'pg_restore --list >/dev/null' : 'f=$(mktemp) && cat >"$f" && redis-check-rdb "$f" >/dev/null; s=$?; rm -f "$f"; exit $s';
  const handle = await fs.open(file, 'r');
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('docker', ['exec', '-i', `slipway.${kind}.${name}`, 'sh', '-c', check], { stdio: [handle.fd, 'ignore', 'ignore'] });
      child.on('error', reject);
      child.on('close', resolve);
    });
    return code === 0;
  } finally {
    await handle.close();
  }
}

/** The real CLI with its stdout going to a file (binary, not through a JS string). */
async function cliToFile(platform: TestPlatform, args: string[], file: string): Promise<{ code: number | null; stderr: string }> {
  const handle = await fs.open(file, 'w');
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(path.join(repoRoot, 'slipway'), args, { env: platform.env, stdio: ['ignore', handle.fd, 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
  } finally {
    await handle.close();
  }
}
