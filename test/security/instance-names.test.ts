import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { APP_NAME_PATTERN, RESERVED_APP_NAMES, parseAppName, parseNewAppName } from '../../core/app-name.js';
import { ensureInstanceId, INSTANCE_ID_PATTERN, loadInstance } from '../../core/instance-id.js';
import { pathsFor } from '../../core/paths.js';
import { BASE_REPO, RUNTIME_REPO, launchBaseRef, releaseImageRef, runtimeImageRef } from '../../runtime/images.js';
import { ownsObject, withInstanceFilter } from '../../runtime/instance-engine.js';
import { INSTANCE_LABEL, instanceFilter, instanceLabels, ownedBy } from '../../runtime/labels.js';
import { STACK_REPO, stackImageRef } from '../../runtime/stack.js';
import { miniPlatform } from '../support/mini-platform.js';
import { throwsOneLine } from '../support/errors.js';

const dirs: string[] = [];
const tempHome = async (): Promise<string> => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-instance-'));
  dirs.push(dir);
  return dir;
};
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

describe('instance id', () => {
  it('is created once, 16 hex digits, and read back the same', async () => {
    const paths = pathsFor(await tempHome());
    const first = await ensureInstanceId(paths.instanceIdFile);
    expect(first).toMatch(INSTANCE_ID_PATTERN);
    expect(await ensureInstanceId(paths.instanceIdFile)).toBe(first);
    expect((await fs.readFile(paths.instanceIdFile, 'utf8')).trim()).toBe(first);
    // No temporary file is left beside it.
    expect(await fs.readdir(paths.home)).toEqual(['instance-id']);
  });

  it('differs between homes, and racing first starts agree on one', async () => {
    const a = pathsFor(await tempHome());
    const b = pathsFor(await tempHome());
    const racing = await Promise.all(Array.from({ length: 8 }, () => ensureInstanceId(a.instanceIdFile)));
    expect(new Set(racing).size).toBe(1);
    expect(await ensureInstanceId(b.instanceIdFile)).not.toBe(racing[0]);
  });

  it('refuses a damaged id file with one line instead of minting a new identity', async () => {
    const paths = pathsFor(await tempHome());
    await fs.writeFile(paths.instanceIdFile, 'not-an-id\n');
    await expect(ensureInstanceId(paths.instanceIdFile)).rejects.toThrow(/is not a Slipway instance id .*restore it from a backup/);
    expect(await fs.readFile(paths.instanceIdFile, 'utf8')).toBe('not-an-id\n');
  });
});

describe('upgrading an instance made before instance ids', () => {
  const load = (home: string, apps: string[]) => {
    const paths = pathsFor(home);
    return loadInstance({ idFile: paths.instanceIdFile, legacyAppsFile: paths.legacyAppsFile, listApps: async () => apps });
  };

  it('adopts the unlabelled objects of the apps it had when it got its id, and only those', async () => {
    const home = await tempHome();
    const first = await load(home, ['old-one', 'old-two']);
    expect([...first.legacyApps]).toEqual(['old-one', 'old-two']);
    // Later starts keep the same list, whatever apps exist then.
    const again = await load(home, ['old-one', 'old-two', 'new-app']);
    expect(again).toEqual(first);
    const id = first.id;
    expect(ownsObject({ 'slipway.app': 'old-one' }, id, first.legacyApps)).toBe(true);
    expect(ownsObject({ 'slipway.build-app': 'old-two' }, id, first.legacyApps)).toBe(true);
    expect(ownsObject({ 'slipway.app': 'new-app' }, id, first.legacyApps)).toBe(false);
    // An object labelled by another instance is never adopted, whatever its app.
    expect(ownsObject({ 'slipway.app': 'old-one', 'slipway.instance': 'bbbbbbbbbbbbbbbb' }, id, first.legacyApps)).toBe(false);
  });

  it('a new home, or one that already had an id, adopts nothing', async () => {
    expect((await load(await tempHome(), [])).legacyApps.size).toBe(0);
    const home = await tempHome();
    await ensureInstanceId(pathsFor(home).instanceIdFile);
    const later = await load(home, ['made-after-the-id']);
    expect(later.legacyApps.size).toBe(0);
    expect(ownsObject({ 'slipway.app': 'made-after-the-id' }, later.id, later.legacyApps)).toBe(false);
  });
});

describe('instance labels', () => {
  it('are built in one place and select only this instance', () => {
    expect(instanceLabels('0123456789abcdef')).toEqual({ [INSTANCE_LABEL]: '0123456789abcdef' });
    expect(instanceFilter('0123456789abcdef')).toBe('slipway.instance=0123456789abcdef');
    expect(ownedBy({ 'slipway.instance': 'aaaaaaaaaaaaaaaa' }, 'aaaaaaaaaaaaaaaa')).toBe(true);
    expect(ownedBy({ 'slipway.instance': 'bbbbbbbbbbbbbbbb' }, 'aaaaaaaaaaaaaaaa')).toBe(false);
    expect(ownedBy({ 'slipway.app': 'x' }, 'aaaaaaaaaaaaaaaa')).toBe(false);
    expect(ownedBy(null, 'aaaaaaaaaaaaaaaa')).toBe(false);
  });

  it('are added to every query filter, whatever shape the filter has', () => {
    const id = 'aaaaaaaaaaaaaaaa';
    expect(withInstanceFilter(undefined, id)).toEqual({ filters: { label: [`slipway.instance=${id}`] } });
    expect(withInstanceFilter({ all: true, filters: { label: ['slipway.app=x'] } }, id)).toEqual({ all: true, filters: { label: ['slipway.app=x', `slipway.instance=${id}`] } });
    expect(withInstanceFilter({ filters: JSON.stringify({ reference: ['slipway/x'] }) }, id)).toEqual({ filters: { reference: ['slipway/x'], label: [`slipway.instance=${id}`] } });
  });
});

describe('platform image namespace', () => {
  it('puts stack, base and runtime images where no app image can be', () => {
    for (const ref of [stackImageRef(), launchBaseRef(stackImageRef()), runtimeImageRef('0123abcd0123abcd', 'aaaaaaaaaaaaaaaa')]) {
      expect(ref.startsWith('slipway-platform/')).toBe(true);
    }
    expect([STACK_REPO, BASE_REPO, RUNTIME_REPO]).toEqual(['slipway-platform/stack', 'slipway-platform/base', 'slipway-platform/runtime']);
    // App images are `slipway/<app>`; an app name has no `/`, so `slipway-platform/...` is unreachable.
    expect(releaseImageRef('stack', 1)).toBe('slipway/stack:v1');
    expect(APP_NAME_PATTERN.test('slipway-platform/stack')).toBe(false);
  });

  it('gives each instance its own runtime tags', () => {
    expect(runtimeImageRef('0123abcd0123abcd', 'aaaaaaaaaaaaaaaa')).toBe('slipway-platform/runtime:0123abcd0123abcd-aaaaaaaaaaaaaaaa');
    expect(runtimeImageRef('0123abcd0123abcd', 'aaaaaaaaaaaaaaaa')).not.toBe(runtimeImageRef('0123abcd0123abcd', 'bbbbbbbbbbbbbbbb'));
  });
});

describe('reserved app names', () => {
  it.each(['stack', 'runtime', 'base', 'manager', 'portal', 'auth', 'admin', 'api', 'www', 'slipway', 'platform', 'git', 'router', 'status'])(
    'apps:create refuses %j with one line',
    (name) => {
      expect(RESERVED_APP_NAMES.has(name)).toBe(true);
      const err = throwsOneLine(() => parseNewAppName(name));
      expect(err.code).toBe('E_APP_NAME');
      expect(err.message).toMatch(new RegExp(`^app name "${name}" is reserved for the platform: choose another name`));
      // Existing apps of that name are still reachable by every other command.
      expect(parseAppName(name)).toBe(name);
    },
  );

  it('refuses `_git` as an invalid name and accepts ordinary names', () => {
    expect(throwsOneLine(() => parseNewAppName('_git')).message).toMatch(/^invalid app name/);
    expect(parseNewAppName('stacks')).toBe('stacks');
    expect(parseNewAppName('my-api')).toBe('my-api');
  });

  it('through the command: exit 1, one line, and no app is created', async () => {
    const mini = await miniPlatform();
    try {
      const before = await mini.files();
      const res = await mini.run(['apps:create', 'runtime']);
      expect(res.code).toBe(1);
      expect(res.err).toMatch(/^slipway: app name "runtime" is reserved for the platform: choose another name .*\n$/);
      expect(res.err.trim().split('\n')).toHaveLength(1);
      expect(await mini.files()).toEqual(before);
      expect(mini.unexpected).toEqual([]);
    } finally {
      await mini.close();
    }
  });
});
