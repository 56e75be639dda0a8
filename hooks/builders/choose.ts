import { SlipwayError } from '../../core/errors.js';
import { detectBuildpacks } from './buildpacks-detect.js';
import { detectDockerfile } from './dockerfile-detect.js';
import { CLAIMS, type AppSource, type BuilderDetector, type BuilderName, type Detection } from './types.js';

/**
 * Every builder, in the order that breaks ties between equal claims. Deploys build with their
 * implementations (createBuilders); `slipway buildpacks <app>` only asks them.
 */
export const BUILDER_DETECTORS: readonly BuilderDetector[] = [
  { name: 'buildpacks', detects: detectBuildpacks },
  { name: 'dockerfile', detects: detectDockerfile },
];

/**
 * The one precedence (docs/buildpacks.md, "Choosing buildpacks"): the strongest claim wins
 * (pinned, then a build file present, then a fallback); between equal claims, the builder listed
 * first. Today that reads: `buildpacks:set`, then `.buildpacks`, then a `Dockerfile`, then
 * buildpack detection.
 */
export async function chooseBuilder<B extends BuilderDetector>(
  builders: readonly B[],
  appPin: string[],
  source: AppSource,
): Promise<{ builder: B; detection: Detection }> {
  let best: { builder: B; detection: Detection } | null = null;
  for (const builder of builders) {
    const detection = await builder.detects(source, appPin);
    if (detection === null) continue;
    if (best === null || CLAIMS.indexOf(detection.claim) < CLAIMS.indexOf(best.detection.claim)) best = { builder, detection };
  }
  if (best === null) throw new SlipwayError('E_INTERNAL', `no builder claims the app (builders: ${builders.map((b) => b.name).join(', ')})`);
  return best;
}

/** The builder name only, for callers that need no implementation. */
export async function chooseBuilderName(appPin: string[], source: AppSource): Promise<{ name: BuilderName; detection: Detection }> {
  const { builder, detection } = await chooseBuilder(BUILDER_DETECTORS, appPin, source);
  return { name: builder.name, detection };
}
