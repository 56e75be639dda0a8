import path from 'node:path';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { readFileUnder } from '../core/safe-read.js';
import { fetchBuildpack, parseBuildpackUrl, type BuildpackUrl } from '../buildpacks/fetch-url.js';
import { BUILTIN_BUILDPACKS, type BuildpackPlugins } from '../buildpacks/plugins.js';
import type { BuildpackRef } from '../buildpacks/runner.js';
import { UrlGuard } from '../buildpacks/url-guard.js';

export { BUILTIN_BUILDPACKS };

/** Where buildpacks come from: the built-ins shipped with Slipway, then the ones an operator installed. */
export interface BuildpackCatalog {
  list(): Promise<BuildpackRef[]>;
  /** A buildpack named by URL in .buildpacks or buildpacks:set: from the cache, else fetched. */
  fetch?(url: BuildpackUrl, say: (line: string) => void): Promise<BuildpackRef>;
}

export interface BuildpackChoice {
  candidates: BuildpackRef[];
  /** What pinned the list (then all run, in order), or null when detection picks one. */
  pinnedBy: 'buildpacks:set' | '.buildpacks' | null;
}

/**
 * Installed buildpacks live in `installedDir`; ones fetched by URL in its hidden `.fetched/<hash>`.
 * Fetches go through `guard` (without one: public addresses only, nothing allowed inward).
 */
export function directoryCatalog(plugins: BuildpackPlugins, guard: UrlGuard = new UrlGuard({ allow: [] })): BuildpackCatalog {
  return {
    list: () => plugins.list(),
    fetch: (url, say) => fetchBuildpack(url, { cacheDir: path.join(plugins.installedDir, '.fetched'), say, guard }),
  };
}

/** Parses a `.buildpacks` file: one buildpack per line, blank lines and `#` comments ignored. */
export function parseBuildpacksFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

/** Checks one pinned entry without touching the disk or the network: a buildpack name or a URL. Pure. */
export function checkBuildpackEntry(entry: string, source: string): BuildpackUrl | string {
  const url = parseBuildpackUrl(entry);
  if (url) return url;
  if (!isValidAppName(entry)) {
    throw new SlipwayError('E_BUILDPACK', `${source} names ${JSON.stringify(entry.slice(0, 100))}, which is neither a buildpack name (a-z, 0-9, '-') nor an https/git URL`);
  }
  return entry;
}

/** Reads the pushed tree's `.buildpacks`, or null when there is none (or it lists nothing). */
export async function readBuildpacksFile(appDir: string): Promise<string[] | null> {
  // Never through a link, only a regular file (core/safe-read.ts).
  const text = await readFileUnder(appDir, '.buildpacks', { maxBytes: 64 * 1024, what: '.buildpacks' });
  if (text === null) return null;
  const names = parseBuildpacksFile(text);
  return names.length > 0 ? names : null;
}

/**
 * Precedence: `buildpacks:set` on the app, then `.buildpacks` in the pushed tree, then detection
 * over every known buildpack (built-ins first).
 */
export async function chooseBuildpacks(catalog: BuildpackCatalog, appPin: string[], appDir: string, say: (line: string) => void = () => {}): Promise<BuildpackChoice> {
  const known = await catalog.list();
  const lookup = async (entries: string[], source: string): Promise<BuildpackRef[]> => {
    const refs: BuildpackRef[] = [];
    for (const entry of entries) {
      const checked = checkBuildpackEntry(entry, source);
      if (typeof checked !== 'string') {
        if (!catalog.fetch) throw new SlipwayError('E_BUILDPACK', `${source} names a URL, which this platform does not fetch`);
        refs.push(await catalog.fetch(checked, say));
        continue;
      }
      const found = known.find((b) => b.name === checked);
      if (!found) {
        throw new SlipwayError(
          'E_BUILDPACK',
          `${source} names buildpack "${checked}", which is not installed (known: ${known.map((b) => b.name).join(', ')}); install it with \`slipway buildpacks:install <dir|tarball>\``,
        );
      }
      refs.push(found);
    }
    return refs;
  };
  if (appPin.length > 0) return { candidates: await lookup(appPin, 'buildpacks:set'), pinnedBy: 'buildpacks:set' };
  const names = await readBuildpacksFile(appDir);
  if (names) return { candidates: await lookup(names, '.buildpacks'), pinnedBy: '.buildpacks' };
  return { candidates: known, pinnedBy: null };
}
