import type { ErrorCode } from '../core/errors.js';
import { commands, runCommand, type CommandIO, type Platform } from '../receiver/commands/index.js';
import type { CommandDoor } from '../web/door.js';

/**
 * The web's door into the command table: a command runs as the signed-in user exactly as it
 * would over SSH for that user's key (never with local rights), so the App Manager and the CLI
 * share every check and every word (docs/web.md).
 */
export function webCommandDoor(platform: Platform): CommandDoor {
  return {
    async run(user, argv, o = {}) {
      let out = '';
      let err = '';
      let error: ErrorCode | null = null;
      const io: CommandIO = {
        out: o.out ?? ((text) => void (out += text)),
        err: (text) => void (err += text),
        readStdin: async () => o.stdin ?? '',
        signal: o.signal ?? new AbortController().signal,
        actor: user,
        local: false,
        user,
        from: o.from ?? 'web',
      };
      const code = await runCommand(commands, [...argv], io, platform, (c) => (error = c));
      return { code, out, err, error };
    },
  };
}
