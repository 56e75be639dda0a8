import { usageError } from '../../core/errors.js';
import { hashPassword, passwordFromStdin } from '../../core/passwords.js';
import { checkEmail, checkPrincipalName, parseAccessLevel, parseRole } from '../../core/users.js';
import { parseAppName } from '../../core/app-name.js';
import { callerOf, originOf, permissionDenied } from './caller.js';
import { json, table } from './output.js';
import type { Command, CommandIO, Platform } from './types.js';

const jsonFlag = { json: { type: 'boolean' } } as const;
const user = (text: string) => checkPrincipalName(text, 'user');
const group = (text: string) => checkPrincipalName(text, 'group');

/** `--password-stdin` only: a password in argv would show in `ps` and shell history. */
async function passwordOf(io: CommandIO, flags: Record<string, unknown>, command: string): Promise<string> {
  if (flags['password-stdin'] !== true) throw usageError(`${command} needs --password-stdin: pipe the password on standard input, never as an argument`);
  return hashPassword(passwordFromStdin(await io.readStdin()));
}

/** Locking or removing a user ends the SSH sessions of its keys at once. */
async function endSessionsOf(platform: Platform, name: string): Promise<void> {
  for (const key of await platform.keys.list(name)) platform.keys.notifyRemoved(key);
}

export const userCommands: Command[] = [
  {
    name: 'whoami',
    access: 'any',
    usage: '[--json]',
    summary: 'Show who you are and your role',
    flags: jsonFlag,
    args: [0, 0],
    async run(io, { flags }, platform) {
      const me = callerOf(io, platform);
      if (flags.json) io.out(json({ user: me.name, role: me.role, groups: me.groups }));
      else io.out(`${me.name} (${me.role})${me.groups.length ? ` groups: ${me.groups.join(', ')}` : ''}\n`);
    },
  },
  {
    name: 'users:add',
    usage: '<user> [--role admin|developer|viewer] [--email E] --password-stdin',
    summary: 'Add a user (default role: developer); the password is read from standard input',
    flags: { role: { type: 'string' }, email: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const name = user(positionals[0]!);
      const role = parseRole((flags.role as string | undefined) ?? 'developer');
      const email = flags.email === undefined ? null : checkEmail(flags.email as string);
      const passwordHash = await passwordOf(io, flags, 'users:add');
      platform.users.add(originOf(io), { name, role, email, passwordHash });
      io.out(`-----> Added ${name} (${role})\n`);
    },
  },
  {
    name: 'users:list',
    usage: '[--json]',
    summary: 'List users, their roles and whether they are locked',
    flags: jsonFlag,
    args: [0, 0],
    async run(io, { flags }, platform) {
      const users = platform.users.list();
      if (flags.json) {
        io.out(json(users));
        return;
      }
      io.out(table([['USER', 'ROLE', 'STATE', 'EMAIL'], ...users.map((u) => [u.name, u.role, u.locked ? 'locked' : 'active', u.email ?? '-'])]));
    },
  },
  {
    name: 'users:info',
    access: 'any',
    usage: '<user> [--json]',
    summary: 'Show a user: role, email, groups, keys and tokens (yourself, or anyone for admins)',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const name = user(positionals[0]!);
      const me = callerOf(io, platform);
      if (me.role !== 'admin' && me.name !== name) throw permissionDenied('only admins see other users');
      const u = platform.users.info(name);
      const keys = (await platform.keys.list(name)).map((k) => k.name);
      const tokens = (await platform.tokens.list(name)).map((t) => t.name);
      if (flags.json) {
        io.out(json({ ...u, keys, tokens }));
        return;
      }
      io.out(
        table([
          ['user', u.name],
          ['role', u.role],
          ['state', u.locked ? 'locked' : 'active'],
          ['email', u.email ?? '-'],
          ['groups', u.groups.join(', ') || '-'],
          ['keys', keys.join(', ') || '-'],
          ['tokens', tokens.join(', ') || '-'],
          ['created', u.createdAt],
        ]),
      );
    },
  },
  {
    name: 'users:remove',
    usage: '<user>',
    summary: 'Remove a user and its keys and tokens; refuses while it is the only owner of an app, and your own account',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const name = user(positionals[0]!);
      const keys = await platform.keys.list(name);
      platform.users.remove(originOf(io), name);
      for (const key of keys) platform.keys.notifyRemoved(key);
      io.out(`-----> Removed ${name}\n`);
    },
  },
  {
    name: 'users:role',
    usage: '<user> <admin|developer|viewer>',
    summary: 'Change a user\'s role',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const name = user(positionals[0]!);
      const role = parseRole(positionals[1]!);
      platform.users.setRole(originOf(io), name, role);
      io.out(`-----> ${name} is now ${role === 'admin' ? 'an' : 'a'} ${role}\n`);
    },
  },
  {
    name: 'users:passwd',
    access: 'any',
    usage: '<user> --password-stdin',
    summary: 'Set a user\'s password (yours, or anyone\'s for admins), read from standard input',
    flags: { 'password-stdin': { type: 'boolean' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const name = user(positionals[0]!);
      const me = callerOf(io, platform);
      if (me.role !== 'admin' && me.name !== name) throw permissionDenied('only admins set other users\' passwords');
      const hash = await passwordOf(io, flags, 'users:passwd');
      platform.users.setPasswordHash(originOf(io), name, hash);
      io.out(`-----> Password of ${name} changed\n`);
    },
  },
  {
    name: 'users:lock',
    usage: '<user>',
    summary: 'Lock a user: its keys and tokens stop working at once',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const name = user(positionals[0]!);
      platform.users.setLocked(originOf(io), name, true);
      await endSessionsOf(platform, name);
      io.out(`-----> Locked ${name}\n`);
    },
  },
  {
    name: 'users:unlock',
    usage: '<user>',
    summary: 'Unlock a user',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const name = user(positionals[0]!);
      platform.users.setLocked(originOf(io), name, false);
      io.out(`-----> Unlocked ${name}\n`);
    },
  },
  {
    name: 'groups:create',
    usage: '<group>',
    summary: 'Create a group of users',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      platform.users.createGroup(originOf(io), group(positionals[0]!));
      io.out(`-----> Created group ${positionals[0]}\n`);
    },
  },
  {
    name: 'groups:list',
    usage: '[--json]',
    summary: 'List groups and their members',
    flags: jsonFlag,
    args: [0, 0],
    async run(io, { flags }, platform) {
      const groups = platform.users.listGroups();
      if (flags.json) {
        io.out(json(groups));
        return;
      }
      if (groups.length === 0) {
        io.out('no groups: create one with `slipway groups:create <group>`\n');
        return;
      }
      io.out(table(groups.map((g) => [g.name, g.members.join(',') || '-'])));
    },
  },
  {
    name: 'groups:destroy',
    usage: '<group>',
    summary: 'Destroy a group (its members and the apps it could view stay)',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      platform.users.destroyGroup(originOf(io), group(positionals[0]!));
      io.out(`-----> Destroyed group ${positionals[0]}\n`);
    },
  },
  {
    name: 'groups:add',
    usage: '<group> <user>...',
    summary: 'Add users to a group',
    args: [2, 100],
    async run(io, { positionals }, platform) {
      const [g, ...users] = positionals as [string, ...string[]];
      platform.users.setMembers(originOf(io), group(g), users.map(user), true);
      io.out(`-----> Added ${users.join(', ')} to ${g}\n`);
    },
  },
  {
    name: 'groups:remove',
    usage: '<group> <user>...',
    summary: 'Remove users from a group',
    args: [2, 100],
    async run(io, { positionals }, platform) {
      const [g, ...users] = positionals as [string, ...string[]];
      platform.users.setMembers(originOf(io), group(g), users.map(user), false);
      io.out(`-----> Removed ${users.join(', ')} from ${g}\n`);
    },
  },
  {
    name: 'owners',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'List an app\'s owners',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      const owners = platform.users.access(app).owners;
      io.out(flags.json ? json(owners) : owners.length ? owners.map((o) => `${o}\n`).join('') : 'no owners: admins manage this app (it predates users)\n');
    },
  },
  {
    name: 'owners:add',
    access: 'app:manage',
    usage: '<app> <user>',
    summary: 'Make a developer or admin a co-owner of an app',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      platform.users.setOwner(originOf(io), app, user(positionals[1]!), true);
      io.out(`-----> ${positionals[1]} now owns ${app}\n`);
    },
  },
  {
    name: 'owners:remove',
    access: 'app:manage',
    usage: '<app> <user>',
    summary: 'Remove a co-owner of an app (an app keeps at least one owner)',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      platform.users.setOwner(originOf(io), app, user(positionals[1]!), false);
      io.out(`-----> ${positionals[1]} no longer owns ${app}\n`);
    },
  },
  {
    name: 'access',
    access: 'app:manage',
    usage: '<app> [--json]',
    summary: 'Show who may view an app: its level, owners, users and @groups',
    flags: jsonFlag,
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const app = parseAppName(positionals[0]!);
      await platform.apps.get(app);
      const a = platform.users.access(app);
      if (flags.json) {
        io.out(json(a));
        return;
      }
      io.out(
        table([
          ['level', a.level],
          ['owners', a.owners.join(', ') || '-'],
          ['users', a.users.join(', ') || '-'],
          ['groups', a.groups.map((g) => `@${g}`).join(', ') || '-'],
        ]),
      );
    },
  },
  {
    name: 'access:set',
    access: 'app:manage',
    usage: '<app> restricted|authenticated|public',
    summary: 'Set who may view an app: owners and those added, any signed-in user, or anyone',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const app = parseAppName(positionals[0]!);
      const level = parseAccessLevel(positionals[1]!);
      await platform.apps.get(app);
      if (level === 'public' && !platform.config.allowPublicApps) {
        throw permissionDenied('public apps are turned off on this platform (allowPublicApps: false): use authenticated');
      }
      platform.users.setLevel(originOf(io), app, level);
      io.out(`-----> ${app} is now ${level}\n`);
    },
  },
  {
    name: 'access:add',
    access: 'app:manage',
    usage: '<app> <user|@group>...',
    summary: 'Let users or @groups view a restricted app',
    args: [2, 100],
    async run(io, { positionals }, platform) {
      const [name, ...who] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      await platform.apps.get(app);
      platform.users.setGrants(originOf(io), app, who, true);
      io.out(`-----> ${who.join(', ')} may view ${app}\n`);
    },
  },
  {
    name: 'access:remove',
    access: 'app:manage',
    usage: '<app> <user|@group>...',
    summary: 'Stop users or @groups from viewing a restricted app',
    args: [2, 100],
    async run(io, { positionals }, platform) {
      const [name, ...who] = positionals as [string, ...string[]];
      const app = parseAppName(name);
      await platform.apps.get(app);
      platform.users.setGrants(originOf(io), app, who, false);
      io.out(`-----> ${who.join(', ')} may no longer view ${app}\n`);
    },
  },
  {
    name: 'audit',
    usage: '[--app A] [--user U] [-n N] [--json]',
    summary: 'Show the audit log, oldest first: who did what to which app, when and from where',
    flags: { app: { type: 'string' }, user: { type: 'string' }, n: { type: 'string', short: 'n' }, ...jsonFlag },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const n = (flags.n as string | undefined) ?? '100';
      if (!/^[0-9]{1,6}$/.test(n) || Number(n) < 1) throw usageError('audit: -n takes a number of entries from 1 to 999999');
      const entries = platform.users.auditLog({
        ...(flags.app === undefined ? {} : { app: parseAppName(flags.app as string) }),
        ...(flags.user === undefined ? {} : { actor: user(flags.user as string) }),
        limit: Number(n),
      });
      if (flags.json) {
        io.out(json(entries));
        return;
      }
      if (entries.length === 0) {
        io.out('no audit entries\n');
        return;
      }
      io.out(table([['WHEN', 'WHO', 'WHAT', 'APP', 'DETAIL', 'FROM'], ...entries.map((e) => [e.at, e.actor, e.action, e.app ?? '-', e.detail || '-', e.source])]));
    },
  },
];
