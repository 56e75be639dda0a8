import { buildpacksBuilder, type BuildpacksBuilderDeps } from './buildpacks.js';
import { dockerfileBuilder, type DockerfileBuilderDeps } from './dockerfile.js';
import type { Builder } from './types.js';

export { chooseBuilder, chooseBuilderName, BUILDER_DETECTORS } from './choose.js';
export { dirSource } from './source.js';
export type { AppSource, Builder, BuildContext, Built, Detection, ChoiceMode } from './types.js';

/** The builders a deploy chooses from, in BUILDER_DETECTORS' order (choose.ts). */
export function createBuilders(deps: BuildpacksBuilderDeps & DockerfileBuilderDeps): Builder[] {
  return [buildpacksBuilder(deps), dockerfileBuilder(deps)];
}
