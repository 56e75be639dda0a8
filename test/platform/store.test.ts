import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppStore, nextReleaseVersion } from '../../core/store.js';

describe('AppStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-store-'));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('creates, refuses duplicates, lists and removes', async () => {
    const store = new AppStore(dir);
    await store.init();
    await store.create('one');
    await expect(store.create('one')).rejects.toThrow(/already exists/);
    await store.create('two');
    expect((await store.list()).map((a) => a.name)).toEqual(['one', 'two']);
    await store.remove('one');
    await expect(store.get('one')).rejects.toThrow(/does not exist: create it with/);
  });

  it('serializes concurrent updates of one app so none is lost', async () => {
    const store = new AppStore(dir);
    await store.init();
    await store.create('busy');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.update('busy', (a) => {
          a.config[`K${i}`] = String(i);
        }),
      ),
    );
    expect(Object.keys((await store.get('busy')).config)).toHaveLength(20);
  });

  it('names a corrupt state file instead of crashing obscurely', async () => {
    const store = new AppStore(dir);
    await store.init();
    await fs.writeFile(path.join(dir, 'bad.json'), '{not json');
    await expect(store.get('bad')).rejects.toThrow(/is not valid JSON/);
  });

  it('numbers releases after the highest one', () => {
    expect(nextReleaseVersion({ releases: [] } as never)).toBe(1);
    expect(nextReleaseVersion({ releases: [{ version: 3 }, { version: 7 }] } as never)).toBe(8);
  });
});
