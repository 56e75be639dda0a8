import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachServiceExec, execInService, serviceContainerName } from '../../runtime/service-containers.js';
import { STACK, TEST_LABELS, docker } from './helpers.js';

/** Resolves once `read()` matches `pattern`, checking after each chunk written to `stream`. */
function seen(stream: PassThrough, read: () => string, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!pattern.test(read())) return;
      stream.off('data', check);
      resolve();
    };
    stream.on('data', check);
    check();
  });
}

// Against the real engine: a container named as a service's (the stack image stands in for the
// service image, as in service-logs.test.ts), running what `connect` runs: a program wired to
// the caller, with and without a pty (README "Services", connect).
describe('attachServiceExec', () => {
  const name = `t-${randomBytes(5).toString('hex')}`;
  const container = serviceContainerName('postgres', name);

  beforeAll(async () => {
    const c = await docker.createContainer({ name: container, Image: STACK, Cmd: ['sleep', 'infinity'], Labels: TEST_LABELS, HostConfig: { NetworkMode: 'none' } });
    await c.start();
  }, 60_000);

  afterAll(async () => {
    await docker.getContainer(container).remove({ force: true }).catch(() => undefined);
  });

  it('with a pty: the caller ending its input ends nothing; the output after it and the exit code come through', async () => {
    // Like psql after `\q` while its caller's input has ended (ssh -tt with piped input): the
    // program runs on after the end of input, here until the test lets it go. Closing a tty
    // exec's input used to make the engine end its output at once: "late" was lost and the exit
    // code guessed.
    const script = 'read l; echo "got $l"; while [ ! -e /tmp/release ]; do sleep 0.05; done; echo late; exit 7';
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let output = '';
    stdout.on('data', (d: Buffer) => (output += d.toString()));
    const done = attachServiceExec(docker, 'postgres', name, ['sh', '-c', script], [], {
      stdin,
      stdout,
      stderr: stdout,
      signal: new AbortController().signal,
      terminal: { rows: 24, cols: 80, onResize: () => undefined },
    });
    stdin.write('go\n');
    await seen(stdout, () => output, /got go\r\n/);
    stdin.end();
    // Another exec lets it go: a round trip to the engine, far longer than the engine took to
    // end a tty exec's output once its input closed (about a millisecond here).
    const released = await execInService(docker, 'postgres', name, ['touch', '/tmp/release']);
    expect(released.code).toBe(0);
    expect(await done).toBe(7);
    // The pty turns \n into \r\n.
    expect(output).toMatch(/got go\r\nlate\r\n$/);
  }, 60_000);

  it('with a pty: a caller who goes away hangs the program up instead of leaving it waiting on its pty', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let output = '';
    stdout.on('data', (d: Buffer) => (output += d.toString()));
    const caller = new AbortController();
    const terminal = { rows: 24, cols: 80, onResize: () => undefined };
    // Another session's program, which must live on.
    const other = new AbortController();
    const otherOut = new PassThrough();
    let otherOutput = '';
    otherOut.on('data', (d: Buffer) => (otherOutput += d.toString()));
    const otherDone = attachServiceExec(docker, 'postgres', name, ['sh', '-c', 'echo other; exec cat'], [], { stdin: new PassThrough(), stdout: otherOut, stderr: otherOut, signal: other.signal, terminal });
    await seen(otherOut, () => otherOutput, /other/);
    const done = attachServiceExec(docker, 'postgres', name, ['sh', '-c', 'echo ready; exec cat'], [], {
      stdin,
      stdout,
      stderr: stdout,
      signal: caller.signal,
      terminal,
    });
    await seen(stdout, () => output, /ready/);
    caller.abort();
    // cat ended by SIGHUP (128 + 1), and only this session's: the other one's still runs.
    expect(await done).toBe(129);
    const left = await execInService(docker, 'postgres', name, ['sh', '-c', 'for p in /proc/[0-9]*/cmdline; do tr "\\0" " " < $p; echo; done']);
    expect(left.stdout.match(/^cat $/gm)).toHaveLength(1);
    other.abort();
    expect(await otherDone).toBe(129);
  }, 60_000);

  it('with a pty: the program starts in a terminal of the caller’s size, never 0x0', async () => {
    // The engine sizes a tty exec's pty on a request of its own, after the start: a program
    // reading the size at once (psql deciding to page, here stty) must not see 0 0.
    for (let i = 0; i < 5; i++) {
      const stdout = new PassThrough();
      let output = '';
      stdout.on('data', (d: Buffer) => (output += d.toString()));
      const code = await attachServiceExec(docker, 'postgres', name, ['stty', 'size'], [], {
        stdin: new PassThrough(),
        stdout,
        stderr: stdout,
        signal: new AbortController().signal,
        terminal: { rows: 33, cols: 101, onResize: () => undefined },
      });
      expect(code).toBe(0);
      expect(output).toBe('33 101\r\n');
    }
  }, 60_000);

  it('without a pty: the end of input is the program’s, its output and exit code come back', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d: Buffer) => (out += d.toString()));
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const done = attachServiceExec(docker, 'postgres', name, ['sh', '-c', 'cat; echo after-eof; echo oops >&2; exit 3'], [], { stdin, stdout, stderr, signal: new AbortController().signal });
    stdin.end('line 1\nline 2\n');
    expect(await done).toBe(3);
    expect(out).toBe('line 1\nline 2\nafter-eof\n');
    expect(err).toBe('oops\n');
  }, 60_000);
});
