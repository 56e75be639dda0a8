import { SlipwayError } from './errors.js';

/** The contract's app-name rule; the one place it is checked. */
export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,29}$/;

export function isValidAppName(name: string): boolean {
  return APP_NAME_PATTERN.test(name);
}

/**
 * Validates a user-supplied app name. Accepts the spellings git clients send for a repo path
 * (`app`, `/app`, `app.git`, `/app.git`, `'app'`) only when `forRepo` is set; the name itself
 * must still match the contract exactly, so `..`, `/`, metacharacters and the like never reach a
 * path or a program.
 */
export function parseAppName(raw: string, opts: { forRepo?: boolean } = {}): string {
  let name = raw;
  if (opts.forRepo) {
    name = name.replace(/^\/+/, '');
    if (name.endsWith('.git')) name = name.slice(0, -4);
  }
  if (!isValidAppName(name)) {
    const shown = JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
    throw new SlipwayError(
      'E_APP_NAME',
      `invalid app name ${shown}: use 1-30 characters of a-z, 0-9 and '-', starting with a letter`,
    );
  }
  return name;
}

/**
 * Names a new app may not take: the platform's own URL paths and host names (`_git`, the
 * manager, portal and sign-in pages), its image repositories (`stack`, `runtime`, `base`) and
 * words a visitor would take for the platform itself. Apps created before a name was reserved
 * keep working; only `apps:create` refuses (README, "Reserved app names").
 */
export const RESERVED_APP_NAMES: ReadonlySet<string> = new Set([
  '_git',
  'admin',
  'api',
  'auth',
  'base',
  'dashboard',
  'default',
  'docker',
  'git',
  'localhost',
  'manager',
  'platform',
  'portal',
  'registry',
  'root',
  'router',
  'runtime',
  'slipway',
  'slipway-platform',
  'stack',
  'static',
  'status',
  'system',
  'www',
]);

/** An app name for `apps:create`: the contract's rule and not a reserved name. */
export function parseNewAppName(raw: string): string {
  const name = parseAppName(raw);
  if (RESERVED_APP_NAMES.has(name)) {
    throw new SlipwayError('E_APP_NAME', `app name "${name}" is reserved for the platform: choose another name (reserved: ${[...RESERVED_APP_NAMES].filter((n) => n !== '_git').join(', ')})`);
  }
  return name;
}
