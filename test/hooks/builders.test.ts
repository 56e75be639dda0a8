import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_BUILDPACKS, BUILTIN_DECLARATIONS, CONVENTIONAL_LAYERS, declarationOf, mirrorNeeds, releaseLayers } from '../../buildpacks/builtins.js';
import { BuildpackPlugins } from '../../buildpacks/plugins.js';
import { buildpacksHome } from '../../buildpacks/runner.js';
import { SlipwayError } from '../../core/errors.js';
import { pathsFor, repoPath } from '../../core/paths.js';
import { AppStore } from '../../core/store.js';
import { BUILDER_DETECTORS, chooseBuilder, chooseBuilderName, dirSource, type AppSource } from '../../hooks/builders/index.js';
import type { BuilderDetector, Detection } from '../../hooks/builders/types.js';
import { directoryCatalog } from '../../hooks/choose-buildpacks.js';
import { BuildpackService } from '../../services/buildpack-service.js';

const execFileP = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-builders-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A tree on disk with the given files (`null` content: a folder). */
async function tree(name: string, files: Record<string, string | null>): Promise<string> {
  const dir = path.join(tmp, name);
  await fs.mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    if (text === null) await fs.mkdir(path.join(dir, file), { recursive: true });
    else await fs.writeFile(path.join(dir, file), text);
  }
  return dir;
}

const choose = async (pin: string[], dir: string) => {
  const { name, detection } = await chooseBuilderName(pin, dirSource(dir));
  return { name, mode: detection.mode, entries: detection.entries };
};

describe('chooseBuilder: the one precedence (docs/buildpacks.md "Choosing buildpacks")', () => {
  it('an empty tree: buildpack detection', async () => {
    expect(await choose([], await tree('empty', {}))).toEqual({ name: 'buildpacks', mode: 'detect', entries: [] });
  });

  it('a Dockerfile: the Dockerfile builder', async () => {
    expect(await choose([], await tree('docker', { Dockerfile: 'FROM x\n' }))).toEqual({ name: 'dockerfile', mode: 'dockerfile', entries: [] });
  });

  it('.buildpacks wins over a Dockerfile', async () => {
    const dir = await tree('file-and-docker', { Dockerfile: 'FROM x\n', '.buildpacks': '# pinned\nstatic\n\npython\n' });
    expect(await choose([], dir)).toEqual({ name: 'buildpacks', mode: '.buildpacks', entries: ['static', 'python'] });
  });

  it('buildpacks:set wins over .buildpacks and a Dockerfile', async () => {
    const dir = await tree('all-three', { Dockerfile: 'FROM x\n', '.buildpacks': 'static\n' });
    expect(await choose(['node'], dir)).toEqual({ name: 'buildpacks', mode: 'buildpacks:set', entries: ['node'] });
  });

  it('a .buildpacks that lists nothing does not pin: the Dockerfile, else detection', async () => {
    expect(await choose([], await tree('blank-file-docker', { '.buildpacks': '# nothing\n\n', Dockerfile: 'FROM x\n' }))).toMatchObject({ name: 'dockerfile' });
    expect(await choose([], await tree('blank-file', { '.buildpacks': '\n' }))).toMatchObject({ name: 'buildpacks', mode: 'detect' });
  });

  it('a Dockerfile that is a folder or a symlink is no Dockerfile', async () => {
    expect(await choose([], await tree('docker-dir', { Dockerfile: null }))).toMatchObject({ mode: 'detect' });
    const linked = await tree('docker-link', { 'real.Dockerfile': 'FROM x\n' });
    await fs.symlink('real.Dockerfile', path.join(linked, 'Dockerfile'));
    expect(await choose([], linked)).toMatchObject({ mode: 'detect' });
  });

  it('a .buildpacks that is a symlink fails the push in one line', async () => {
    const dir = await tree('bp-link', { Dockerfile: 'FROM x\n' });
    await fs.symlink('/etc/hostname', path.join(dir, '.buildpacks'));
    const err = await choose([], dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipwayError);
    expect((err as SlipwayError).code).toBe('E_UNSAFE_FILE');
    expect((err as Error).message).not.toContain('\n');
  });

  it('with a pin, the tree is not read for .buildpacks', async () => {
    const reads: string[] = [];
    const source: AppSource = {
      readFile: async (name) => (reads.push(name), null),
      isFile: async () => false,
    };
    await chooseBuilderName(['static'], source);
    expect(reads).toEqual([]);
  });

  it('is generic: the strongest claim wins, the builder listed first breaks ties', async () => {
    const claiming = (name: 'buildpacks' | 'dockerfile', claim: Detection['claim'] | null): BuilderDetector => ({
      name,
      detects: async () => (claim === null ? null : { claim, mode: name === 'dockerfile' ? 'dockerfile' : 'detect', entries: [] }),
    });
    const src = dirSource(await tree('generic', {}));
    expect((await chooseBuilder([claiming('buildpacks', 'fallback'), claiming('dockerfile', 'present')], [], src)).builder.name).toBe('dockerfile');
    expect((await chooseBuilder([claiming('buildpacks', 'pinned'), claiming('dockerfile', 'present')], [], src)).builder.name).toBe('buildpacks');
    expect((await chooseBuilder([claiming('dockerfile', 'present'), claiming('buildpacks', 'present')], [], src)).builder.name).toBe('dockerfile');
    expect((await chooseBuilder([claiming('buildpacks', 'present'), claiming('dockerfile', 'present')], [], src)).builder.name).toBe('buildpacks');
    await expect(chooseBuilder([claiming('dockerfile', null)], [], src)).rejects.toThrow(/no builder claims the app/);
  });

  it('lists both builders, buildpacks first', () => {
    expect(BUILDER_DETECTORS.map((b) => b.name)).toEqual(['buildpacks', 'dockerfile']);
  });
});

describe('slipway buildpacks <app> uses the same precedence on the commit', () => {
  const git = (cwd: string, ...args: string[]) => execFileP('git', args, { cwd, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });

  async function service(app: string, files: Record<string, string | null>, links: Record<string, string> = {}) {
    const paths = pathsFor(path.join(tmp, `home-${app}`));
    const apps = new AppStore(paths.appsDir);
    await apps.init();
    await apps.create(app);
    const work = await tree(`work-${app}`, { 'README': 'x\n', ...files });
    for (const [name, target] of Object.entries(links)) await fs.symlink(target, path.join(work, name));
    await git(work, 'init', '-q', '-b', 'main');
    await git(work, 'add', '-A');
    await git(work, 'commit', '-qm', 'first');
    await fs.mkdir(paths.reposDir, { recursive: true });
    await execFileP('git', ['clone', '-q', '--bare', work, repoPath(paths, app)]);
    const plugins = new BuildpackPlugins(buildpacksHome(), paths.buildpacksDir);
    const svc = new BuildpackService({ plugins, apps, paths, docker: undefined as never, config: undefined as never, stackImage: () => 'unused' });
    return { svc, apps, commit: (await git(work, 'rev-parse', 'HEAD')).stdout.trim() };
  }

  it('reports each mode, and agrees with a deploy of the same tree', async () => {
    const docker = await service('bp-docker', { Dockerfile: 'FROM x\n' });
    expect(await docker.svc.forApp('bp-docker')).toEqual({ app: 'bp-docker', mode: 'dockerfile', buildpacks: [], commit: docker.commit });
    const file = await service('bp-file', { Dockerfile: 'FROM x\n', '.buildpacks': 'static\n' });
    expect(await file.svc.forApp('bp-file')).toEqual({ app: 'bp-file', mode: '.buildpacks', buildpacks: ['static'], commit: file.commit });
    await file.apps.update('bp-file', (a) => {
      a.buildpacks = ['python'];
    });
    expect(await file.svc.forApp('bp-file')).toEqual({ app: 'bp-file', mode: 'buildpacks:set', buildpacks: ['python'], commit: null });
    const plain = await service('bp-plain', {});
    expect(await plain.svc.forApp('bp-plain')).toEqual({ app: 'bp-plain', mode: 'detect', buildpacks: [...BUILTIN_BUILDPACKS], commit: plain.commit });
  });

  it('a Dockerfile that is a folder or a symlink in the commit is no Dockerfile, as at deploy', async () => {
    const dir = await service('bp-docker-dir', { 'Dockerfile/x': null, 'Dockerfile/x/y': 'z' });
    expect((await dir.svc.forApp('bp-docker-dir')).mode).toBe('detect');
    const link = await service('bp-docker-link', { 'real.Dockerfile': 'FROM x\n' }, { Dockerfile: 'real.Dockerfile' });
    expect((await link.svc.forApp('bp-docker-link')).mode).toBe('detect');
  });

  it('an app with no commit yet: detection', async () => {
    const paths = pathsFor(path.join(tmp, 'home-empty'));
    const apps = new AppStore(paths.appsDir);
    await apps.init();
    await apps.create('bp-none');
    const svc = new BuildpackService({ plugins: new BuildpackPlugins(buildpacksHome(), paths.buildpacksDir), apps, paths, docker: undefined as never, config: undefined as never, stackImage: () => 'unused' });
    expect(await svc.forApp('bp-none')).toEqual({ app: 'bp-none', mode: 'detect', buildpacks: [...BUILTIN_BUILDPACKS], commit: null });
  });
});

describe('built-in buildpacks declare what they need (buildpacks/builtins.ts)', () => {
  it('node needs npm, python needs pypi, static nothing; each need once, pypi checked first', () => {
    expect(mirrorNeeds([{ name: 'node' }])).toEqual(['npm']);
    expect(mirrorNeeds([{ name: 'python' }])).toEqual(['pypi']);
    expect(mirrorNeeds([{ name: 'static' }])).toEqual([]);
    expect(mirrorNeeds([{ name: 'node' }, { name: 'python' }, { name: 'static' }, { name: 'node' }])).toEqual(['pypi', 'npm']);
  });

  it('installed and fetched buildpacks declare nothing; one replacing a built-in keeps its declaration', async () => {
    expect(mirrorNeeds([{ name: 'hoist' }, { name: 'my-node' }])).toEqual([]);
    expect(declarationOf('hoist')).toBeNull();
    // An installed `node` (buildpacks:install --force) takes the built-in's place, needs included.
    const installed = path.join(tmp, 'installed-node');
    await fs.mkdir(path.join(installed, 'node'), { recursive: true });
    const refs = await directoryCatalog(new BuildpackPlugins(buildpacksHome(), installed)).list();
    expect(refs.find((r) => r.name === 'node')!.dir).toBe(path.join(installed, 'node'));
    expect(mirrorNeeds(refs)).toEqual(['pypi', 'npm']);
  });

  it('every built-in folder has a declaration and every declaration a folder', async () => {
    const folders = (await fs.readdir(buildpacksHome(), { withFileTypes: true }))
      .filter((e) => e.isDirectory() && e.name !== 'mirror')
      .map((e) => e.name)
      .sort();
    expect(BUILTIN_DECLARATIONS.map((d) => d.name).sort()).toEqual(folders);
  });

  it('release layers: the declared folders plus the Heroku conventions, sorted', () => {
    expect(releaseLayers()).toEqual({ runtime: ['.heroku', '.slipway'], dependency: ['.venv', 'node_modules', 'vendor'] });
    expect(CONVENTIONAL_LAYERS).toEqual({ runtimeDirs: ['.heroku'], dependencyDirs: ['vendor'] });
    // A declaration adds its folders; order of declarations does not matter.
    const extra = { name: 'ruby', mirror: [], runtimeDirs: ['.rubies'], dependencyDirs: ['.bundle'], runtimes: [] };
    expect(releaseLayers([extra, ...BUILTIN_DECLARATIONS])).toEqual(releaseLayers([...BUILTIN_DECLARATIONS, extra]));
    expect(releaseLayers([extra]).dependency).toEqual(['.bundle', 'vendor']);
  });
});
