import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceContainerName } from '../../runtime/service-containers.js';
import { streamServiceLogs } from '../../runtime/service-logs.js';
import { STACK, TEST_LABELS, docker } from './helpers.js';

// Against the real engine: a container named as a service's, printing to stdout and stderr. The
// stack image stands in for the service image (no mmdebstrap build in a runtime test).
describe('streamServiceLogs', () => {
  const name = `t-${randomBytes(5).toString('hex')}`;
  const container = serviceContainerName('redis', name);

  beforeAll(async () => {
    const script = 'echo err-0 >&2; sleep 0.5; for i in 1 2 3; do echo out-$i; done; while sleep 0.2; do test -f /tmp/go && echo late && rm /tmp/go; done';
    const c = await docker.createContainer({ name: container, Image: STACK, Cmd: ['sh', '-c', script], Labels: TEST_LABELS, HostConfig: { NetworkMode: 'none' } });
    await c.start();
  }, 60_000);

  afterAll(async () => {
    await docker.getContainer(container).remove({ force: true }).catch(() => undefined);
  });

  it('shows the last lines of both streams demultiplexed, then follows until aborted', async () => {
    const read = async (lines: number): Promise<string[]> => {
      const out: string[] = [];
      await streamServiceLogs(docker, 'redis', name, { lines, follow: false, signal: new AbortController().signal, write: (t) => out.push(t) });
      return out;
    };
    for (let deadline = Date.now() + 20_000; (await read(100)).length < 4; await sleep(100)) if (Date.now() > deadline) throw new Error('no log lines');
    const all = await read(100);
    expect(all.map((l) => l.split(': ')[1])).toEqual(['err-0\n', 'out-1\n', 'out-2\n', 'out-3\n']);
    for (const l of all) expect(l).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]{12}Z ${container.replace(/\./g, '\\.')}: (out-[123]|err-0)\\n$`));
    // No multiplexing header bytes leak into the text.
    expect(all.join('')).not.toMatch(/[\u0000-\u0008]/);
    expect((await read(2)).map((l) => l.split(': ')[1])).toEqual(['out-2\n', 'out-3\n']);

    const ac = new AbortController();
    const followed: string[] = [];
    const done = streamServiceLogs(docker, 'redis', name, { lines: 0, follow: true, signal: ac.signal, write: (t) => followed.push(t) });
    await sleep(500);
    const exec = await docker.getContainer(container).exec({ Cmd: ['touch', '/tmp/go'] });
    await exec.start({ Detach: true });
    for (let deadline = Date.now() + 20_000; !followed.some((l) => l.endsWith(': late\n')); await sleep(100)) if (Date.now() > deadline) throw new Error('follow saw no new line');
    expect(followed.some((l) => /: (out|err)-/.test(l))).toBe(false);
    ac.abort();
    await done;
  }, 90_000);

  it('refuses a service without a container in one line', async () => {
    const err = await streamServiceLogs(docker, 'postgres', `${name}-none`, { lines: 10, follow: false, signal: new AbortController().signal, write: () => undefined }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^postgres t-[0-9a-f]+-none has no container: [^\n]+$/);
  });
});
