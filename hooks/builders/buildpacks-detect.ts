import { readBuildpacksFileFrom } from '../choose-buildpacks.js';
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
