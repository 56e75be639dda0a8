import { can, type Action, type Actor } from '../../core/access.js';
import { parseAppName } from '../../core/app-name.js';
import { SlipwayError } from '../../core/errors.js';
import { appNotFound } from '../../core/store.js';
import { BUILTIN_ADMIN, type Origin } from '../../core/users.js';
import type { CommandIO, Platform } from './types.js';

const LOCAL_ADMIN: Actor = { name: BUILTIN_ADMIN, role: 'admin', locked: false, groups: [] };

export const permissionDenied = (what: string): SlipwayError => new SlipwayError('E_AUTH', `permission denied: ${what}`);

/**
 * The user a command runs as. The local CLI is the built-in admin; anyone else must be a known,
 * unlocked user (a key or token whose user was removed or locked has no rights).
 */
export function callerOf(io: CommandIO, platform: Platform): Actor {
  if (io.local && (io.user === undefined || io.user === BUILTIN_ADMIN)) return LOCAL_ADMIN;
  const actor = io.user === undefined ? null : platform.users.actor(io.user);
  if (!actor || actor.locked) throw permissionDenied('this key or token has no user that may act: ask an admin');
  return actor;
}

export function originOf(io: CommandIO): Origin {
  return { actor: io.user ?? (io.local ? BUILTIN_ADMIN : io.actor), source: io.from ?? (io.local ? 'local socket' : 'ssh') };
}

/**
 * Refuses unless the caller may do `action` (on `app`, for app actions). An app the caller may
 * not view gets the same answer as one that does not exist.
 */
export async function authorize(io: CommandIO, platform: Platform, action: Action, app?: string): Promise<Actor> {
  const actor = callerOf(io, platform);
  if (action === 'app:view' || action === 'app:manage') {
    const name = parseAppName(app ?? '');
    const exists = (await platform.apps.find(name)) !== null;
    const decision = can(actor, action, exists ? platform.users.access(name) : null);
    if (decision === 'not-found') throw appNotFound(name);
    if (decision === 'denied') throw permissionDenied(`${actor.name} (${actor.role}) may not change ${name}: ask one of its owners or an admin`);
    return actor;
  }
  const decision = can(actor, action);
  if (decision !== 'allow') {
    throw permissionDenied(action === 'app:create' ? `${actor.name} is a ${actor.role}: only developers and admins create apps` : `${actor.name} (${actor.role}) may not do this: it needs an admin`);
  }
  return actor;
}
