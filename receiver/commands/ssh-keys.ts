import fs from 'node:fs/promises';
import { SlipwayError } from '../../core/errors.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

const MAX_KEY_FILE = 64 * 1024;

export const sshKeyCommands: Command[] = [
  {
    name: 'ssh-keys:add',
    usage: '<name> <pubkey-file|->',
    summary: 'Allow an SSH public key to push and run commands',
    args: [2, 2],
    async run(io, { positionals }, platform) {
      const [name, source] = positionals as [string, string];
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
      const key = await platform.keys.add(name, text);
      io.out(`-----> Added key ${key.name} (${key.type} ${key.fingerprint})\n`);
    },
  },
  {
    name: 'ssh-keys:list',
    usage: '[--json]',
    summary: 'List allowed SSH keys',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const keys = await platform.keys.list();
      if (flags.json) {
        io.out(json(keys.map(({ name, type, fingerprint, addedAt }) => ({ name, type, fingerprint, addedAt }))));
        return;
      }
      if (keys.length === 0) {
        io.out('no keys: add one with `slipway ssh-keys:add <name> ~/.ssh/id_ed25519.pub`\n');
        return;
      }
      io.out(table(keys.map((k) => [k.name, k.type, k.fingerprint])));
    },
  },
  {
    name: 'ssh-keys:remove',
    usage: '<name>',
    summary: 'Remove an SSH key',
    args: [1, 1],
    async run(io, { positionals }, platform) {
      await platform.keys.remove(positionals[0]!);
      io.out(`-----> Removed key ${positionals[0]}\n`);
    },
  },
];
