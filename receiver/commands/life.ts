import { parseAppName } from '../../core/app-name.js';
import { usageError } from '../../core/errors.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

const MAX_LINES = 100_000;
const TYPE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;

/** `-n` of a logs command (`logs`, `postgres:logs`): 100 when absent. */
export function lineCount(text: string | undefined, command = 'logs'): number {
  if (text === undefined) return 100;
  if (!/^[0-9]{1,6}$/.test(text) || Number(text) > MAX_LINES) throw usageError(`${command}: -n takes a number of lines from 0 to ${MAX_LINES}`);
  return Number(text);
}

function duration(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

export const lifeCommands: Command[] = [
  {
    name: 'logs',
    access: 'app:manage',
    usage: '<app> [-n N] [--follow] [--type <process-type>|router]',
    summary: 'Show an app\'s output, all containers merged in time order; --follow streams new lines; --type router: its requests at the router',
    flags: { n: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, type: { type: 'string' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = parseAppName(positionals[0]!);
      const lines = lineCount(flags.n as string | undefined);
      const type = flags.type as string | undefined;
      if (type !== undefined && !TYPE_NAME.test(type)) throw usageError(`logs: --type takes a process type such as web or worker`);
      await platform.life.logs(app, { lines, follow: flags.follow === true, ...(type === undefined ? {} : { type }) }, io);
    },
  },
  {
    name: 'builds',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'List an app\'s builds, newest first: id, commit, status, duration, start, buildpacks',
    flags: { json: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = await platform.apps.get(parseAppName(positionals[0]!));
      const builds = [...app.builds].reverse();
      if (flags.json) {
        io.out(json(builds));
        return;
      }
      if (builds.length === 0) {
        io.out(`no builds yet: push to deploy (git push slipway main)\n`);
        return;
      }
      io.out(
        table([
          ['ID', 'COMMIT', 'STATUS', 'DURATION', 'STARTED', 'BUILDPACKS'],
          ...builds.map((b) => [b.id, b.commit.slice(0, 7), b.status, duration(b.durationMs), b.startedAt, b.buildpacks.join(',') || '-']),
        ]),
      );
    },
  },
  {
    name: 'builds:log',
    access: 'app:manage',
    usage: '<app> [<build-id>] [--follow]',
    summary: 'Print the full log of a build (default: the latest); --follow streams a running build to its end (for a deploy, until the processes it replaced are gone)',
    flags: { follow: { type: 'boolean', short: 'f' } },
    args: [1, 2],
    async run(io, { positionals, flags }, platform) {
      const app = parseAppName(positionals[0]!);
      if (flags.follow) {
        await platform.life.followBuildLog(app, positionals[1], io);
        return;
      }
      const { text } = await platform.life.buildLog(app, positionals[1]);
      io.out(text);
    },
  },
];
