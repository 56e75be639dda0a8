import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { installLastResort, isPeerGone } from '../../platform/last-resort.js';
import { createLogger } from '../../core/log.js';

const withCode = (code: string) => Object.assign(new Error(`write ${code}`), { code });

function harness() {
  const lines: Array<{ level: number; msg: string; code?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      cb();
    },
  });
  const target = new EventEmitter();
  const exits: number[] = [];
  const uninstall = installLastResort({
    logger: createLogger('info', sink),
    exit: (code) => exits.push(code),
    target: target as unknown as NodeJS.Process,
  });
  return { lines, target, exits, uninstall };
}

describe('last-resort handler', () => {
  it.each(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_PREMATURE_CLOSE'])('survives an uncaught %s and logs it', async (code) => {
    const h = harness();
    h.target.emit('uncaughtException', withCode(code), 'uncaughtException');
    await new Promise((r) => setImmediate(r));
    expect(h.exits).toEqual([]);
    expect(h.lines).toHaveLength(1);
    expect(h.lines[0]).toMatchObject({ level: 40, code });
  });

  it.each([
    ['a TypeError', new TypeError('cannot read properties of undefined')],
    ['an error with another code', withCode('ENOENT')],
    ['a thrown string', 'boom'],
    ['null', null],
  ])('exits 1 on %s: a real bug is never hidden', async (_what, err) => {
    const h = harness();
    const stderr = process.stderr.write;
    let said = '';
    process.stderr.write = ((d: string) => ((said += d), true)) as typeof process.stderr.write;
    try {
      h.target.emit('uncaughtException', err, 'uncaughtException');
    } finally {
      process.stderr.write = stderr;
    }
    await new Promise((r) => setImmediate(r));
    expect(h.exits).toEqual([1]);
    expect(h.lines[0]).toMatchObject({ level: 60 });
    expect(said).toMatch(/^slipway: uncaught error, exiting: .+\n$/);
  });

  it('classifies by code only and uninstalls cleanly', () => {
    expect(isPeerGone(withCode('EPIPE'))).toBe(true);
    expect(isPeerGone(new Error('EPIPE'))).toBe(false);
    expect(isPeerGone(undefined)).toBe(false);
    const h = harness();
    expect(h.target.listenerCount('uncaughtException')).toBe(1);
    h.uninstall();
    expect(h.target.listenerCount('uncaughtException')).toBe(0);
  });

  it('in a real process: survives an EPIPE nobody handled, still dies on a real bug', async () => {
    const { spawn } = await import('node:child_process');
    const path = await import('node:path');
    const module = path.resolve(import.meta.dirname, '..', '..', 'dist', 'platform', 'last-resort.js');
    const script = (bug: boolean) => `
      const { installLastResort } = await import(${JSON.stringify(module)});
      const logger = { warn: () => {}, fatal: () => {} };
      installLastResort({ logger, exit: (c) => process.exit(c) });
      const { spawn } = await import('node:child_process');
      // A child that exits without reading, and a write to its stdin with no error listener.
      const child = spawn('true', [], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('exit', () => {
        setTimeout(() => {
          child.stdin.write(Buffer.alloc(1 << 20));
          setTimeout(() => {
            ${bug ? "throw new TypeError('a real bug');" : "process.stdout.write('survived'); process.exit(0);"}
          }, 300);
        }, 100);
      });`;
    const runScript = (bug: boolean) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script(bug)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
    expect(await runScript(false)).toEqual({ code: 0, out: 'survived' });
    expect((await runScript(true)).code).toBe(1);
  });
});
