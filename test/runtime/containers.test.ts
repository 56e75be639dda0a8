import { parseMemory } from '../../core/units.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LABELS,
  containerLogs,
  containerName,
  demuxBuffer,
  hostPortOf,
  listAppContainers,
  processEnv,
  removeApp,
  startProcess,
  stopAndRemove,
  waitHealthy,
} from '../../runtime/containers.js';
import { TEST_LABELS, WEB_COMMAND, buildTestImage, cleanupApp, docker, httpGet, randomApp } from './helpers.js';

describe('container naming and settings (unit)', () => {
  it('names containers <app>.<type>.<n>', () => {
    expect(containerName('shop', 'worker', 2)).toBe('shop.worker.2');
  });

  it('parses memory limits', () => {
    expect(parseMemory('512m')).toBe(512 * 1024 * 1024);
    expect(parseMemory('2g')).toBe(2 * 1024 ** 3);
    expect(parseMemory('4096')).toBe(4096);
    expect(() => parseMemory('lots')).toThrow(/invalid memory size/);
  });

  it('gives web PORT and every process DYNO, over any config var of the same name', () => {
    expect(processEnv({ env: { A: '1', PORT: '80' }, type: 'web', index: 2, web: true }).sort()).toEqual(['A=1', 'DYNO=web.2', 'PORT=5000']);
    expect(processEnv({ env: {}, type: 'worker', index: 1, web: false })).toEqual(['DYNO=worker.1']);
    expect(() => processEnv({ env: { 'A=B': 'x' }, type: 'web', index: 1, web: true })).toThrow(/invalid config var name/);
  });

  it('demuxes Docker log frames', () => {
    const frame = (stream: number, text: string): Buffer => {
      const head = Buffer.alloc(8);
      head[0] = stream;
      head.writeUInt32BE(Buffer.byteLength(text), 4);
      return Buffer.concat([head, Buffer.from(text)]);
    };
    expect(demuxBuffer(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n')]))).toBe('out\nerr\n');
  });
});

describe('process containers (real engine)', () => {
  const app = randomApp();
  let image: string;

  beforeAll(async () => {
    image = await buildTestImage(app, 1, 'containers');
  });
  afterAll(() => cleanupApp(app));

  it('starts a web process with labels, DYNO, PORT, a loopback port and a memory limit', async () => {
    const started = await startProcess(docker, {
      app,
      type: 'web',
      index: 1,
      image,
      release: 1,
      command: WEB_COMMAND,
      env: { GREETING_OVERRIDE: 'x' },
      web: true,
      memory: '256m',
      extraLabels: TEST_LABELS,
    });
    expect(started.name).toBe(`${app}.web.1`);
    expect(started.hostPort).toBeGreaterThan(0);
    expect(await hostPortOf(docker, started.id)).toBe(started.hostPort);

    const info = await docker.getContainer(started.id).inspect();
    expect(info.Config.Labels).toMatchObject({ [LABELS.app]: app, [LABELS.type]: 'web', [LABELS.index]: '1', [LABELS.release]: '1' });
    expect(info.Config.Env).toEqual(expect.arrayContaining(['PORT=5000', 'DYNO=web.1', 'GREETING_OVERRIDE=x']));
    expect(info.HostConfig.PortBindings['5000/tcp'][0].HostIp).toBe('127.0.0.1');
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.RestartPolicy).toMatchObject({ Name: 'on-failure' });

    await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 300, timeoutMs: 20_000 });
    expect((await httpGet(`127.0.0.1:${started.hostPort}`, '/index.html')).body).toBe('containers');

    const listed = await listAppContainers(docker, app);
    expect(listed.map((c) => c.Id)).toContain(started.id);
    await stopAndRemove(docker, started.id, 2);
    await expect(docker.getContainer(started.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    // Already gone: not an error.
    await stopAndRemove(docker, started.id, 2);
  });

  it('starts a non-web process without a port', async () => {
    const started = await startProcess(docker, {
      app, type: 'worker', index: 1, image, release: 1, command: 'sleep 60', env: {}, web: false, extraLabels: TEST_LABELS,
    });
    expect(started.hostPort).toBeNull();
    const info = await docker.getContainer(started.id).inspect();
    expect(info.Config.Env).toContain('DYNO=worker.1');
    expect(info.Config.Env.some((e: string) => e.startsWith('PORT='))).toBe(false);
    expect(info.HostConfig.PortBindings ?? {}).toEqual({});
    await waitHealthy({ docker, id: started.id, hostPort: null, settleMs: 300, timeoutMs: 5000 });
    await stopAndRemove(docker, started.id, 0);
  });

  it('refuses a second container with a taken name with a clear error', async () => {
    const spec = { app, type: 'clash', index: 1, image, release: 1, command: 'sleep 60', env: {}, web: false, extraLabels: TEST_LABELS };
    const first = await startProcess(docker, spec);
    try {
      await expect(startProcess(docker, spec)).rejects.toMatchObject({ code: 'E_DOCKER', message: expect.stringContaining(`${app}.clash.1`) });
    } finally {
      await stopAndRemove(docker, first.id, 0);
    }
  });

  it('fails the health check of a process that never listens, with its last output', async () => {
    const started = await startProcess(docker, {
      app, type: 'web', index: 2, image, release: 1, command: 'echo boom-marker-123; sleep 60', env: {}, web: true, extraLabels: TEST_LABELS,
    });
    try {
      const err = await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 100, timeoutMs: 1500 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_HEALTHCHECK' });
      expect((err as Error).message).toMatch(/nothing answered/);
      expect((err as Error).message).toContain('boom-marker-123');
    } finally {
      await stopAndRemove(docker, started.id, 0);
    }
  });

  it('fails the health check of a process that crashes, with its last output', async () => {
    const started = await startProcess(docker, {
      app, type: 'web', index: 3, image, release: 1, command: 'echo crash-marker >&2; exit 3', env: {}, web: true, extraLabels: TEST_LABELS,
    });
    try {
      const err = await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 100, timeoutMs: 10_000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_HEALTHCHECK' });
      expect((err as Error).message).toContain('crash-marker');
    } finally {
      await stopAndRemove(docker, started.id, 0);
    }
  });

  it('with the app\'s own checks, routes once they pass: no fixed settle', async () => {
    const started = await startProcess(docker, {
      app, type: 'web', index: 4, image, release: 1, command: WEB_COMMAND, env: {}, web: true, extraLabels: TEST_LABELS,
    });
    try {
      let asked = 0;
      // A settle this long would outlast the test: only the checks can end the wait.
      await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 3_600_000, timeoutMs: 20_000, ready: async () => void asked++ });
      expect(asked).toBe(1);
      expect((await httpGet(`127.0.0.1:${started.hostPort}`, '/index.html')).body).toBe('containers');
    } finally {
      await stopAndRemove(docker, started.id, 0);
    }
  });

  it('fails a process that dies while its checks wait, without waiting for them', async () => {
    const started = await startProcess(docker, {
      app, type: 'web', index: 5, image, release: 1, env: {}, web: true, extraLabels: TEST_LABELS,
      command: 'python3 -m http.server "$PORT" --bind 0.0.0.0 & sleep 3; echo died-marker; exit 4',
    });
    try {
      let aborted = false;
      // Checks that never pass on their own: only the watcher can end the wait.
      const ready = (signal: AbortSignal) =>
        new Promise<void>((_, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(new Error('aborted'))), { once: true }));
      const err = await waitHealthy({ docker, id: started.id, hostPort: started.hostPort, settleMs: 100, timeoutMs: 20_000, ready }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_HEALTHCHECK' });
      expect((err as Error).message).toContain('died-marker');
      expect(aborted).toBe(true);
    } finally {
      await stopAndRemove(docker, started.id, 0);
    }
  });

  it('follows logs as they are written, stdout and stderr merged, until the reader stops', async () => {
    const started = await startProcess(docker, {
      app, type: 'logger', index: 1, image, release: 1, env: {}, web: false, extraLabels: TEST_LABELS,
      command: 'for i in 1 2 3; do echo out-$i; echo err-$i >&2; sleep 0.3; done; sleep 60',
    });
    try {
      const stream = await containerLogs(docker, started.id, { follow: true });
      let text = '';
      for await (const chunk of stream) {
        text += String(chunk);
        if (text.includes('out-3\n') && text.includes('err-3\n')) break;
      }
      // stdout and stderr are separate pipes: lines written together may arrive in either order,
      // but the first round comes before the third.
      for (const line of ['out-1', 'err-1', 'out-2', 'err-2', 'out-3', 'err-3']) expect(text).toContain(`${line}\n`);
      expect(Math.max(text.indexOf('out-1'), text.indexOf('err-1'))).toBeLessThan(Math.min(text.indexOf('out-3'), text.indexOf('err-3')));
      expect(stream.destroyed).toBe(true);
      const tail = await containerLogs(docker, started.id, { tail: 2 });
      let last = '';
      for await (const chunk of tail) last += String(chunk);
      expect(last.trim().split('\n')).toHaveLength(2);
    } finally {
      await stopAndRemove(docker, started.id, 0);
    }
  });

  it('removeApp removes every container of the app', async () => {
    for (const index of [1, 2]) {
      await startProcess(docker, { app, type: 'worker', index, image, release: 1, command: 'sleep 60', env: {}, web: false, extraLabels: TEST_LABELS });
    }
    expect(await listAppContainers(docker, app)).toHaveLength(2);
    await removeApp(docker, app, 0);
    expect(await listAppContainers(docker, app)).toEqual([]);
  });
});
