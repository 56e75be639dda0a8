import fs from 'node:fs/promises';
import path from 'node:path';
import { parseAppName } from '../../core/app-name.js';
import { SlipwayError, usageError } from '../../core/errors.js';
import { parseUpstreamUrl, type UpstreamKind } from '../../services/mirror-admin.js';
import { json, table } from './output.js';
import type { Command, CommandIO } from './types.js';

/**
 * Commands that read or write files name files on the server, which an SSH caller can neither
 * see nor should reach: those are for the local admin, and take absolute paths (the daemon, not
 * the caller's shell, resolves them).
 */
function serverPath(io: CommandIO, command: string, file: string): string {
  if (!io.local) throw new SlipwayError('E_USAGE', `${command} reads and writes files on the server: run it there, as \`slipway ${command} ...\``, { exitCode: 2 });
  if (!path.isAbsolute(file)) throw usageError(`${command}: give an absolute path, not "${file.slice(0, 80)}": the server resolves it, not your shell`);
  return file;
}

const localOnly = (io: CommandIO, command: string): void => {
  if (!io.local) throw new SlipwayError('E_USAGE', `${command} changes where the platform fetches code from: run it on the server, as the local admin`, { exitCode: 2 });
};

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const say = (io: CommandIO) => (line: string) => io.out(`${line}\n`);

export const mirrorCommands: Command[] = [
  {
    name: 'mirror:status',
    usage: '[--json]',
    summary: 'Show what the offline package mirror holds, its upstreams and when it last changed',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const s = await platform.mirror.status();
      if (flags.json) {
        io.out(json(s));
        return;
      }
      const up = (k: UpstreamKind) => `${s.upstreams[k].url ?? 'off'} (${s.upstreams[k].from})`;
      io.out(
        table([
          ['mirror', s.dir],
          ['npm packages', `${s.kinds.npm.count} (${mib(s.kinds.npm.bytes)})`],
          ['node runtimes', `${s.kinds.node.count} (${mib(s.kinds.node.bytes)})`],
          ['python files', `${s.kinds.pypi.count} (${mib(s.kinds.pypi.bytes)})`],
          ['npm upstream', up('npm')],
          ['pypi upstream', up('pypi')],
          ['last sync', s.lastSync ?? 'never'],
        ]),
      );
    },
  },
  {
    name: 'mirror:upstream',
    usage: '<npm|pypi> [<url>|off]',
    summary: 'Show or set where missing packages are fetched from before a build (off: strict, airgapped)',
    args: [1, 2],
    async run(io, { positionals }, platform) {
      const [kind, value] = positionals as [string, string | undefined];
      if (kind !== 'npm' && kind !== 'pypi') throw usageError(`mirror:upstream: the kind is npm or pypi, not "${kind.slice(0, 20)}"`);
      if (value !== undefined) {
        localOnly(io, 'mirror:upstream');
        await platform.mirror.setUpstream(kind, value === 'off' ? null : parseUpstreamUrl(value));
      }
      const info = await platform.mirror.upstreamInfo(kind);
      io.out(info.url === null ? `${kind} upstream: off (builds use only the mirror)\n` : `${kind} upstream: ${info.url} (${info.from})\n`);
    },
  },
  {
    name: 'mirror:add',
    usage: 'npm <spec>... | npm --lockfile <package-lock.json|-> | node <version-range> | pypi <file.whl|sdist>...',
    summary: 'Add packages to the mirror: npm specs or a lockfile (via the upstream), a Node.js runtime, Python files',
    flags: { lockfile: { type: 'string' } },
    args: [1, 1000],
    async run(io, { positionals, flags }, platform) {
      const [kind, ...rest] = positionals as [string, ...string[]];
      const progress = say(io);
      const lockfile = flags.lockfile as string | undefined;
      if (lockfile !== undefined && kind !== 'npm') throw usageError('mirror:add: --lockfile goes with npm');
      switch (kind) {
        case 'npm': {
          if (lockfile !== undefined) {
            if (rest.length > 0) throw usageError('mirror:add npm --lockfile <file> takes no package specs');
            const text = lockfile === '-' ? await io.readStdin() : await readServerFile(serverPath(io, 'mirror:add', lockfile));
            const r = await platform.mirror.addLockfile(text, progress, io.signal);
            io.out(`-----> Mirror has all ${r.fetched + r.present} packages (${r.fetched} fetched, ${r.present} already present)\n`);
            return;
          }
          if (rest.length === 0) throw usageError('usage: slipway mirror:add npm <name[@version|range]>...');
          const added = await platform.mirror.addNpm(rest, progress, io.signal);
          io.out(`-----> In the mirror: ${added.join(', ')}\n`);
          return;
        }
        case 'node': {
          if (rest.length !== 1) throw usageError('usage: slipway mirror:add node <version-range>');
          const r = await platform.mirror.addNode(rest[0]!, progress, io.signal);
          io.out(`-----> In the mirror: Node.js ${r.node}, npm ${r.npm}\n`);
          return;
        }
        case 'pypi': {
          if (rest.length === 0) throw usageError('usage: slipway mirror:add pypi <file.whl|sdist>...');
          const files = rest.map((f) => serverPath(io, 'mirror:add pypi', f));
          io.out(`-----> Adding ${files.length} Python file${files.length === 1 ? '' : 's'}\n`);
          await platform.mirror.addPypi(files, progress);
          io.out('-----> Done\n');
          return;
        }
        default:
          throw usageError(`mirror:add: the kind is npm, node or pypi, not "${kind.slice(0, 20)}"`);
      }
    },
  },
  {
    name: 'mirror:export',
    usage: '<file> [--since <date>]',
    summary: 'Write the mirror (or what was added since a date) to one verified tar, to carry to an airgapped site',
    flags: { since: { type: 'string' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const file = serverPath(io, 'mirror:export', positionals[0]!);
      let since: Date | null = null;
      if (typeof flags.since === 'string') {
        since = new Date(flags.since);
        if (Number.isNaN(since.getTime())) throw usageError(`mirror:export: --since needs a date such as 2026-01-31 or 2026-01-31T12:00:00Z, not "${flags.since.slice(0, 40)}"`);
      }
      await platform.mirror.exportBundle(file, since, say(io));
    },
  },
  {
    name: 'mirror:import',
    usage: '<file>',
    summary: 'Add a bundle made by mirror:export; every checksum is verified before anything becomes visible',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.mirror.importBundle(serverPath(io, 'mirror:import', positionals[0]!), say(io));
    },
  },
  {
    name: 'stack:export',
    usage: '<file>',
    summary: 'Save the stack image to a file, to carry to an airgapped site',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.mirror.exportStack(serverPath(io, 'stack:export', positionals[0]!), say(io));
    },
  },
  {
    name: 'stack:import',
    usage: '<file>',
    summary: 'Load a stack image saved by stack:export (refused unless it is this version\'s stack)',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.mirror.importStack(serverPath(io, 'stack:import', positionals[0]!), say(io));
    },
  },
  {
    name: 'apps:purge-cache',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app>',
    summary: 'Clear an app\'s build cache; its next build installs dependencies from scratch',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      const had = await platform.mirror.purgeCache(app);
      io.out(had ? `-----> Cleared the build cache of ${app}\n` : `-----> ${app} has no build cache\n`);
    },
  },
];

const MAX_LOCKFILE = 64 * 1024 * 1024;

async function readServerFile(file: string): Promise<string> {
  const st = await fs.stat(file).catch(() => null);
  if (!st?.isFile()) throw new SlipwayError('E_MIRROR', `no such file: ${file}`);
  if (st.size > MAX_LOCKFILE) throw new SlipwayError('E_MIRROR', `${file} is too large to be a lockfile`);
  return fs.readFile(file, 'utf8');
}
