import { parseArgs } from 'node:util';
import { SlipwayError, oneLine, usageError, type ErrorCode } from '../../core/errors.js';
import { authorize, originOf } from './caller.js';
import type { Command, CommandIO, Parsed, Platform } from './types.js';

/**
 * Runs one command line (already split into argv) against the platform. The same function
 * serves the local CLI and SSH, so both speak the same words and exit codes:
 * 0 success, 1 failure with `slipway: <message>`, 2 wrong usage. `failed` hears the error's code,
 * for doors that answer in their own terms (the web API maps it to an HTTP status).
 */
export async function runCommand(commands: readonly Command[], argv: string[], io: CommandIO, platform: Platform, failed?: (code: ErrorCode) => void): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      io.out(helpText(commands, rest[0]));
      return 0;
    }
    const command = commands.find((c) => c.name === name);
    if (!command) throw usageError(`unknown command "${printable(name)}": run \`slipway help\` for the list`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(commandHelp(command));
      return 0;
    }
    const parsed = parse(command, rest);
    // Every door (local CLI, SSH) passes here: the caller's rights are checked before any work.
    const action = command.access ?? 'admin';
    await authorize(io, platform, action, action.startsWith('app:') ? (parsed.positionals[0] ?? '') : undefined);
    const code = (await command.run(io, parsed, platform)) ?? 0;
    if (code === 0 && command.audit) {
      const { app, detail } = command.audit(parsed);
      platform.users.audit(originOf(io), command.name, app, detail);
    }
    return code;
  } catch (err) {
    failed?.(err instanceof SlipwayError ? err.code : 'E_INTERNAL');
    if (err instanceof SlipwayError) {
      io.err(`slipway: ${oneLine(err)}\n`);
      return err.exitCode;
    }
    platform.logger.error({ err }, 'command failed');
    io.err(`slipway: ${oneLine(err)}\n`);
    return 1;
  }
}

function parse(command: Command, args: string[]): Parsed {
  let result;
  try {
    result = parseArgs({ args, options: command.flags ?? {}, allowPositionals: true, strict: true });
  } catch (err) {
    // node's messages are multi-sentence; keep the first and point at help.
    const first = oneLine(err).split('. ')[0];
    throw usageError(`${command.name}: ${first}: see \`slipway ${command.name} --help\``);
  }
  const [min, max] = command.args;
  const n = result.positionals.length;
  if (n < min || n > max) {
    throw usageError(`usage: slipway ${command.name} ${command.usage}`);
  }
  return { positionals: result.positionals, flags: result.values as Parsed['flags'] };
}

function printable(s: string): string {
  const clipped = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return JSON.stringify(clipped).slice(1, -1);
}

function commandHelp(c: Command): string {
  return `usage: slipway ${c.name} ${c.usage}\n\n  ${c.summary}\n`;
}

function helpText(commands: readonly Command[], topic: string | undefined): string {
  const one = topic && commands.find((c) => c.name === topic);
  if (one) return commandHelp(one);
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: slipway <command> [args...]   (over SSH: ssh -p <port> git@<host> <command> [args...])',
    '',
    'Commands:',
    ...lines,
    '',
    'Local only: slipway server [--ssh-port N] [--http-port N] [--listen ADDR] [--domain D], slipway router:reload, slipway router:stop, slipway setup',
    'Run `slipway <command> --help` for one command.',
    '',
  ].join('\n');
}
