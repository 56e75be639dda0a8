import { json, table } from './output.js';
import type { Command } from './types.js';

export const tokenCommands: Command[] = [
  {
    name: 'tokens:create',
    usage: '<name>',
    summary: 'Create a token for git over HTTP (printed once)',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      const { token, info } = await platform.tokens.create(positionals[0]!);
      const { listen, httpPort } = platform.config;
      // The token alone on stdout, so `TOKEN=$(slipway tokens:create ci)` works; advice on stderr.
      io.out(`${token}\n`);
      io.err(`-----> Created token ${info.name}; it is shown only now, store it safely\n`);
      io.err(`       use it as the password: git push http://${info.name}:<token>@${listen}:${httpPort}/_git/<app>.git main\n`);
    },
  },
  {
    name: 'tokens:list',
    usage: '[--json]',
    summary: 'List tokens for git over HTTP (never the secrets)',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const tokens = await platform.tokens.list();
      if (flags.json) {
        io.out(json(tokens));
        return;
      }
      if (tokens.length === 0) {
        io.out('no tokens: create one with `slipway tokens:create <name>`\n');
        return;
      }
      io.out(table([['NAME', 'CREATED', 'LAST USED'], ...tokens.map((t) => [t.name, t.createdAt, t.lastUsedAt ?? 'never'])]));
    },
  },
  {
    name: 'tokens:revoke',
    usage: '<name>',
    summary: 'Revoke a token: git over HTTP refuses it from now on',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.tokens.revoke(positionals[0]!);
      io.out(`-----> Revoked token ${positionals[0]}\n`);
    },
  },
];
