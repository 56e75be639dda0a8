import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess } from '../../runtime/containers.js';
import { streamAppLogs } from '../../runtime/app-logs.js';
import { ContainerEvents } from '../../runtime/events.js';
import { TEST_LABELS, buildTestImage, cleanupApp, docker, logger, randomApp } from './helpers.js';

async function until(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !ok(); await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

async function waitFor(ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await ok()); await sleep(100)) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a log line');
  }
}

// Against the real engine: history merged across containers, then a follow that picks up a
// container started after it began, and closes every Docker stream when its signal aborts.
describe('streamAppLogs', () => {
  const app = randomApp();
  let image: string;
  const events = new ContainerEvents({ docker, logger });

  beforeAll(async () => {
    image = await buildTestImage(app, 1, 'logs');
    await events.start();
  });

  afterAll(async () => {
    events.close();
    await cleanupApp(app);
  });

  it('merges history in time order, then follows old and new containers until aborted', async () => {
    const spec = { app, image, release: 1, env: {}, web: false, extraLabels: TEST_LABELS };
    const read = async (lines: number): Promise<string[]> => {
      const out: string[] = [];
      await streamAppLogs({ docker, app, lines, follow: false, signal: new AbortController().signal, events, write: (t) => out.push(t) });
      return out;
    };
    // w1-a, then c1-a, then w1-b: the worker waits for a file the test creates after c1-a.
    const worker = await startProcess(docker, { ...spec, type: 'worker', index: 1, command: 'echo w1-a; until [ -e /tmp/go ]; do sleep 0.1; done; echo w1-b; sleep 600' });
    await waitFor(async () => (await read(10)).join('').includes('w1-a'));
    await startProcess(docker, { ...spec, type: 'clock', index: 1, command: 'echo c1-a; sleep 600' });
    await waitFor(async () => (await read(10)).join('').includes('c1-a'));
    const exec = await docker.getContainer(worker.id).exec({ Cmd: ['touch', '/tmp/go'] });
    await exec.start({});
    await waitFor(async () => (await read(10)).join('').includes('w1-b'));

    const history = await read(2);
    expect(history).toHaveLength(2);
    expect(history[0]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[0-9:.]{12}Z ${app}\\.clock\\.1: c1-a\\n$`));
    expect(history[1]).toMatch(new RegExp(`Z ${app}\\.worker\\.1: w1-b\\n$`));

    let followed = '';
    let open = 0;
    const stop = new AbortController();
    const done = streamAppLogs({
      docker, app, lines: 0, type: 'worker', follow: true, signal: stop.signal, events,
      write: (t) => (followed += t), onStream: (d) => (open += d),
    });
    await until('the first stream', () => open === 1);
    await startProcess(docker, { ...spec, type: 'worker', index: 2, command: 'echo w2-hello; sleep 600' });
    await startProcess(docker, { ...spec, type: 'clock', index: 2, command: 'echo c2-filtered; sleep 600' });
    await until('the new container\'s line', () => followed.includes('w2-hello'));
    expect(followed).toMatch(new RegExp(`Z ${app}\\.worker\\.2: w2-hello\\n`));
    expect(followed).not.toContain('w1-'); // -n 0: no history replayed
    expect(followed).not.toContain('c2-filtered');
    expect(open).toBe(2);
    stop.abort();
    await done;
    expect(open).toBe(0);
  }, 120_000);
});
