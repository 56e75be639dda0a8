import path from 'node:path';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { fetchBuildpack, parseBuildpackUrl, type BuildpackUrl } from '../buildpacks/fetch-url.js';
import { BUILTIN_BUILDPACKS, type BuildpackPlugins } from '../buildpacks/plugins.js';
import type { BuildpackRef } from '../buildpacks/runner.js';
import { UrlGuard } from '../buildpacks/url-guard.js';
import { dirSource } from './builders/source.js';
import type { AppSource } from './builders/types.js';

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
export function readBuildpacksFile(appDir: string): Promise<string[] | null> {
  return readBuildpacksFileFrom(dirSource(appDir));
}

/** An app's `.buildpacks` (never through a link, only a regular file), or null when it lists nothing. */
export async function readBuildpacksFileFrom(source: AppSource): Promise<string[] | null> {
  const text = await source.readFile('.buildpacks', 64 * 1024);
  if (text === null) return null;
  const names = parseBuildpacksFile(text);
  return names.length > 0 ? names : null;
}

/**
 * Precedence: `buildpacks:set` on the app, then `.buildpacks` in the pushed tree, then detection
 * over every known buildpack (built-ins first).
 */
export async function chooseBuildpacks(catalog: BuildpackCatalog, appPin: string[], appDir: string, say: (line: string) => void = () => {}): Promise<BuildpackChoice> {
  if (appPin.length > 0) return resolveBuildpacks(catalog, { pinnedBy: 'buildpacks:set', entries: appPin }, say);
  const names = await readBuildpacksFile(appDir);
  return resolveBuildpacks(catalog, names ? { pinnedBy: '.buildpacks', entries: names } : null, say);
}

/**
 * The candidates of a build: the pinned entries looked up (names) or fetched (URLs), in order;
 * without a pin, every known buildpack for detection.
 */
export async function resolveBuildpacks(
  catalog: BuildpackCatalog,
  pin: { pinnedBy: 'buildpacks:set' | '.buildpacks'; entries: string[] } | null,
  say: (line: string) => void = () => {},
): Promise<BuildpackChoice> {
  const known = await catalog.list();
  if (pin === null) return { candidates: known, pinnedBy: null };
  const source = pin.pinnedBy;
  const refs: BuildpackRef[] = [];
  for (const entry of pin.entries) {
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
  return { candidates: refs, pinnedBy: source };
}
