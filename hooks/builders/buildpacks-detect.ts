import type { AppSource, Detection } from './types.js';

/**
 * Buildpacks claim a tree pinned by `buildpacks:set` or `.buildpacks`, and any other tree as the
 * fallback (their own `bin/detect` then picks one, docs/buildpacks.md "Choosing buildpacks").
 */
export async function detectBuildpacks(source: AppSource, appPin: string[]): Promise<Detection> {
  if (appPin.length > 0) return { claim: 'pinned', mode: 'buildpacks:set', entries: [...appPin] };
  const names = await readBuildpacksFileFrom(source);
  if (names) return { claim: 'pinned', mode: '.buildpacks', entries: names };
  return { claim: 'fallback', mode: 'detect', entries: [] };
}

/** What pinned the buildpacks of a detection, and the entries; null when detection picks. Pure. */
export function pinOf(detection: Detection): { pinnedBy: 'buildpacks:set' | '.buildpacks'; entries: string[] } | null {
  return detection.mode === 'buildpacks:set' || detection.mode === '.buildpacks' ? { pinnedBy: detection.mode, entries: detection.entries } : null;
}

/** An app's `.buildpacks` (never through a link, only a regular file), or null when it lists nothing. */
export async function readBuildpacksFileFrom(source: AppSource): Promise<string[] | null> {
  const text = await source.readFile('.buildpacks', 64 * 1024);
  if (text === null) return null;
  const names = parseBuildpacksFile(text);
  return names.length > 0 ? names : null;
}

/** Parses a `.buildpacks` file: one buildpack per line, blank lines and `#` comments ignored. */
export function parseBuildpacksFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}
