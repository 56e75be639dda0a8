import { can, type Actor } from '../../core/access.js';
import { parseAppName } from '../../core/app-name.js';
import { SlipwayError, usageError } from '../../core/errors.js';
import { parseLinkVar, parseServiceName, serviceAccess, serviceNotFound, SERVICE_KINDS, type ServiceKind, type ServiceRecord } from '../../core/service-store.js';
import { authorize, callerOf, originOf, permissionDenied } from './caller.js';
import { Writable } from 'node:stream';
import { lineCount } from './life.js';
import { json, table } from './output.js';
import type { Command, CommandIO, Platform } from './types.js';

const jsonFlag = { json: { type: 'boolean' } } as const;
const line = (io: CommandIO) => (text: string) => io.out(text.endsWith('\n') ? text : `${text}\n`);

/**
 * The service the caller names, if the caller may act on it: admins and its owners. Others get
 * the answer a missing service gets, so existence does not leak (like apps: core/access.ts).
 */
function ownedService(io: CommandIO, platform: Platform, kind: ServiceKind, raw: string): { service: ServiceRecord; actor: Actor } {
  const name = parseServiceName(raw);
  const actor = callerOf(io, platform);
  const service = platform.services.store.find(kind, name);
  if (!service) throw serviceNotFound(kind, name);
  const decision = can(actor, 'app:manage', serviceAccess(service));
  if (decision === 'not-found') throw serviceNotFound(kind, name);
  if (decision === 'denied') throw permissionDenied(`${actor.name} (${actor.role}) may not change ${kind} ${name}: ask one of its owners or an admin`);
  return { service, actor };
}

/**
 * The service `connect` may open: for its owners and admins, and for those who may change an app
 * linked to it (README "Services"). An owner of either without the role for it is told no;
 * anyone else gets the answer a missing service gets, so existence does not leak.
 */
function connectableService(io: CommandIO, platform: Platform, kind: ServiceKind, raw: string): ServiceRecord {
  const name = parseServiceName(raw);
  const actor = callerOf(io, platform);
  const service = platform.services.store.find(kind, name);
  if (!service) throw serviceNotFound(kind, name);
  const accesses = [serviceAccess(service), ...platform.services.store.links(kind, name).map((l) => platform.users.access(l.app))];
  if (accesses.some((a) => can(actor, 'app:manage', a) === 'allow')) return service;
  if (accesses.some((a) => a.owners.includes(actor.name))) throw permissionDenied(`${actor.name} (${actor.role}) may not connect to ${kind} ${name}: it takes a developer or admin who owns the service or an app linked to it`);
  throw serviceNotFound(kind, name);
}

/** `io.err` as a stream, for a program's standard error; characters split across chunks stay whole. */
function errStream(io: CommandIO): NodeJS.WritableStream {
  const decoder = new TextDecoder();
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      io.err(decoder.decode(chunk, { stream: true }));
      done();
    },
  });
}

const size = (bytes: number): string => (bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);

function stdoutOf(io: CommandIO): NodeJS.WritableStream {
  if (!io.stdout) throw new SlipwayError('E_USAGE', 'this command writes binary data: run it from the slipway CLI or over ssh', { exitCode: 2 });
  return io.stdout;
}

function stdinOf(io: CommandIO, command: string): NodeJS.ReadableStream {
  if (!io.stdin) throw usageError(`${command} reads a dump on standard input: \`slipway ${command} <name> < file\``);
  return io.stdin;
}

function commandsFor(kind: ServiceKind): Command[] {
  const urlVar = kind === 'postgres' ? 'DATABASE_URL' : 'REDIS_URL';
  const dumpWord = kind === 'postgres' ? 'a pg_dump custom-format archive' : 'an RDB file';
  return [
    {
      name: `${kind}:create`,
      access: 'app:create',
      usage: '<name>',
      summary: `Create a ${kind} service (you own it); builds its image on first use`,
      args: [1, 1],
      async run(io, { positionals }, platform) {
        const name = parseServiceName(positionals[0]!);
        const actor = callerOf(io, platform);
        await platform.services.create(kind, name, { origin: originOf(io), owner: actor.name, progress: line(io) });
      },
    },
    {
      name: `${kind}:list`,
      access: 'any',
      usage: '[--json]',
      summary: `List the ${kind} services you may manage`,
      flags: jsonFlag,
      args: [0, 0],
      async run(io, { flags }, platform) {
        const actor = callerOf(io, platform);
        const mine = platform.services.list(kind).filter((s) => can(actor, 'app:manage', serviceAccess(s)) === 'allow');
        const rows = mine.map((s) => ({ name: s.name, links: platform.services.store.links(kind, s.name).map((l) => l.app), owners: s.owners, createdAt: s.createdAt }));
        if (flags.json) {
          io.out(json(rows));
          return;
        }
        if (rows.length === 0) {
          io.out(`no ${kind} services: create one with \`slipway ${kind}:create <name>\`\n`);
          return;
        }
        io.out(table([['NAME', 'LINKED APPS', 'OWNERS'], ...rows.map((r) => [r.name, r.links.join(',') || '-', r.owners.join(',')])]));
      },
    },
    {
      name: `${kind}:info`,
      access: 'any',
      usage: '<name> [--json] [--reveal]',
      summary: `Show a ${kind} service: status, version, linked apps, data size, URL (password masked unless --reveal)`,
      flags: { ...jsonFlag, reveal: { type: 'boolean' } },
      args: [1, 1],
      async run(io, { positionals, flags }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        const info = await platform.services.info(kind, service.name, { reveal: flags.reveal === true });
        if (flags.json) {
          io.out(json(info));
          return;
        }
        io.out(
          table([
            ['name', info.name],
            ['status', `${info.status}${info.health ? ` (${info.health})` : ''}`],
            ['version', info.version ?? '-'],
            ['linked apps', info.links.map((l) => `${l.app} (${l.var})`).join(', ') || '-'],
            ['data', size(info.dataBytes)],
            ['url', info.url],
            ['owners', info.owners.join(', ')],
            ['created', info.createdAt],
          ]),
        );
      },
    },
    {
      name: `${kind}:logs`,
      access: 'any',
      usage: '<name> [-n N] [--follow]',
      summary: `Show the ${kind} server's output (the last N lines, default 100); --follow streams new lines`,
      flags: { n: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' } },
      args: [1, 1],
      async run(io, { positionals, flags }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        const lines = lineCount(flags.n as string | undefined, `${kind}:logs`);
        await platform.services.logs(kind, service.name, { lines, follow: flags.follow === true, signal: io.signal, write: (text) => io.out(text) });
      },
    },
    {
      name: `${kind}:destroy`,
      access: 'any',
      usage: '<name> --force',
      summary: `Destroy a ${kind} service and its data (refused while linked; backups stay)`,
      flags: { force: { type: 'boolean' } },
      args: [1, 1],
      async run(io, { positionals, flags }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        if (!flags.force) throw usageError(`this deletes ${kind} ${service.name} and its data: run \`slipway ${kind}:destroy ${service.name} --force\``);
        await platform.services.destroy(kind, service.name, { origin: originOf(io), progress: line(io) });
      },
    },
    {
      name: `${kind}:link`,
      access: 'any',
      usage: '<name> <app> [--as VAR]',
      summary: `Give an app ${urlVar} (or --as VAR) and a private network to the service; a new release`,
      flags: { as: { type: 'string' } },
      args: [2, 2],
      async run(io, { positionals, flags }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        const app = parseAppName(positionals[1]!);
        // Linking needs rights on both: the service (above) and the app.
        await authorize(io, platform, 'app:manage', app);
        const as = flags.as === undefined ? undefined : parseLinkVar(flags.as as string);
        await platform.services.link(kind, service.name, app, { ...(as ? { as } : {}), origin: originOf(io), progress: line(io) });
      },
    },
    {
      name: `${kind}:unlink`,
      access: 'any',
      usage: '<name> <app>',
      summary: `Remove the app's variable and network to the service; a new release`,
      args: [2, 2],
      async run(io, { positionals }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        const app = parseAppName(positionals[1]!);
        await authorize(io, platform, 'app:manage', app);
        await platform.services.unlink(kind, service.name, app, { origin: originOf(io), progress: line(io) });
      },
    },
    {
      name: `${kind}:export`,
      access: 'any',
      usage: '<name> > file',
      summary: `Write ${dumpWord} of the service to standard output`,
      args: [1, 1],
      binaryOut: true,
      async run(io, { positionals }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        await platform.services.export(kind, service.name, stdoutOf(io));
      },
    },
    {
      name: `${kind}:import`,
      access: 'any',
      usage: '<name> < file',
      summary: `Replace the service's data with ${dumpWord} from standard input (the current data is backed up first)`,
      args: [1, 1],
      streamIn: true,
      async run(io, { positionals }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        await platform.services.import(kind, service.name, stdinOf(io, `${kind}:import`), line(io));
        io.out(`-----> Imported into ${kind} ${service.name}\n`);
      },
    },
    {
      name: `${kind}:backup`,
      access: 'any',
      usage: '<name>',
      summary: `Write a timestamped backup under SLIPWAY_HOME/backups/${kind}/<name>/ (the newest N are kept)`,
      args: [1, 1],
      async run(io, { positionals }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        await platform.services.backup(kind, service.name, line(io));
      },
    },
    {
      name: `${kind}:backups`,
      access: 'any',
      usage: '<name> [--json]',
      summary: `List the backups of a ${kind} service`,
      flags: jsonFlag,
      args: [1, 1],
      async run(io, { positionals, flags }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        const list = await platform.services.backups(kind, service.name);
        if (flags.json) {
          io.out(json(list));
          return;
        }
        if (list.length === 0) {
          io.out(`no backups of ${kind} ${service.name}: make one with \`slipway ${kind}:backup ${service.name}\`\n`);
          return;
        }
        io.out(table([['ID', 'SIZE', 'CREATED'], ...list.map((b) => [b.id, size(b.bytes), b.createdAt])]));
      },
    },
    {
      name: `${kind}:connect`,
      access: 'any',
      usage: '<name>',
      summary: `Run ${kind === 'postgres' ? 'psql' : 'redis-cli'} on the service: interactive at a terminal (\`ssh -t\`), else it reads standard input`,
      args: [1, 1],
      terminal: true,
      async run(io, { positionals }, platform) {
        const service = connectableService(io, platform, kind, positionals[0]!);
        if (!io.stdin) throw usageError(`${kind}:connect needs standard input: run it from the slipway CLI or over ssh`);
        const stdin = io.stdin;
        platform.users.audit(originOf(io), `${kind}:connect`, null, `service=${service.name}${io.terminal ? ' tty' : ''}`);
        return platform.services.connect(kind, service.name, { stdin, stdout: stdoutOf(io), stderr: errStream(io), signal: io.signal, ...(io.terminal ? { terminal: io.terminal } : {}) });
      },
    },
    {
      name: `${kind}:restore`,
      access: 'any',
      usage: '<name> <backup-id>',
      summary: 'Replace the data with a backup (the current data is backed up first)',
      args: [2, 2],
      async run(io, { positionals }, platform) {
        const { service } = ownedService(io, platform, kind, positionals[0]!);
        await platform.services.restore(kind, service.name, positionals[1]!, line(io));
        io.out(`-----> Restored ${kind} ${service.name} from ${positionals[1]}\n`);
      },
    },
  ];
}

/**
 * `services <app>`: the services linked to an app, for those who manage the app (its owners need
 * not own the services). The App Manager's Services section reads it; no password is shown.
 */
const linkedServices: Command = {
  name: 'services',
  access: 'app:manage',
  usage: '<app> [--json]',
  summary: 'List the Postgres and Redis services linked to an app: kind, name, variable, condition',
  flags: jsonFlag,
  args: [1, 1],
  async run(io, { positionals, flags }, platform) {
    const app = parseAppName(positionals[0]!);
    await platform.apps.get(app);
    const rows = await Promise.all(
      platform.services.store.linksOfApp(app).map(async (l) => ({ kind: l.kind, name: l.name, var: l.var, condition: await platform.services.condition(l.kind, l.name), linkedAt: l.createdAt })),
    );
    if (flags.json) {
      io.out(json(rows));
      return;
    }
    if (rows.length === 0) {
      io.out(`no services linked to ${app}: \`slipway postgres:link <name> ${app}\` links one\n`);
      return;
    }
    io.out(table([['KIND', 'NAME', 'VARIABLE', 'CONDITION'], ...rows.map((r) => [r.kind, r.name, r.var, r.condition])]));
  },
};

export const serviceCommands: Command[] = [...SERVICE_KINDS.flatMap(commandsFor), linkedServices];
