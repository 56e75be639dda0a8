import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

const MAX_PACKAGE_JSON = 1024 * 1024;

/** Reads `package/package.json` out of an npm tarball without unpacking anything to disk. */
export async function readTgzPackageJson(file: string): Promise<Record<string, unknown> | null> {
  const extract = tar.extract();
  const feeding = pipeline(createReadStream(file), createGunzip(), extract).catch(() => undefined);
  let found: Record<string, unknown> | null = null;
  for await (const entry of extract) {
    if (found === null && entry.header.type === 'file' && entry.header.name.replace(/^[^/]+\//, '') === 'package.json' && (entry.header.size ?? 0) <= MAX_PACKAGE_JSON) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      try {
        found = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        found = null;
      }
      // Stop reading the rest of a large tarball once we have what we came for.
      extract.destroy();
      break;
    }
    entry.resume();
  }
  await feeding;
  return found;
}
