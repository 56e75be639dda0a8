import type Dockerode from 'dockerode';
import { SlipwayError } from '../core/errors.js';
import type { AppStore, Release } from '../core/store.js';
import { LABELS, listAppContainers } from './containers.js';
import { releaseImageRef } from './images.js';

/**
 * Gives an existing release image the tag of a new release (config change, rollback): every
 * release owns `slipway/<app>:v<N>` as the contract says, without a rebuild, and pruning one
 * release's tag never takes an image another release still names.
 */
export async function tagReleaseImage(docker: Dockerode, from: string, app: string, version: number): Promise<string> {
  const ref = releaseImageRef(app, version);
  try {
    await docker.getImage(from).tag({ repo: `slipway/${app}`, tag: `v${version}` });
  } catch (err) {
    throw new SlipwayError('E_DOCKER', `tagging ${from} as ${ref} failed: ${(err as Error).message}`, { cause: err });
  }
  return ref;
}

export async function imageExists(docker: Dockerode, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw new SlipwayError('E_DOCKER', `inspecting image ${ref} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Which releases lose their image: all but the newest `keep`, never the current one nor one a
 * container still runs, nor one already pruned. Pure, so the choice is testable.
 */
export function releasesToPrune(releases: readonly Pick<Release, 'version' | 'imagePruned'>[], o: { keep: number; current: number | null; inUse: ReadonlySet<number> }): number[] {
  const newestFirst = [...releases].sort((a, b) => b.version - a.version);
  return newestFirst
    .slice(o.keep)
    .filter((r) => !r.imagePruned && r.version !== o.current && !o.inUse.has(r.version))
    .map((r) => r.version)
    .sort((a, b) => a - b);
}

/** Removes one tag; false when the engine keeps it because a container still uses the image. */
export async function removeReleaseTag(docker: Dockerode, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).remove();
    return true;
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 404) return true;
    if (status === 409) return false;
    throw new SlipwayError('E_DOCKER', `removing image ${ref} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Keeps the newest `keep` release images (and the current one, and any a container runs) and
 * untags the rest; their releases stay listed, marked `imagePruned`.
 */
export async function pruneReleaseImages(o: {
  docker: Dockerode;
  apps: AppStore;
  app: string;
  keep: number;
  progress: (line: string) => void;
}): Promise<number[]> {
  const record = await o.apps.get(o.app);
  const inUse = new Set(
    (await listAppContainers(o.docker, o.app)).map((c) => Number(c.Labels[LABELS.release])).filter((v) => Number.isInteger(v)),
  );
  const chosen = releasesToPrune(record.releases, { keep: o.keep, current: record.current, inUse });
  const pruned: number[] = [];
  for (const version of chosen) {
    const release = record.releases.find((r) => r.version === version)!;
    if (await removeReleaseTag(o.docker, release.image)) pruned.push(version);
  }
  await pruneDependencyImages(o.docker, o.app, record.releases.filter((r) => !r.imagePruned && !pruned.includes(r.version)).map((r) => r.image));
  if (pruned.length === 0) return pruned;
  await o.apps.update(o.app, (a) => {
    for (const r of a.releases) if (pruned.includes(r.version)) r.imagePruned = true;
  });
  o.progress(`Pruned the images of ${pruned.map((v) => `v${v}`).join(', ')} (keeping the last ${o.keep})`);
  return pruned;
}

/**
 * Untags dependency images (`slipway/<app>:deps-<digest>`) that no kept release is built on.
 * Release images inherit the `slipway.deps` label of their dependency image, which says which.
 */
export async function pruneDependencyImages(docker: Dockerode, app: string, keptImages: string[]): Promise<void> {
  const used = new Set<string>();
  for (const ref of keptImages) {
    const info = await docker.getImage(ref).inspect().catch(() => null);
    const digest = info?.Config?.Labels?.['slipway.deps'];
    if (digest) used.add(`slipway/${app}:deps-${digest}`);
  }
  const images = await docker.listImages({ filters: { reference: [`slipway/${app}`] } });
  const stale = images.flatMap((i) => i.RepoTags ?? []).filter((t) => t.startsWith(`slipway/${app}:deps-`) && !used.has(t));
  for (const tag of stale) await removeReleaseTag(docker, tag);
}
