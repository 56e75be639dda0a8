import path from 'node:path';
import { isValidAppName } from '../core/app-name.js';
import { SlipwayError } from '../core/errors.js';
import { fetchBuildpack, parseBuildpackUrl, type BuildpackUrl } from '../buildpacks/fetch-url.js';
import type { BuildpackPlugins } from '../buildpacks/plugins.js';
import type { BuildpackRef } from '../buildpacks/runner.js';
import { UrlGuard } from '../buildpacks/url-guard.js';

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

/** Checks one pinned entry without touching the disk or the network: a buildpack name or a URL. Pure. */
export function checkBuildpackEntry(entry: string, source: string): BuildpackUrl | string {
  const url = parseBuildpackUrl(entry);
  if (url) return url;
  if (!isValidAppName(entry)) {
    throw new SlipwayError('E_BUILDPACK', `${source} names ${JSON.stringify(entry.slice(0, 100))}, which is neither a buildpack name (a-z, 0-9, '-') nor an https/git URL`);
  }
  return entry;
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
