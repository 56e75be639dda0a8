import type { AppSource, Detection } from './types.js';

/** A regular file named `Dockerfile` at the root (docs/buildpacks.md, "Apps with a Dockerfile"). */
export async function detectDockerfile(source: AppSource): Promise<Detection | null> {
  return (await source.isFile('Dockerfile')) ? { claim: 'present', mode: 'dockerfile', entries: [] } : null;
}
