import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs to stderr (or a file the server opens). Secrets never go in: config values,
 * tokens and keys are redacted by path as a second line of defence behind not logging them.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['config', 'token', 'password', 'key', '*.config', '*.token', '*.env'], censor: '[redacted]' },
    },
    (destination ?? process.stderr) as pino.DestinationStream,
  );
}
