import { usageError } from './errors.js';
import { currentRelease, type AppRecord, type PortalInfo } from './store.js';

/** Bounds on what an owner may write on an app's Portal card (README, "Web"). */
export const PORTAL_LIMITS = { title: 80, description: 1000, tags: 10 } as const;
const TAG = /^[a-z0-9][a-z0-9-]{0,29}$/;
// Control characters would hide text or break a line in listings; a card is plain text.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/;

/**
 * `title=... description=... tags=a,b` -> the changed fields of a Portal card. Each field may be
 * given once; an empty value clears it. Pure; every field is checked before anything changes.
 */
export function parsePortalFields(args: readonly string[]): Partial<PortalInfo> {
  const out: Partial<PortalInfo> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? '' : arg.slice(eq + 1).trim();
    if (eq === -1 || !['title', 'description', 'tags'].includes(key)) {
      throw usageError(`expected title=..., description=... or tags=a,b, got ${JSON.stringify(arg.slice(0, 40))}`);
    }
    if (key in out) throw usageError(`${key} is given twice: give it once`);
    if (CONTROL.test(value) || (key === 'title' && value.includes('\n'))) throw usageError(`${key} holds control characters: use plain text`);
    if (key === 'tags') {
      const tags = [...new Set(value.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''))];
      const bad = tags.find((t) => !TAG.test(t));
      if (bad !== undefined) throw usageError(`invalid tag ${JSON.stringify(bad.slice(0, 40))}: use a-z, 0-9 and '-', up to 30 characters`);
      if (tags.length > PORTAL_LIMITS.tags) throw usageError(`too many tags (${tags.length}): use at most ${PORTAL_LIMITS.tags}`);
      out.tags = tags;
    } else {
      const limit = PORTAL_LIMITS[key as 'title' | 'description'];
      if (value.length > limit) throw usageError(`${key} is ${value.length} characters long: use at most ${limit}`);
      out[key as 'title' | 'description'] = value;
    }
  }
  return out;
}

export type AppStatus = 'building' | 'failed build' | 'not deployed' | 'running' | 'stopped';

/**
 * What a listing says about an app, from its record and how many web upstreams the router has
 * for it. The record alone answers fast for hundreds of apps; the app page asks the engine (`ps`).
 */
export function appStatus(app: AppRecord, routed: number): AppStatus {
  const last = app.builds[app.builds.length - 1];
  if (last?.status === 'running') return 'building';
  if (last?.status === 'failed') return 'failed build';
  const release = currentRelease(app);
  if (release === null) return 'not deployed';
  // A worker-only app has no web route: it counts as running when its formation asks for any.
  const wantsWorkers = Object.entries(app.formation).some(([type, n]) => type !== 'web' && n > 0 && release.processTypes[type] !== undefined);
  return routed > 0 || (release.processTypes.web === undefined && wantsWorkers) ? 'running' : 'stopped';
}
