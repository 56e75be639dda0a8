import { oneLine } from './errors.js';
import type { Logger } from './log.js';

/** Whether a process with this id exists (EPERM: it does, but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface KeepRunning {
  /** What the log lines call it, e.g. "router (nginx)". */
  what: string;
  /** The pid of the running process, or null when it is gone. */
  running: () => number | null;
  /** Starts it again; resolves with the new pid. */
  start: () => Promise<number>;
  /** True while it should stay stopped (an operator stopped it on purpose). */
  paused?: () => boolean;
  checkMs?: number;
  logger: Logger;
}

/**
 * Supervision of a process that outlives the daemon (the router, the auth server): checked every
 * `checkMs` (default 1 s) and started again when gone. Returns the function that stops watching.
 */
export function keepRunning(o: KeepRunning): () => void {
  let restarting = false;
  const check = setInterval(() => {
    if (restarting || o.running() !== null || o.paused?.()) return;
    restarting = true;
    o.logger.warn(`${o.what} is gone; starting it again`);
    o.start()
      .then(
        (pid) => o.logger.info({ pid }, `${o.what} restarted`),
        (err: unknown) => o.logger.error({ err: oneLine(err) }, `${o.what} restart failed; trying again`),
      )
      .finally(() => {
        restarting = false;
      });
  }, o.checkMs ?? 1000);
  check.unref();
  return () => clearInterval(check);
}
