import fs from 'node:fs';
import path from 'node:path';
import { oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { emptyRouteTable, parseRouteTable, type RouteTable } from './table.js';

/** The route table as the router currently sees it. */
export interface RouteTableSource {
  current(): RouteTable;
  /** Re-reads the file now if it changed; resolves once done (used by the watcher and tests). */
  refresh(): Promise<void>;
  close(): void;
}

export interface WatchOptions {
  logger: Logger;
  /** Domain of the table used until the file exists. */
  defaultDomain?: string;
  pollMs?: number;
  /** false: poll only (filesystems without change events, such as some network mounts). */
  watch?: boolean;
  /** Called after a new valid table replaced the current one (the nginx supervisor re-renders). */
  onChange?: (table: RouteTable) => void;
}

/** Identity of one version of the file; a rename-over changes the inode even when size and mtime match. */
function signature(st: fs.Stats): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

/**
 * Loads the table and follows changes. fs.watch on the directory reacts fast; a stat poll backs
 * it up because rename-over events can be missed (and some filesystems have no events at all).
 * A missing or invalid file never takes routes away: the last good table keeps serving, so a
 * daemon crash mid-update cannot black-hole every app.
 */
export async function watchRouteTable(file: string, o: WatchOptions): Promise<RouteTableSource> {
  const log = o.logger;
  let table = emptyRouteTable(o.defaultDomain ?? 'localhost');
  let seen: string | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;

  async function check(): Promise<void> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(file);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      if (seen !== 'missing') {
        if (missing && seen !== null) log.warn({ file }, 'route table removed; keeping the last good routes');
        else if (!missing) log.error({ file, err: oneLine(err) }, 'cannot stat route table');
      }
      seen = 'missing';
      return;
    }
    const sig = signature(st);
    if (sig === seen) return;
    seen = sig;
    try {
      table = parseRouteTable(await fs.promises.readFile(file, 'utf8'));
      log.debug({ file, apps: Object.keys(table.apps).length }, 'route table loaded');
      o.onChange?.(table);
    } catch (err) {
      log.error({ file, err: oneLine(err) }, 'route table rejected; keeping the last good routes');
    }
  }

  // One check at a time; a change seen meanwhile runs one more check afterwards.
  function refresh(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await check();
      } while (again && !closed);
    })().finally(() => {
      running = null;
    });
    return running;
  }

  await refresh();

  const base = path.basename(file);
  const startWatch = (): fs.FSWatcher | null => {
    try {
      const w = fs.watch(path.dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === base) void refresh();
      });
      w.on('error', (err) => {
        log.warn({ err: oneLine(err) }, 'route table watch failed; polling only');
        w.close();
      });
      return w;
    } catch (err) {
      log.warn({ err: oneLine(err) }, 'cannot watch route table directory; polling only');
      return null;
    }
  };
  const watcher = o.watch === false ? null : startWatch();
  const poll = setInterval(() => void refresh(), o.pollMs ?? 1000);
  poll.unref();

  return {
    current: () => table,
    refresh,
    close() {
      closed = true;
      clearInterval(poll);
      watcher?.close();
    },
  };
}
