import fs from 'node:fs/promises';
import path from 'node:path';
import { readFileUnder } from '../../core/safe-read.js';
import type { AppSource } from './types.js';

/**
 * A pushed tree on disk, read as root: never through a link, only a regular file within the
 * limit (core/safe-read.ts).
 */
export function dirSource(appDir: string): AppSource {
  return {
    readFile: (name, maxBytes) => readFileUnder(appDir, name, { maxBytes, what: name }),
    isFile: (name) => fs.lstat(path.join(appDir, name)).then((s) => s.isFile(), () => false),
  };
}
