import { SlipwayError } from '../../core/errors.js';

/** The Procfile of the built app wins; without one, the builder's default process types. Pure. */
export function processTypesFrom(procfile: Record<string, string> | null, defaults: Record<string, string>): Record<string, string> {
  const types = procfile ?? defaults;
  if (Object.keys(types).length === 0) {
    throw new SlipwayError('E_PROCFILE', 'no process types: add a Procfile such as "web: node server.js", or a start script the buildpack can use');
  }
  return types;
}
