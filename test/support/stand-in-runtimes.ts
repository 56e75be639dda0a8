import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * Puts a small stand-in for an npm package (Node.js, npm: versions no real release has) into a
 * test's own mirror, as `npm/<name>/-/<name>-<version>.tgz`, so preparing runtimes costs little
 * and touches nobody's images. `scratch` holds the package's files on the way.
 */
export async function addStandIn(o: { mirrorDir: string; scratch: string }, name: string, version: string, files: Record<string, string>): Promise<void> {
  const src = await fs.mkdtemp(path.join(o.scratch, 'src-'));
  for (const [file, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(src, 'package', file)), { recursive: true });
    await fs.writeFile(path.join(src, 'package', file), text, { mode: 0o755 });
  }
  const dir = path.join(o.mirrorDir, 'npm', name, '-');
  await fs.mkdir(dir, { recursive: true });
  await exec('tar', ['-czf', path.join(dir, `${name}-${version}.tgz`), '-C', src, 'package']);
}
