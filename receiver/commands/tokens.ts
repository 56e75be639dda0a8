import { json, table } from './output.js';
import { originOf } from './caller.js';
import { scopeOf, subjectOf } from './ssh-keys.js';
import type { Command } from './types.js';

export const tokenCommands: Command[] = [
  {
    name: 'tokens:create',
    access: 'any',
    usage: '<name> [--user <user>]',
    summary: 'Create a token for git over HTTP acting as a user (default: yourself); printed once',
    flags: { user: { type: 'string' } },
    args: [1, 1],
    async run(io, { positionals, flags }, platform) {
      const user = subjectOf(io, platform, flags.user);
      const { token, info } = await platform.tokens.create(positionals[0]!, { user, origin: originOf(io) });
      const { listen, httpPort } = platform.config;
      // The token alone on stdout, so `TOKEN=$(slipway tokens:create ci)` works; advice on stderr.
      io.out(`${token}\n`);
      io.err(`-----> Created token ${info.name} for ${info.user}; it is shown only now, store it safely\n`);
      io.err(`       use it as the password: git push http://${info.name}:<token>@${listen}:${httpPort}/_git/<app>.git main\n`);
    },
  },
  {
    name: 'tokens:list',
    access: 'any',
    usage: '[--json]',
    summary: 'List tokens for git over HTTP (yours; admins see all; never the secrets)',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const tokens = await platform.tokens.list(scopeOf(io, platform));
      if (flags.json) {
        io.out(json(tokens));
        return;
      }
      if (tokens.length === 0) {
        io.out('no tokens: create one with `slipway tokens:create <name>`\n');
        return;
      }
      io.out(table([['NAME', 'CREATED', 'LAST USED', 'USER'], ...tokens.map((t) => [t.name, t.createdAt, t.lastUsedAt ?? 'never', t.user])]));
    },
  },
  {
    name: 'tokens:revoke',
    access: 'any',
    usage: '<name>',
    summary: 'Revoke a token: git over HTTP refuses it from now on',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const onlyUser = scopeOf(io, platform);
      await platform.tokens.revoke(positionals[0]!, { origin: originOf(io), ...(onlyUser === undefined ? {} : { onlyUser }) });
      io.out(`-----> Revoked token ${positionals[0]}\n`);
    },
  },
];
