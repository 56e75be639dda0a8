import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.js';
import { dockerSocketPath, dockerdPidAlive, ensureDocker, removeStalePidFile } from '../../runtime/host-setup.js';

describe('ensureDocker', () => {
  it('returns a working client at once when the engine answers', async () => {
    const lines: string[] = [];
    const started = Date.now();
    const docker = await ensureDocker({ progress: (l) => lines.push(l), logger: createLogger('silent') });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(lines).toEqual([]);
    const version = await docker.version();
    expect(version.ApiVersion).toMatch(/^1\.\d+$/);
  });
});

describe('dockerSocketPath', () => {
  it('honours DOCKER_HOST unix:// and defaults to the standard socket', () => {
    expect(dockerSocketPath({})).toBe('/var/run/docker.sock');
    expect(dockerSocketPath({ DOCKER_HOST: 'unix:///tmp/x.sock' })).toBe('/tmp/x.sock');
  });

  it('refuses a non-unix DOCKER_HOST with a clear error', () => {
    expect(() => dockerSocketPath({ DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toThrow(/not supported/);
  });
});

describe('removeStalePidFile', () => {
  it('removes a pid file unless it names a running dockerd', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-pid-'));
    try {
      const dead = path.join(dir, 'dead.pid');
      // Pids above the kernel maximum (4194304) can never be alive.
      await fs.writeFile(dead, '999999999\n');
      expect(await removeStalePidFile(dead)).toBe(true);
      await expect(fs.access(dead)).rejects.toThrow();

      // A live pid that is not dockerd (a reused pid) is stale too.
      const reused = path.join(dir, 'reused.pid');
      await fs.writeFile(reused, `${process.pid}\n`);
      expect(await dockerdPidAlive(reused)).toBe(false);
      expect(await removeStalePidFile(reused)).toBe(true);

      expect(await removeStalePidFile(path.join(dir, 'missing.pid'))).toBe(false);

      // The engine answering these tests is a live dockerd: its pid file must survive.
      const real = await fs.readFile('/var/run/docker.pid', 'utf8').catch(() => null);
      if (real !== null) {
        const copy = path.join(dir, 'docker.pid');
        await fs.writeFile(copy, real);
        expect(await dockerdPidAlive(copy)).toBe(true);
        expect(await removeStalePidFile(copy)).toBe(false);
        await expect(fs.access(copy)).resolves.toBeUndefined();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
