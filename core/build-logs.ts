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

/**
 * Writes a build's log as it grows (the latest build when `id` is undefined) until the build
 * ends and every byte is out, or `signal` aborts. Polls the file, which the deploy appends to,
 * every `pollMs`: a line reaches the reader within that (README "Web": within a second).
 */
export async function followBuildLog(
  paths: Paths,
  record: () => Promise<AppRecord>,
  id: string | undefined,
  io: { out(text: string): void; signal: AbortSignal },
  pollMs = 200,
): Promise<void> {
  const first = await readBuildLog(paths, await record(), id);
  const buildId = first.build.id;
  const file = buildLogPath(paths, (await record()).name, buildId);
  let offset = 0;
  const decoder = new TextDecoder();
  for (;;) {
    const build = (await record()).builds.find((b) => b.id === buildId);
    // A deploy's log goes on after the push returned, until its old processes are gone.
    const running = build?.status === 'running' || build?.retiring === true;
    const handle = await fs.open(file, 'r');
    try {
      for (;;) {
        const buf = Buffer.alloc(64 * 1024);
        const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        io.out(decoder.decode(buf.subarray(0, bytesRead), { stream: true }));
      }
    } finally {
      await handle.close();
    }
    // Read once more after the build ended, so its last lines are never cut.
    if (!running || io.signal.aborted) return;
    // One listener at a time: a listener per poll, never removed, piled up for as long as a build ran.
    await new Promise<void>((resolve) => {
      const abort = () => (clearTimeout(timer), resolve());
      const timer = setTimeout(() => (io.signal.removeEventListener('abort', abort), resolve()), pollMs);
      io.signal.addEventListener('abort', abort, { once: true });
    });
  }
}
