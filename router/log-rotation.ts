import fs from 'node:fs/promises';

/**
 * Size-based rotation of the router's logs (README "Routing"): nginx appends forever, so when a
 * log passes `maxBytes` it is renamed to `.1` (older copies shift up to `.keep`, the oldest is
 * dropped) and nginx is asked to reopen its files (`nginx -s reopen`: workers flush what they
 * buffered into the renamed file and open a new one; no reload, so no kept client connection is
 * closed), so nothing is lost in between; `logs --type router` follows the rename.
 */
export interface LogRotation {
  files: readonly string[];
  maxBytes: number;
  /** Rotated copies kept per file (>= 1). */
  keep: number;
  /** Tells the writer to reopen its logs. */
  reopen(): Promise<void>;
}

/** The renames that rotate `file`, oldest first, so no copy overwrites a newer one. */
export function rotationRenames(file: string, keep: number): Array<[string, string]> {
  const renames: Array<[string, string]> = [];
  for (let n = keep - 1; n >= 1; n--) renames.push([`${file}.${n}`, `${file}.${n + 1}`]);
  renames.push([file, `${file}.1`]);
  return renames;
}

/** Rotates every file over the limit; resolves to the files rotated. */
export async function rotateLogs(r: LogRotation): Promise<string[]> {
  const rotated: string[] = [];
  for (const file of r.files) {
    const size = await fs.stat(file).then((s) => s.size, () => 0);
    if (size < r.maxBytes) continue;
    for (const [from, to] of rotationRenames(file, r.keep)) {
      await fs.rename(from, to).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    rotated.push(file);
  }
  if (rotated.length > 0) await r.reopen();
  return rotated;
}
