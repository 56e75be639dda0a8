import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from '../platform/errors.js';
import type { BuildpackRef } from '../buildpacks/runner.js';

/** Where buildpacks come from: the built-ins shipped with Slipway, then the ones an operator installed. */
export interface BuildpackCatalog {
  list(): Promise<BuildpackRef[]>;
}

export interface BuildpackChoice {
  candidates: BuildpackRef[];
  /** What pinned the list (then all run, in order), or null when detection picks one. */
  pinnedBy: 'buildpacks:set' | '.buildpacks' | null;
}

/** Built-ins in detection order: the most specific first, so a Node app with an index.html is Node. */
export const BUILTIN_BUILDPACKS = ['node'] as const;

export function directoryCatalog(builtinDir: string, installedDir: string): BuildpackCatalog {
  return {
    async list() {
      const builtins = BUILTIN_BUILDPACKS.map((name) => ({ name, dir: path.join(builtinDir, name) }));
      const installed = (await fs.readdir(installedDir, { withFileTypes: true }).catch(() => []))
        .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
        .map((e) => ({ name: e.name, dir: path.join(installedDir, e.name) }))
        .sort((a, b) => a.name.localeCompare(b.name));
      return [...builtins, ...installed];
    },
  };
}

/** Parses a `.buildpacks` file: one buildpack per line, blank lines and `#` comments ignored. */
export function parseBuildpacksFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

/**
 * Precedence: `buildpacks:set` on the app, then `.buildpacks` in the pushed tree, then detection
 * over every known buildpack (built-ins first).
 */
export async function chooseBuildpacks(catalog: BuildpackCatalog, appPin: string[], appDir: string): Promise<BuildpackChoice> {
  const known = await catalog.list();
  const lookup = (names: string[], source: string): BuildpackRef[] =>
    names.map((name) => {
      const found = known.find((b) => b.name === name);
      if (!found) {
        throw new SlipwayError(
          'E_BUILDPACK',
          `${source} names buildpack "${name.slice(0, 100)}", which is not installed (known: ${known.map((b) => b.name).join(', ')}); install it with \`slipway buildpacks:install <dir|tarball>\``,
        );
      }
      return found;
    });
  if (appPin.length > 0) return { candidates: lookup(appPin, 'buildpacks:set'), pinnedBy: 'buildpacks:set' };
  const file = await fs.readFile(path.join(appDir, '.buildpacks'), 'utf8').catch(() => null);
  if (file !== null) {
    const names = parseBuildpacksFile(file);
    if (names.length > 0) return { candidates: lookup(names, '.buildpacks'), pinnedBy: '.buildpacks' };
  }
  return { candidates: known, pinnedBy: null };
}
