import fs from 'node:fs/promises';
import path from 'node:path';
import { parseAppName } from '../../core/app-name.js';
import { SlipwayError, usageError } from '../../core/errors.js';
import { MAX_BUILDPACK_BYTES } from '../../buildpacks/plugins.js';
import { json, table } from './output.js';
import type { Command, CommandIO } from './types.js';

const jsonFlag = { json: { type: 'boolean' } } as const;

/** A server path: only the local admin names one (over SSH the caller cannot see the server's files). */
function localPath(io: CommandIO, command: string, p: string): string {
  if (!io.local) throw new SlipwayError('E_BUILDPACK', `${command} with a path works only for the local admin on the server${command === 'buildpacks:install' ? '; over SSH send a tarball: ssh ... buildpacks:install - --name N < bp.tgz' : ''}`);
  if (!path.isAbsolute(p)) throw new SlipwayError('E_BUILDPACK', `${command}: give an absolute path, not ${JSON.stringify(p.slice(0, 100))}`);
  return p;
}

const isTarball = (p: string) => /\.(tgz|tar\.gz)$/.test(p);

export const buildpackCommands: Command[] = [
  {
    name: 'buildpacks:list',
    access: 'any',
    usage: '[--json]',
    summary: 'List buildpacks in detection order: name, source, version',
    flags: jsonFlag,
    args: [0, 0],
    async run(io, { flags }, platform) {
      const list = await platform.buildpacks.list();
      if (flags.json) {
        io.out(json(list.map(({ name, source, version, overrides }) => ({ name, source, version, overrides }))));
        return;
      }
      io.out(table([['NAME', 'SOURCE', 'VERSION'], ...list.map((b) => [b.name, b.overrides ? `${b.source} (replaces the built-in)` : b.source, b.version])]));
    },
  },
  {
    name: 'buildpacks:install',
    usage: '<dir|tarball|-> [--name N] [--force]',
    summary: 'Install a buildpack from a folder or .tgz on the server, or a .tgz on stdin (-)',
    flags: { name: { type: 'string' }, force: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const src = positionals[0]!;
      const name = typeof flags.name === 'string' ? flags.name : undefined;
      const force = flags.force === true;
      let result;
      if (src === '-') {
        if (!name) throw usageError('buildpacks:install -: a tarball on stdin has no file name: pass --name N');
        if (!io.readStdinBytes) throw new SlipwayError('E_BUILDPACK', 'buildpacks:install - reads a tarball over SSH; locally, pass the path of the folder or .tgz');
        io.out('-----> Receiving the buildpack tarball\n');
        const tarball = await io.readStdinBytes(MAX_BUILDPACK_BYTES);
        result = await platform.buildpacks.install({ tarball, name, force, source: `stdin (${io.actor})` });
      } else {
        const p = localPath(io, 'buildpacks:install', src);
        if (isTarball(p)) {
          const st = await fs.stat(p).catch(() => null);
          if (!st?.isFile()) throw new SlipwayError('E_BUILDPACK', `no such file: ${p}`);
          if (st.size > MAX_BUILDPACK_BYTES) throw new SlipwayError('E_TOO_LARGE', `${p} is larger than ${MAX_BUILDPACK_BYTES / 1024 / 1024} MiB`);
          result = await platform.buildpacks.install({ tarball: await fs.readFile(p), tarballName: path.basename(p), name, force, source: p });
        } else {
          result = await platform.buildpacks.install({ dir: p, name, force, source: p });
        }
      }
      const { info, replaced } = result;
      io.out(`-----> ${replaced ? 'Replaced' : 'Installed'} buildpack ${info.name} (${info.version})${info.overrides ? ', in place of the built-in' : ''}\n`);
      io.out(`       use it: echo ${info.name} > .buildpacks, or slipway buildpacks:set <app> ${info.name}\n`);
    },
  },
  {
    name: 'buildpacks',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'Show which buildpacks the next deploy of an app uses',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const info = await platform.buildpacks.forApp(parseAppName(positionals[0]!));
      if (flags.json) {
        io.out(json(info));
        return;
      }
      const at = info.commit ? ` (at ${info.commit.slice(0, 7)})` : '';
      if (info.mode === 'buildpacks:set') io.out(`pinned by buildpacks:set:\n${info.buildpacks.map((b) => `  ${b}\n`).join('')}`);
      else if (info.mode === '.buildpacks') io.out(`pinned by .buildpacks${at}:\n${info.buildpacks.map((b) => `  ${b}\n`).join('')}`);
      else if (info.mode === 'dockerfile') io.out(`builds with its Dockerfile${at}; pin buildpacks to use them instead\n`);
      else io.out(`detected from: ${info.buildpacks.join(', ')}\n`);
    },
  },
  {
    name: 'buildpacks:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> <buildpack>...',
    summary: 'Pin an app\'s buildpacks, in order (names or https/git URLs); overrides .buildpacks',
    args: [2, 20],
    async run(io, { positionals }, platform) {
      const [rawApp, ...entries] = positionals as [string, ...string[]];
      const app = parseAppName(rawApp);
      await platform.buildpacks.set(app, entries);
      io.out(`-----> ${app} now builds with: ${entries.join(', ')} (from the next push)\n`);
    },
  },
  {
    name: 'buildpacks:clear',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app>',
    summary: 'Unpin an app\'s buildpacks: .buildpacks, a Dockerfile or detection decide again',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.buildpacks.clear(app);
      io.out(`-----> ${app} no longer pins buildpacks (from the next push)\n`);
    },
  },
  {
    name: 'buildpacks:new',
    usage: '<name> [dir]',
    summary: 'Write a working buildpack skeleton to start from (local admin)',
    args: [1, 2],
    async run(io, { positionals }, platform) {
      const [name, dirArg] = positionals as [string, string | undefined];
      const dir = localPath(io, 'buildpacks:new', dirArg ?? '');
      const files = await platform.buildpacks.scaffold(name, dir);
      io.out(`-----> Wrote buildpack ${name} in ${dir}\n${files.map((f) => `       ${f}\n`).join('')}`);
      io.out(`       try it: slipway buildpacks:test ${dir} <app-dir>\n`);
    },
  },
  {
    name: 'buildpacks:test',
    usage: '<buildpack-dir> <app-dir>',
    summary: 'Run a buildpack over an app folder as a deploy would, offline, without creating an app (local admin)',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const [bp, app] = positionals.map((p) => localPath(io, 'buildpacks:test', p)) as [string, string];
      const report = await platform.buildpacks.test({ buildpackDir: bp, appDir: app, out: io.out, signal: io.signal });
      const types = Object.entries(report.processTypes);
      io.out(`-----> Process types${report.fromProcfile ? ' (from the app\'s Procfile)' : ' (bin/release defaults)'}: ${types.length === 0 ? 'none: the app needs a Procfile' : ''}\n`);
      for (const [type, command] of types) io.out(`       ${type}: ${command}\n`);
      for (const [k, v] of Object.entries(report.configVars)) io.out(`       default config ${k}=${v}\n`);
      io.out(`-----> Buildpack test passed in ${report.seconds.toFixed(1)} s\n`);
    },
  },
];

/**
 * The daemon does not share the CLI's working directory, so the CLI turns the path arguments of
 * these commands into absolute paths before sending them (`buildpacks:new <name>` gets ./<name>).
 */
export function absolutePathArgs(argv: string[], cwd: string): string[] {
  const [name, ...rest] = argv;
  const pathPositions: Record<string, number[]> = { 'buildpacks:install': [0], 'buildpacks:new': [1], 'buildpacks:test': [0, 1] };
  const positions = name === undefined ? undefined : pathPositions[name];
  if (!positions) return argv;
  const out = [name!];
  let positional = 0;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--name') {
      out.push(arg);
      if (i + 1 < rest.length) out.push(rest[++i]!);
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      out.push(arg);
      continue;
    }
    out.push(positions.includes(positional) && arg !== '-' ? path.resolve(cwd, arg) : arg);
    positional++;
  }
  if (name === 'buildpacks:new' && positional === 1) out.push(path.resolve(cwd, out[out.length - 1]!));
  return out;
}
