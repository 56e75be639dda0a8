import fs from 'node:fs/promises';
import type Dockerode from 'dockerode';
import { removeRuntimeDirs, unusedRuntimeDirs } from '../buildpacks/runtimes.js';
import { SlipwayError } from '../core/errors.js';
import { PREPARED_LABEL, RUNTIME_KEYS_LABEL, removeLeftoverLayerContainers, removeUnusedRuntimeImages, unusedPreparedImages, type ListedImage } from '../runtime/images.js';
import { engineInstance } from '../runtime/instance-engine.js';
import { BUILD_APP_LABEL } from '../runtime/labels.js';
import { stopAndRemove } from '../runtime/containers.js';

/** What `slipway prune` removed, and why it kept unpacked runtimes it could not vouch for. */
export interface PruneResult {
  containers: string[];
  images: string[];
  runtimes: string[];
  /** Set when unpacked runtimes were all kept: some image does not say which ones it was made from. */
  keptAllRuntimes?: string;
}

/** What prune keeps for pushes still to come (README `prepareRuntimes`): the default runtime's image and folders. */
export interface KeptForPushes {
  image: string;
  keys: readonly string[];
}

/**
 * The unpacked runtimes the images of the instance were made from (RUNTIME_KEYS_LABEL, inherited
 * from the prepared image), or null when an image built on a prepared one does not say (made by a
 * Slipway before the label): then none can be shown unused. Pure.
 */
export function runtimesInUse(images: readonly ListedImage[]): Set<string> | null {
  const keys = new Set<string>();
  for (const image of images) {
    const labels = image.Labels ?? {};
    if (labels[PREPARED_LABEL] === undefined) continue;
    const named = labels[RUNTIME_KEYS_LABEL];
    if (named === undefined) return null;
    for (const key of named.split(',')) if (key) keys.add(key);
  }
  return keys;
}

/**
 * Removes what the instance no longer uses (README "Cleaning up"): the build and commit
 * containers of builds that are over, runtime images no image is built on, prepared runtime
 * images no image is built on but `keep`, and unpacked runtimes no remaining image was made from
 * but `keep`. `docker` must be scoped to the instance, and no build of it may run meanwhile
 * (BuildHold, or the daemon stopped): everything of these kinds is then left over.
 */
export async function pruneInstance(o: { docker: Dockerode; runtimesDir: string; keep: KeptForPushes | null; progress: (line: string) => void }): Promise<PruneResult> {
  const instanceId = engineInstance(o.docker);
  if (instanceId === null) throw new SlipwayError('E_INTERNAL', 'prune needs an engine scoped to the instance');
  const containers = await removeLeftoverLayerContainers(o.docker);
  for (const c of await o.docker.listContainers({ all: true, filters: { label: [BUILD_APP_LABEL] } })) {
    await stopAndRemove(o.docker, c.Id, 0);
    containers.push(c.Names[0]?.slice(1) ?? c.Id.slice(0, 12));
  }
  for (const name of containers) o.progress(`removed container ${name}`);

  const images = await removeUnusedRuntimeImages(o.docker);
  const keepImages = new Set(o.keep ? [o.keep.image] : []);
  for (const tag of unusedPreparedImages(await o.docker.listImages(), { instanceId, keep: keepImages })) {
    // Never forced: an image a container still runs from stays (the engine refuses).
    const removed = await o.docker
      .getImage(tag)
      .remove()
      .then(
        () => true,
        (err: unknown) => {
          o.progress(`kept ${tag}: ${(err as Error).message}`);
          return false;
        },
      );
    if (removed) images.push(tag);
  }
  for (const tag of images) o.progress(`removed image ${tag}`);

  const inUse = runtimesInUse(await o.docker.listImages());
  if (inUse === null) {
    const keptAllRuntimes = 'kept every unpacked runtime: some images were made before they named their runtimes; they go once those releases are pruned';
    o.progress(keptAllRuntimes);
    return { containers, images, runtimes: [], keptAllRuntimes };
  }
  for (const key of o.keep?.keys ?? []) inUse.add(key);
  const runtimes = unusedRuntimeDirs(await fs.readdir(o.runtimesDir).catch(() => [] as string[]), inUse);
  await removeRuntimeDirs(o.runtimesDir, runtimes);
  for (const key of runtimes) o.progress(`removed unpacked runtime ${key}`);
  return { containers, images, runtimes };
}
