import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding Slipway's package.json, found from a module's own URL: modules run compiled
 * from dist/<folder>/ and, in the tests, from <folder>/. Files that are never compiled (driver.sh
 * and the built-in buildpacks, the git hooks, the web assets) are read from there.
 */
export function sourceRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  for (let up = 0; up < 3; up++) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find Slipway's package.json above ${fileURLToPath(moduleUrl)}`);
}
