import fs from 'node:fs/promises';
import path from 'node:path';
import { SlipwayError } from './errors.js';
import type { Paths } from './paths.js';
import type { AppRecord, BuildRecord } from './store.js';

// What hooks/deploy.ts makes: UTC yyyymmddhhmmss, a dash, three random bytes in hex.
const BUILD_ID = /^[0-9]{14}-[0-9a-f]{6}$/;

/** A build id from a user, checked before it goes anywhere near a path. */
export function parseBuildId(text: string): string {
  if (!BUILD_ID.test(text)) {
    const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
    throw new SlipwayError('E_BUILD_ID', `invalid build id ${shown}: ids look like 20261125120000-a1b2c3 (see \`slipway builds <app>\`)`);
  }
  return text;
}

export function buildLogPath(paths: Paths, app: string, id: string): string {
  return path.join(paths.buildsDir, app, `${parseBuildId(id)}.log`);
}

/** The build asked for (the latest when `id` is undefined) and the full text of its log. */
export async function readBuildLog(paths: Paths, app: AppRecord, id: string | undefined): Promise<{ build: BuildRecord; text: string }> {
  const wanted = id === undefined ? undefined : parseBuildId(id);
  const build = wanted === undefined ? app.builds[app.builds.length - 1] : app.builds.find((b) => b.id === wanted);
  if (!build) {
    throw new SlipwayError(
      'E_BUILD_NOT_FOUND',
      wanted === undefined ? `${app.name} has no builds yet: push to deploy` : `${app.name} has no build ${wanted}: see \`slipway builds ${app.name}\``,
    );
  }
  try {
    return { build, text: await fs.readFile(buildLogPath(paths, app.name, build.id), 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new SlipwayError('E_BUILD_NOT_FOUND', `the log of build ${build.id} is gone from ${paths.buildsDir}`);
  }
}
