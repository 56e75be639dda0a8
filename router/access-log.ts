import fs from 'node:fs/promises';

/**
 * The router's access log (README "Logs"): nginx writes one JSON line per request
 * (router/nginx-config.ts, log_format slipway). `slipway logs <app> --type router` reads the lines
 * of one app from it, last N and optionally following, like an app's own output.
 */
export interface AccessEntry {
  time: string;
  /** The app the request was routed to, "_git" for git over HTTP, "" when none matched. */
  app: string;
  status: number;
  bytes: number;
  /** nginx's $upstream_response_time: seconds ("0.002"), a list after retries, "" when none. */
  upstreamTime: string;
  requestId: string;
  method: string;
  host: string;
}

/** One line of the log, or null for anything that is not one of ours (a torn or foreign line). */
export function parseAccessLine(line: string): AccessEntry | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const text = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '');
  if (typeof o.status !== 'number' || typeof o.app !== 'string') return null;
  return {
    time: text('time'),
    app: o.app,
    status: o.status,
    bytes: typeof o.bytes === 'number' ? o.bytes : 0,
    upstreamTime: text('upstream_time'),
    requestId: text('request_id'),
    method: text('method'),
    host: text('host'),
  };
}

/**
 * The line `logs --type router` prints, shaped like an app's log lines (UTC time with
 * milliseconds, a source, then the text) so both read and sort alike.
 */
export function formatAccessEntry(e: AccessEntry): string {
  const at = new Date(e.time);
  const time = Number.isNaN(at.getTime()) ? e.time : at.toISOString();
  const upstream = e.upstreamTime === '' || e.upstreamTime === '-' ? '-' : `${e.upstreamTime}s`;
  return `${time} router: ${e.status} ${e.method} ${e.host} ${e.bytes}B upstream ${upstream} request ${e.requestId}\n`;
}

/** The last `lines` entries of `app`, oldest first. A missing log is an empty one. */
export async function tailAccessLog(file: string, app: string, lines: number): Promise<AccessEntry[]> {
  if (lines === 0) return [];
  const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (handle === null) return [];
  try {
    // Read backwards in blocks until enough lines of this app are found: the log only grows, and
    // most of it belongs to other apps.
    const found: AccessEntry[] = [];
    let end = (await handle.stat()).size;
    let carry = Buffer.alloc(0);
    const block = 64 * 1024;
    while (end > 0 && found.length < lines) {
      const start = Math.max(0, end - block);
      const buf = Buffer.alloc(end - start);
      await handle.read(buf, 0, buf.length, start);
      const text = Buffer.concat([buf, carry]);
      // Everything before the first newline may be the end of a line the next block starts.
      const cut = start === 0 ? -1 : text.indexOf(0x0a);
      const whole = start === 0 ? text : cut === -1 ? Buffer.alloc(0) : text.subarray(cut + 1);
      carry = start === 0 ? Buffer.alloc(0) : cut === -1 ? text : text.subarray(0, cut);
      const entries = whole.toString('utf8').split('\n').map(parseAccessLine).filter((e): e is AccessEntry => e !== null && e.app === app);
      found.unshift(...entries);
      end = start;
    }
    return found.slice(-lines);
  } finally {
    await handle.close();
  }
}

/**
 * Calls `onEntry` for each new entry of `app` written after the call, until `signal` aborts.
 * Polls the file's size (cheap; fs.watch misses appends on some filesystems) and starts over
 * from the top when the file was truncated or replaced by a rotation.
 */
export async function followAccessLog(file: string, app: string, onEntry: (e: AccessEntry) => void, signal: AbortSignal, pollMs = 250): Promise<void> {
  const sizeOf = async (): Promise<number> => (await fs.stat(file).catch(() => null))?.size ?? 0;
  let at = await sizeOf();
  let partial = '';
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, pollMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    if (signal.aborted) break;
    const size = await sizeOf();
    if (size < at) {
      at = 0;
      partial = '';
    }
    if (size === at) continue;
    const handle = await fs.open(file, 'r').catch(() => null);
    if (handle === null) continue;
    try {
      const buf = Buffer.alloc(size - at);
      const { bytesRead } = await handle.read(buf, 0, buf.length, at);
      at += bytesRead;
      const text = partial + buf.subarray(0, bytesRead).toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        const e = parseAccessLine(line);
        if (e !== null && e.app === app) onEntry(e);
      }
    } finally {
      await handle.close();
    }
  }
}
