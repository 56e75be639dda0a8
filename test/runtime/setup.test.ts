import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/log.js';
import { dockerSocketPath, ensureDocker, removeStalePidFile } from '../../platform/setup.js';

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
  it('removes a pid file naming a dead process and keeps one naming a live process', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-pid-'));
    try {
      const stale = path.join(dir, 'stale.pid');
      // Pids above the kernel maximum (4194304) can never be alive.
      await fs.writeFile(stale, '999999999\n');
      expect(await removeStalePidFile(stale)).toBe(true);
      await expect(fs.access(stale)).rejects.toThrow();

      const live = path.join(dir, 'live.pid');
      await fs.writeFile(live, `${process.pid}\n`);
      expect(await removeStalePidFile(live)).toBe(false);
      await expect(fs.access(live)).resolves.toBeUndefined();

      expect(await removeStalePidFile(path.join(dir, 'missing.pid'))).toBe(false);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
