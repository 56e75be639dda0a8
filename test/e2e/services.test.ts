import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestPlatform, run, uniqueApp } from '../support/platform.js';

const stackImage = process.env.SLIPWAY_TEST_STACK_IMAGE ?? 'slipway/stack:test';

/** A Redis round trip from inside an app container, with the credentials of $REDIS_URL. */
const REDIS_PING = [
  'import os, socket, urllib.parse as u',
  "url = u.urlparse(os.environ['REDIS_URL'])",
  's = socket.create_connection((url.hostname, url.port), 4)',
  "s.sendall(('AUTH %s\\r\\nPING\\r\\n' % url.password).encode())",
  'import time; time.sleep(0.5)',
  "print(s.recv(100).decode().replace('\\r\\n', ' '))",
].join('\n');

const exec = (container: string, args: string[]) => run('docker', ['exec', container, ...args]);
/** Exit code of a TCP connect from inside a container: 0 connected. */
const connectFrom = async (container: string, host: string, port: number): Promise<number> =>
  (await exec(container, ['bash', '-c', `timeout 4 bash -c '</dev/tcp/${host}/${port}'`])).code;
const psql = (service: string, sql: string) => exec(`slipway.postgres.${service}`, ['psql', '-v', 'ON_ERROR_STOP=1', '-tA', '-d', service, '-c', sql]);

// README "Services", docs/security.md "Services": real images, real networks, the real CLI.
describe('services: postgres and redis', () => {
  let platform: TestPlatform;
  const linked = uniqueApp('svc-app');
  const other = uniqueApp('svc-other');
  const pg = uniqueApp('pg');
  const pg2 = uniqueApp('pg2');
  const rd = uniqueApp('rd');

  beforeAll(async () => {
    platform = await TestPlatform.start();
    for (const app of [linked, other]) {
      await platform.createApp(app);
      const wc = await fs.mkdtemp(path.join(platform.home, 'wc-'));
      await fs.writeFile(path.join(wc, 'Dockerfile'), [`FROM ${stackImage}`, 'USER 1000', 'CMD python3 -m http.server $PORT', ''].join('\n'));
      await platform.git(wc, ['init', '-q', '--initial-branch=main']);
      await platform.commitAll(wc, 'initial');
      const pushed = await platform.push(wc, platform.sshRemote(app));
      expect(pushed.code, pushed.stderr).toBe(0);
    }
  }, 600_000);

  afterAll(async () => {
    // Links first (destroy refuses while linked), then services; then the apps (platform.stop).
    for (const [kind, name] of [['postgres', pg], ['redis', rd]] as const) await platform?.cli([`${kind}:unlink`, name, linked]);
    for (const [kind, name] of [['postgres', pg], ['postgres', pg2], ['redis', rd]] as const) await platform?.cli([`${kind}:destroy`, name, '--force']);
    await platform?.stop();
    // Whatever a failed step left behind, by its exact names only.
    for (const [kind, name] of [['postgres', pg], ['postgres', pg2], ['redis', rd]] as const) {
      await run('docker', ['rm', '-f', `slipway.${kind}.${name}`]);
      await run('docker', ['network', 'rm', `slipway-svc-${kind}-${name}`, `slipway-link-${kind}-${name}-${linked}`]);
    }
  }, 300_000);

  it('creates both services (building their images on first use), healthy and published nowhere', async () => {
    for (const [kind, name] of [['postgres', pg], ['redis', rd]] as const) {
      const created = await platform.cli([`${kind}:create`, name]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain(`${kind} ${name} is ready`);
      const info = JSON.parse((await platform.cli([`${kind}:info`, name, '--json'])).stdout);
      expect(info).toMatchObject({ status: 'running', health: 'healthy', links: [] });
      expect(info.version).toMatch(kind === 'postgres' ? /^15\./ : /^7\./);
      expect(info.url).toContain(':****@');
      const inspected = JSON.parse((await run('docker', ['inspect', `slipway.${kind}.${name}`])).stdout)[0];
      expect(inspected.HostConfig.PortBindings ?? {}).toEqual({});
      expect(inspected.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
      expect(inspected.Config.User).toBe('999:999');
    }
    // The server's own output, through the CLI.
    const logs = await platform.cli(['postgres:logs', pg, '-n', '50']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(new RegExp(`Z slipway\\.postgres\\.${pg}: .*ready to accept connections`));
    const again = await platform.cli(['redis:create', rd]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists already/);
    const bad = await platform.cli(['redis:create', 'Bad_Name']);
    expect(bad.code).toBe(2);
  }, 900_000);

  it('links: the app gets the URL as a new release and reaches the service; another app cannot', async () => {
    const l1 = await platform.cli(['postgres:link', pg, linked]);
    expect(l1.code, l1.stderr).toBe(0);
    const l2 = await platform.cli(['redis:link', rd, linked]);
    expect(l2.code, l2.stderr).toBe(0);
    // Neither the URL nor the password shows in the output.
    const password = JSON.parse((await platform.cli(['redis:info', rd, '--json', '--reveal'])).stdout).url.match(/:([0-9a-f]{48})@/)[1];
    expect(l2.stdout + l2.stderr).not.toContain(password);
    const config = JSON.parse((await platform.cli(['config', linked, '--json'])).stdout);
    expect(config.DATABASE_URL).toMatch(new RegExp(`^postgres://postgres:[0-9a-f]{48}@slipway-postgres-${pg}:5432/${pg}$`));
    expect(config.REDIS_URL).toMatch(new RegExp(`^redis://:[0-9a-f]{48}@slipway-redis-${rd}:6379$`));

    // A rollback to the release before both links keeps them (README "Services").
    const back = await platform.cli(['rollback', linked, 'v1']);
    expect(back.code, back.stderr).toBe(0);
    const after = JSON.parse((await platform.cli(['config', linked, '--json'])).stdout);
    expect(after).toMatchObject({ DATABASE_URL: config.DATABASE_URL, REDIS_URL: config.REDIS_URL });

    const ping = await exec(`${linked}.web.1`, ['python3', '-c', REDIS_PING]);
    expect(ping.stdout, ping.stderr).toContain('+OK +PONG');
    // ps names the linked services and their health after the containers.
    const ps = (await platform.cli(['ps', linked])).stdout.trimEnd().split('\n');
    expect(ps.slice(-2)).toEqual([`service postgres ${pg} healthy`, `service redis ${rd} healthy`]);
    expect(ps[0]).toMatch(new RegExp(`^${linked}\\.web\\.1 running v\\d+$`));
    expect(await connectFrom(`${linked}.web.1`, `slipway-postgres-${pg}`, 5432)).toBe(0);

    // The other app: no name, and no route even by address.
    expect(await connectFrom(`${other}.web.1`, `slipway-postgres-${pg}`, 5432)).not.toBe(0);
    const nets = JSON.parse((await run('docker', ['inspect', `slipway.redis.${rd}`])).stdout)[0].NetworkSettings.Networks as Record<string, { IPAddress: string }>;
    for (const n of Object.values(nets)) expect(await connectFrom(`${other}.web.1`, n.IPAddress, 6379)).not.toBe(0);

    // Twice, a clashing variable, a missing app: refused.
    expect((await platform.cli(['redis:link', rd, linked])).stderr).toMatch(/already linked/);
    expect((await platform.cli(['postgres:link', pg, other, '--as', 'bad-name'])).code).toBe(2);
    expect((await platform.cli(['postgres:link', pg, 'no-such-app'])).code).toBe(1);
    // Destroy refuses while linked.
    const destroy = await platform.cli(['postgres:destroy', pg, '--force']);
    expect(destroy.code).toBe(1);
    expect(destroy.stderr).toMatch(/is linked to/);
  }, 600_000);

  it('exports and imports a postgres database; garbage and a truncated dump are refused and change nothing', async () => {
    expect((await psql(pg, 'CREATE TABLE hits (n int); INSERT INTO hits VALUES (1), (2), (3);')).code).toBe(0);
    const dump = path.join(platform.home, 'pg.dump');
    // Through the real CLI, stdout to a file (argv only, no shell string with names in it).
    const out = await runToFile(platform, ['postgres:export', pg], dump);
    expect(out.code, out.stderr).toBe(0);
    expect((await fs.readFile(dump)).subarray(0, 5).toString()).toBe('PGDMP');

    expect((await platform.cli(['postgres:create', pg2])).code).toBe(0);
    const imported = await runFromFile(platform, ['postgres:import', pg2], dump);
    expect(imported.code, imported.stderr).toBe(0);
    expect((await psql(pg2, 'SELECT sum(n) FROM hits')).stdout.trim()).toBe('6');

    const garbage = path.join(platform.home, 'garbage');
    await fs.writeFile(garbage, 'this is not a dump\n'.repeat(100));
    const refused = await runFromFile(platform, ['postgres:import', pg2], garbage);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not a pg_dump custom-format archive .*: nothing was changed$/m);
    expect((await psql(pg2, 'SELECT sum(n) FROM hits')).stdout.trim()).toBe('6');

    // A dump cut short: refused in one line (by the check or by the restore's one transaction),
    // and the data is as it was, table and rows.
    expect((await psql(pg2, 'INSERT INTO hits VALUES (4)')).code).toBe(0);
    const bytes = await fs.readFile(dump);
    const truncated = path.join(platform.home, 'pg-truncated.dump');
    await fs.writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const cut = await runFromFile(platform, ['postgres:import', pg2], truncated);
    expect(cut.code).toBe(1);
    expect(cut.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(cut.stderr).toMatch(/nothing was changed/);
    expect((await psql(pg2, 'SELECT sum(n) FROM hits')).stdout.trim()).toBe('10');
  }, 300_000);

  it('backs up and restores redis (the current state is backed up first), and keeps data over a daemon restart', async () => {
    const cli = (args: string[]) => exec(`slipway.redis.${rd}`, ['sh', '-c', 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli "$@"', 'sh', ...args]);
    expect((await cli(['SET', 'k', 'one'])).stdout.trim()).toBe('OK');
    const backup = await platform.cli(['redis:backup', rd]);
    expect(backup.code, backup.stderr).toBe(0);
    const id = /Backup (\S+)/.exec(backup.stdout)![1]!;
    expect((await cli(['SET', 'k', 'two'])).stdout.trim()).toBe('OK');
    const restored = await platform.cli(['redis:restore', rd, id]);
    expect(restored.code, restored.stderr).toBe(0);
    expect((await cli(['GET', 'k'])).stdout.trim()).toBe('one');
    const list = JSON.parse((await platform.cli(['redis:backups', rd, '--json'])).stdout) as { id: string }[];
    expect(list.length).toBe(2);
    expect(list.map((b) => b.id)).toContain(id);
    const files = await fs.readdir(path.join(platform.home, 'backups', 'redis', rd));
    expect(files.length).toBe(2);

    // An RDB cut short is refused before anything is stopped or replaced.
    const rdb = path.join(platform.home, 'rd.rdb');
    expect((await runToFile(platform, ['redis:export', rd], rdb)).code).toBe(0);
    const whole = await fs.readFile(rdb);
    expect(whole.subarray(0, 5).toString()).toBe('REDIS');
    await fs.writeFile(rdb, whole.subarray(0, whole.length - 12));
    const cut = await runFromFile(platform, ['redis:import', rd], rdb);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/not a Redis RDB file: nothing was changed$/m);
    expect((await cli(['GET', 'k'])).stdout.trim()).toBe('one');
    expect((await fs.readdir(path.join(platform.home, 'backups', 'redis', rd))).length).toBe(2);

    await platform.restartDaemon();
    expect((await psql(pg, 'SELECT count(*) FROM hits')).stdout.trim()).toBe('3');
    expect((await cli(['GET', 'k'])).stdout.trim()).toBe('one');
    const ping = await exec(`${linked}.web.1`, ['python3', '-c', REDIS_PING]);
    expect(ping.stdout, ping.stderr).toContain('+OK +PONG');
  }, 300_000);

  it('unlinks: the variable goes with a new release and the app no longer reaches the service', async () => {
    const un = await platform.cli(['postgres:unlink', pg, linked]);
    expect(un.code, un.stderr).toBe(0);
    const config = JSON.parse((await platform.cli(['config', linked, '--json'])).stdout);
    expect(config.DATABASE_URL).toBeUndefined();
    expect(await connectFrom(`${linked}.web.1`, `slipway-postgres-${pg}`, 5432)).not.toBe(0);
    const destroyed = await platform.cli(['postgres:destroy', pg, '--force']);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect((await run('docker', ['inspect', `slipway.postgres.${pg}`])).code).not.toBe(0);
  }, 300_000);
});

async function runToFile(platform: TestPlatform, args: string[], file: string) {
  const handle = await fs.open(file, 'w');
  try {
    return await runWith(platform, args, { stdout: handle.fd });
  } finally {
    await handle.close();
  }
}

async function runFromFile(platform: TestPlatform, args: string[], file: string) {
  const handle = await fs.open(file, 'r');
  try {
    return await runWith(platform, args, { stdin: handle.fd });
  } finally {
    await handle.close();
  }
}

/** The real CLI with a file as stdin or stdout (binary, not through a JS string). */
async function runWith(platform: TestPlatform, args: string[], o: { stdin?: number; stdout?: number }): Promise<{ code: number; stderr: string }> {
  const { spawn } = await import('node:child_process');
  const bin = path.join(import.meta.dirname, '..', '..', 'slipway');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: platform.env, stdio: [o.stdin ?? 'ignore', o.stdout ?? 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}
