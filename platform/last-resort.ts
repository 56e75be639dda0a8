import type { Logger } from '../core/log.js';

/**
 * Error codes that mean "the other end of a socket or pipe went away": a client that vanished,
 * a child that exited before reading all its input. One client's broken connection must never
 * take the daemon (and every other client's push) down with it.
 */
export const PEER_GONE_CODES: ReadonlySet<string> = new Set([
  'EPIPE',
  'ECONNRESET',
  'ECONNABORTED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_STREAM_WRITE_AFTER_END',
]);

/** Whether an uncaught error is only a peer going away (survivable), by its code alone. */
export function isPeerGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && PEER_GONE_CODES.has(code);
}

export interface LastResortOptions {
  logger: Logger;
  /** Ends the process; injected so tests can watch instead of exiting. */
  exit: (code: number) => void;
  /** The process to watch (`process` in the daemon). */
  target?: Pick<NodeJS.Process, 'on' | 'off'>;
}

/**
 * The daemon's last line of defence (docs/http.md, "Broken clients"). Every stream is meant to have
 * its own error handling (stream.pipeline, error listeners); should one be missed, an uncaught
 * EPIPE-class error is logged and survived. Anything else is a real bug: it is logged and the
 * process exits 1 as Node would, so it is never hidden. Returns the uninstall function.
 */
export function installLastResort(o: LastResortOptions): () => void {
  const target = o.target ?? process;
  const handler = (err: unknown, origin?: string): void => {
    if (isPeerGone(err)) {
      o.logger.warn({ code: (err as { code: string }).code, err: errorText(err), origin }, 'a client connection broke without an error handler: survived (please report)');
      return;
    }
    o.logger.fatal({ err: errorText(err), stack: (err as Error | null)?.stack, origin }, 'uncaught error: exiting');
    // Also on stderr: the log file may be where the problem lies.
    process.stderr.write(`slipway: uncaught error, exiting: ${errorText(err)}\n`);
    o.exit(1);
  };
  target.on('uncaughtException', handler);
  return () => {
    target.off('uncaughtException', handler);
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
