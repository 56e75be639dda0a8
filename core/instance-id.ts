import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isValidAppName } from './app-name.js';
import { SlipwayError } from './errors.js';
import { createFileOnce, pathExists, readJson, readTextIfExists, writeJsonAtomic } from './files.js';

/** 64 random bits as hex: what tells this SLIPWAY_HOME's engine objects from another's. */
export const INSTANCE_ID_PATTERN = /^[0-9a-f]{16}$/;

async function readId(file: string): Promise<string | null> {
  const text = await readTextIfExists(file);
  if (text === null) return null;
  const id = text.trim();
  if (!INSTANCE_ID_PATTERN.test(id)) {
    throw new SlipwayError('E_STATE', `${file} is not a Slipway instance id (16 hex digits): restore it from a backup, or remove it to start as a new instance`);
  }
  return id;
}

/**
 * This instance's id, created once (createFileOnce: a reader never sees half an id and two
 * first starts agree on one).
 */
export async function ensureInstanceId(file: string): Promise<string> {
  const existing = await readId(file);
  if (existing) return existing;
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await createFileOnce(file, Buffer.from(`${randomBytes(8).toString('hex')}\n`), 0o644);
  const id = await readId(file);
  if (!id) throw new SlipwayError('E_STATE', `could not create ${file}`);
  return id;
}

/** An instance: its id, and the apps whose engine objects from before instance ids it adopts. */
export interface Instance {
  id: string;
  /**
   * Apps this SLIPWAY_HOME had when it first got its id (an upgrade): their containers and
   * images were made without `slipway.instance`, and this instance still owns them until they
   * are replaced. Empty for an instance born with an id.
   */
  legacyApps: ReadonlySet<string>;
}

/**
 * Loads (or creates) the instance. The legacy list is written before the id, so a start that
 * dies between the two still records it on the next try.
 */
export async function loadInstance(o: { idFile: string; legacyAppsFile: string; listApps: () => Promise<string[]> }): Promise<Instance> {
  if ((await readId(o.idFile)) === null && !(await pathExists(o.legacyAppsFile))) {
    const apps = await o.listApps();
    if (apps.length > 0) {
      await fs.mkdir(path.dirname(o.legacyAppsFile), { recursive: true, mode: 0o700 });
      await writeJsonAtomic(o.legacyAppsFile, { apps });
    }
  }
  const id = await ensureInstanceId(o.idFile);
  const stored = await readJson<{ apps?: unknown }>(o.legacyAppsFile, {});
  const apps = Array.isArray(stored.apps) ? stored.apps.filter((a): a is string => typeof a === 'string' && isValidAppName(a)) : [];
  return { id, legacyApps: new Set(apps) };
}
