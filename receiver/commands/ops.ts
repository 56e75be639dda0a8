import { parseAppName } from '../../core/app-name.js';
import { usageError } from '../../core/errors.js';
import type { Release } from '../../core/store.js';
import { json, shellQuote, table } from './output.js';
import type { Command, CommandIO } from './types.js';

const CONFIG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PROCESS_TYPE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A ceiling on one type's scale, so a typo (web=1000) cannot exhaust the host. */
export const MAX_SCALE = 100;

const show = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

function checkKey(key: string): string {
  if (!CONFIG_KEY.test(key)) throw usageError(`invalid config key ${show(key)}: use letters, digits and _, not starting with a digit`);
  return key;
}

/** `K=V` arguments -> vars. All are checked before anything changes; the value may be empty or hold `=`. */
export function parseAssignments(args: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === -1) throw usageError(`expected KEY=VALUE, got ${show(arg)}: quote values with spaces, e.g. 'GREETING=hello world'`);
    const key = checkKey(arg.slice(0, eq));
    const value = arg.slice(eq + 1);
    // The engine passes the environment as C strings: a NUL would silently cut the value.
    if (value.includes('\0')) throw usageError(`the value of ${key} contains a NUL byte`);
    vars[key] = value;
  }
  return vars;
}

export function parseKeys(args: readonly string[]): string[] {
  return [...new Set(args.map(checkKey))];
}

/** `web=3 worker=2` -> counts; at most MAX_SCALE per type. */
export function parseScale(args: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const arg of args) {
    const m = /^([^=]*)=(.*)$/.exec(arg);
    if (!m) throw usageError(`expected <type>=<count>, got ${show(arg)}: e.g. web=3 worker=1`);
    const [, type, n] = m as unknown as [string, string, string];
    if (!PROCESS_TYPE.test(type)) throw usageError(`invalid process type ${show(type)}: e.g. web or worker`);
    if (!/^[0-9]{1,4}$/.test(n) || Number(n) > MAX_SCALE) throw usageError(`invalid count for ${type}: ${show(n)}: use a whole number from 0 to ${MAX_SCALE}`);
    counts[type] = Number(n);
  }
  return counts;
}

/** `memory=512m cpus=1.5`; an empty value (`memory=`) removes that limit. */
export function parseLimits(args: readonly string[]): { memory?: string | null; cpus?: number | null } {
  const limits: { memory?: string | null; cpus?: number | null } = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? '' : arg.slice(eq + 1);
    if (eq === -1) throw usageError(`expected memory=<size> or cpus=<n>, got ${show(arg)}`);
    if (key === 'memory') {
      const m = /^([0-9]{1,7})([kmg]?)$/i.exec(value);
      if (value !== '' && !m) throw usageError(`invalid memory ${show(value)}: use a size such as 512m or 2g`);
      // Docker refuses less than 6 MiB; below that a container cannot even start.
      if (m && Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()] ?? 1) < 6 * 1024 ** 2) {
        throw usageError(`memory ${show(value)} is too small: use at least 6m`);
      }
      limits.memory = value === '' ? null : value.toLowerCase();
    } else if (key === 'cpus') {
      if (value !== '' && (!/^[0-9]{1,4}(\.[0-9]{1,2})?$/.test(value) || Number(value) < 0.01)) {
        throw usageError(`invalid cpus ${show(value)}: use a number such as 0.5 or 2`);
      }
      limits.cpus = value === '' ? null : Number(value);
    } else {
      throw usageError(`unknown limit ${show(key)}: use memory=<size> or cpus=<n>`);
    }
  }
  return limits;
}

/** `v3` or `3` -> 3. */
export function parseVersion(text: string): number {
  const m = /^v?([0-9]{1,9})$/.exec(text);
  if (!m || Number(m[1]) < 1) throw usageError(`invalid release ${show(text)}: use v<N> as listed by \`slipway releases\``);
  return Number(m[1]);
}

const noRestart = { 'no-restart': { type: 'boolean' } } as const;
const jsonFlag = { json: { type: 'boolean' } } as const;
const progress = (io: CommandIO) => (text: string) => io.out(text);

export function releaseRow(r: Release, current: number | null) {
  return {
    version: r.version,
    current: r.version === current,
    createdAt: r.createdAt,
    by: r.by,
    description: r.description,
    image: r.imagePruned ? null : r.image,
    imagePruned: r.imagePruned === true,
    commit: r.commit,
    configHash: r.configHash,
  };
}

export const opsCommands: Command[] = [
  {
    name: 'config',
    access: 'app:manage',
    usage: '<app> [--json|--shell]',
    summary: 'Show an app\'s config vars (KEY=VALUE, values quoted as sh reads them; --shell: export lines)',
    flags: { ...jsonFlag, shell: { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = await platform.apps.get(parseAppName(positionals[0]!));
      const keys = Object.keys(app.config).sort();
      if (flags.json && flags.shell) throw usageError('config: choose --json or --shell, not both');
      if (flags.json) {
        io.out(json(Object.fromEntries(keys.map((k) => [k, app.config[k]]))));
        return;
      }
      if (flags.shell) {
        io.out(keys.map((k) => `export ${k}=${shellQuote(app.config[k]!, { always: true })}\n`).join(''));
        return;
      }
      if (keys.length === 0) {
        io.out(`no config vars: set some with \`slipway config:set ${app.name} KEY=VALUE\`\n`);
        return;
      }
      // Quoted as sh would read it back, so a value with a newline or `=` has one reading.
      io.out(keys.map((k) => `${k}=${shellQuote(app.config[k]!)}\n`).join(''));
    },
  },
  {
    name: 'config:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: `keys=${positionals.slice(1).map((a) => a.split('=')[0]).join(',')}` }),
    usage: '<app> KEY=VALUE... [--no-restart]',
    summary: 'Set config vars: makes a new release and restarts the app without downtime',
    flags: noRestart,
    args: [2, 1000],
    async run(io, { positionals, flags }, platform) {
      const [name, ...pairs] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      const set = parseAssignments(pairs);
      await platform.apps.get(app);
      const r = await platform.ops.setConfig(app, { set, unset: [] }, { restart: !flags['no-restart'], actor: io.actor, progress: progress(io) });
      if (r.changed.length === 0) io.out(`-----> No change: ${Object.keys(set).join(', ')} already had those values\n`);
    },
  },
  {
    name: 'config:unset',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: `keys=${positionals.slice(1).join(',')}` }),
    usage: '<app> KEY... [--no-restart]',
    summary: 'Remove config vars: makes a new release and restarts the app without downtime',
    flags: noRestart,
    args: [2, 1000],
    async run(io, { positionals, flags }, platform) {
      const [name, ...keys] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      const unset = parseKeys(keys);
      await platform.apps.get(app);
      const r = await platform.ops.setConfig(app, { set: {}, unset }, { restart: !flags['no-restart'], actor: io.actor, progress: progress(io) });
      if (r.changed.length === 0) io.out(`-----> No change: ${unset.join(', ')} not set\n`);
    },
  },
  {
    name: 'ps:scale',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> <type>=<n>...',
    summary: 'Set how many containers of each process type run; starts or stops only the difference',
    args: [2, 100],
    async run(io, { positionals }, platform) {
      const [name, ...args] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      const counts = parseScale(args);
      await platform.ops.scale(app, counts, progress(io));
    },
  },
  {
    name: 'ps:restart',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> [type]',
    summary: 'Restart an app (or one process type); web without downtime',
    args: [1, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      const type = positionals[1];
      if (type !== undefined && !PROCESS_TYPE.test(type)) throw usageError(`invalid process type ${show(type)}`);
      await platform.ops.restart(app, type, progress(io));
    },
  },
  {
    name: 'ps:stop',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app>',
    summary: 'Stop every container of an app (the router answers 503); `ps:start` brings the same scale back',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.ops.stop(parseAppName(positionals[0]!), progress(io));
    },
  },
  {
    name: 'ps:start',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app>',
    summary: 'Start the containers of an app\'s formation that are not running',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.ops.start(parseAppName(positionals[0]!), progress(io));
    },
  },
  {
    name: 'ps:set',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> [memory=<size>] [cpus=<n>] [--no-restart]',
    summary: 'Set per-container limits (memory=512m cpus=1.5; empty removes); restarts unless --no-restart',
    flags: noRestart,
    args: [2, 3],
    async run(io, { positionals, flags }, platform) {
      const [name, ...args] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      const change = parseLimits(args);
      await platform.apps.get(app);
      const limits = await platform.ops.setLimits(app, change, { restart: !flags['no-restart'], progress: progress(io) });
      io.out(`-----> Limits of ${app}: memory=${limits.memory ?? 'none'} cpus=${limits.cpus ?? 'none'}\n`);
    },
  },
  {
    name: 'releases',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'List an app\'s releases, newest first; * marks the current one',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = await platform.apps.get(parseAppName(positionals[0]!));
      const rows = [...app.releases].sort((a, b) => b.version - a.version).map((r) => releaseRow(r, app.current));
      if (flags.json) {
        io.out(json(rows));
        return;
      }
      if (rows.length === 0) {
        io.out(`no releases yet: deploy with \`git push\`\n`);
        return;
      }
      io.out(
        table([
          ['', 'version', 'created', 'by', 'description', 'image', 'commit', 'config'],
          ...rows.map((r) => [
            r.current ? '*' : '',
            `v${r.version}`,
            r.createdAt.replace(/\.\d+Z$/, 'Z'),
            r.by,
            r.description,
            r.image ?? 'image pruned',
            r.commit?.slice(0, 7) ?? '-',
            r.configHash,
          ]),
        ]),
      );
    },
  },
  {
    name: 'rollback',
    access: 'app:manage',
    audit: ({ positionals }) => ({ app: positionals[0]!, detail: positionals.slice(1).join(' ') }),
    usage: '<app> <vN>',
    summary: 'Run an earlier release again (its image and config, no rebuild) as a new release',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      const version = parseVersion(positionals[1]!);
      await platform.ops.rollback(app, version, { actor: io.actor, progress: progress(io) });
    },
  },
];
