import type { ErrorCode } from '../core/errors.js';

/** What one command answered: its exit status, its output and, on failure, the error's code. */
export interface CommandResult {
  code: number;
  out: string;
  err: string;
  error: ErrorCode | null;
}

/**
 * The web's only way to act or read: a command of the shared command table (the CLI's and SSH's
 * words) run as the signed-in user, with that user's rights. The platform implements it over
 * the command layer (platform/web-door.ts), so the web has no logic of its own (docs/web.md).
 */
export interface CommandDoor {
  run(
    user: string,
    argv: readonly string[],
    o?: {
      stdin?: string;
      signal?: AbortSignal;
      /** Streams output as it comes (logs --follow) instead of collecting it in `out`. */
      out?: (text: string) => void;
      /** Where the request came from, for the audit log: `web 10.0.0.5`. */
      from?: string;
    },
  ): Promise<CommandResult>;
}

/** A command's JSON answer, or a one-line error that says what went wrong. */
export async function runJson<T>(door: CommandDoor, user: string, argv: readonly string[]): Promise<{ ok: true; value: T } | { ok: false; error: string; code: ErrorCode | null }> {
  const r = await door.run(user, [...argv, '--json']);
  if (r.code !== 0) return { ok: false, error: r.err.trim().replace(/^slipway: /, ''), code: r.error };
  return { ok: true, value: JSON.parse(r.out) as T };
}
