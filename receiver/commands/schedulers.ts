import { parseAppName } from '../../core/app-name.js';
import { usageError } from '../../core/errors.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../../core/store.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

const isScheduler = (s: string): s is SchedulerName => (SCHEDULER_NAMES as readonly string[]).includes(s);

/** `scheduler`, `scheduler:set`, `nodes:list`, `nodes:join-command` (contract "Schedulers"). */
export const schedulerCommands: Command[] = [
  {
    name: 'scheduler',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'Show what runs an app\'s processes: docker-local or docker-swarm',
    flags: { json: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = await platform.apps.get(parseAppName(positionals[0]!));
      const name = app.scheduler ?? 'docker-local';
      io.out(flags.json ? json({ app: app.name, scheduler: name }) : `${name}\n`);
    },
  },
  {
    name: 'scheduler:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals[1] ?? '' }),
    usage: `<app> ${SCHEDULER_NAMES.join('|')}`,
    summary: 'Move an app to another scheduler: its release is deployed there and routed before the old processes stop',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      const target = positionals[1]!;
      if (!isScheduler(target)) throw usageError(`unknown scheduler ${JSON.stringify(target.slice(0, 40))}: use ${SCHEDULER_NAMES.join(' or ')}`);
      await platform.ops.setScheduler(app, target, (text) => io.out(text));
    },
  },
  {
    name: 'nodes:list',
    usage: '[--json]',
    summary: 'List the swarm\'s nodes: hostname, role, state, availability',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const nodes = await platform.nodes();
      if (flags.json) io.out(json(nodes));
      else io.out(table([['HOSTNAME', 'ROLE', 'STATE', 'AVAILABILITY', 'ADDRESS'], ...nodes.map((n) => [n.hostname + (n.leader ? ' *' : ''), n.role, n.state, n.availability, n.address])]));
    },
  },
  {
    name: 'nodes:join-command',
    usage: '',
    summary: 'Print the command a new machine runs to join the swarm as a worker (it holds a secret token)',
    args: [0, 0],
    async run(io, _parsed, platform) {
      io.out(`${(await platform.joinCommand()).join(' ')}\n`);
    },
  },
];
