import fs from 'node:fs/promises';
import { SlipwayError } from '../../core/errors.js';
import { checkPrincipalName } from '../../core/users.js';
import { callerOf, originOf, permissionDenied } from './caller.js';
import { json, table } from './output.js';
import type { Command, CommandIO, Platform } from './types.js';

const MAX_KEY_FILE = 64 * 1024;

/**
 * Whose keys or tokens a command acts on: admins name anyone with `--user` (default: themselves,
 * so the local CLI's keys stay admin's); everyone else only their own.
 */
export function subjectOf(io: CommandIO, platform: Platform, flag: unknown): string {
  const caller = callerOf(io, platform);
  if (typeof flag !== 'string') return caller.name;
  checkPrincipalName(flag, 'user');
  if (flag !== caller.name && caller.role !== 'admin') throw permissionDenied(`only admins act on keys and tokens of other users`);
  return flag;
}

/** Admins see and remove every key or token; other users only their own. */
export function scopeOf(io: CommandIO, platform: Platform): string | undefined {
  const caller = callerOf(io, platform);
  return caller.role === 'admin' ? undefined : caller.name;
}

export const sshKeyCommands: Command[] = [
  {
    name: 'ssh-keys:add',
    access: 'any',
    usage: '<name> <pubkey-file|-> [--user <user>]',
    summary: 'Allow an SSH public key to push and run commands as a user (default: yourself)',
    flags: { user: { type: 'string' } },
    args: [2, 2],
    async run(io, { positionals, flags }, platform) {
      const [name, source] = positionals as [string, string];
      const user = subjectOf(io, platform, flags.user);
      let text: string;
      if (source === '-') {
        text = await io.readStdin();
      } else {
        // Over SSH a path names a file on the server, which the caller cannot see: only the local admin may use it.
        if (!io.local) throw new SlipwayError('E_KEY', 'over SSH, pass the key on standard input: ssh ... ssh-keys:add <name> - < key.pub');
        const stat = await fs.stat(source).catch(() => null);
        if (!stat?.isFile()) throw new SlipwayError('E_KEY', `no such file: ${source}`);
        if (stat.size > MAX_KEY_FILE) throw new SlipwayError('E_KEY', `${source} is too large to be a public key`);
        text = await fs.readFile(source, 'utf8');
      }
      const key = await platform.keys.add(name, text, { user, origin: originOf(io) });
      io.out(`-----> Added key ${key.name} (${key.type} ${key.fingerprint}) for ${key.user}\n`);
    },
  },
  {
    name: 'ssh-keys:list',
    access: 'any',
    usage: '[--json]',
    summary: 'List allowed SSH keys (yours; admins see all)',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const keys = await platform.keys.list(scopeOf(io, platform));
      if (flags.json) {
        io.out(json(keys.map(({ name, user, type, fingerprint, addedAt }) => ({ name, user, type, fingerprint, addedAt }))));
        return;
      }
      if (keys.length === 0) {
        io.out('no keys: add one with `slipway ssh-keys:add <name> ~/.ssh/id_ed25519.pub`\n');
        return;
      }
      io.out(table(keys.map((k) => [k.name, k.type, k.fingerprint, k.user])));
    },
  },
  {
    name: 'ssh-keys:remove',
    access: 'any',
    usage: '<name>',
    summary: 'Remove an SSH key',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const onlyUser = scopeOf(io, platform);
      await platform.keys.remove(positionals[0]!, { origin: originOf(io), ...(onlyUser === undefined ? {} : { onlyUser }) });
      io.out(`-----> Removed key ${positionals[0]}\n`);
    },
  },
];
