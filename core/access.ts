/**
 * Who may do what to which app: one pure decision, so every door (SSH commands, SSH and HTTP
 * git, the local CLI) asks the same question (README, "Users and access").
 */
export type Role = 'admin' | 'developer' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'developer', 'viewer'];
export type AccessLevel = 'restricted' | 'authenticated' | 'public';
export const ACCESS_LEVELS: readonly AccessLevel[] = ['restricted', 'authenticated', 'public'];

export interface Actor {
  name: string;
  role: Role;
  locked: boolean;
  groups: readonly string[];
}

/** What is known of an app's access; apps from before users have no owners and are restricted. */
export interface AppAccess {
  name: string;
  level: AccessLevel;
  owners: readonly string[];
  users: readonly string[];
  groups: readonly string[];
}

export type Action =
  /** Any signed-in user: whoami, status, listing what one may see, one's own keys and tokens. */
  | 'any'
  /** Platform-wide changes: users, groups, mirror, stack, buildpack installs, the audit log. */
  | 'admin'
  /** Creating an app (the creator becomes its owner). */
  | 'app:create'
  /** Seeing that an app exists and its public facts (apps:info). */
  | 'app:view'
  /** Everything else on an app: git push and fetch, config, ps, logs, releases, access, destroy. */
  | 'app:manage';

export type Decision = 'allow' | 'denied' | 'not-found';

export function canView(user: Actor, app: AppAccess): boolean {
  if (user.locked) return false;
  if (user.role === 'admin' || app.owners.includes(user.name)) return true;
  if (app.level !== 'restricted') return true;
  return app.users.includes(user.name) || app.groups.some((g) => user.groups.includes(g));
}

export function canManage(user: Actor, app: AppAccess): boolean {
  if (user.locked) return false;
  if (user.role === 'admin') return true;
  return user.role === 'developer' && app.owners.includes(user.name);
}

/**
 * The decision for `action`. On an app the user may not even view, the answer is `not-found`,
 * the same as for an app that does not exist, so existence does not leak.
 */
export function can(user: Actor, action: Action, app: AppAccess | null = null): Decision {
  if (user.locked) return 'denied';
  switch (action) {
    case 'any':
      return 'allow';
    case 'admin':
      return user.role === 'admin' ? 'allow' : 'denied';
    case 'app:create':
      return user.role === 'viewer' ? 'denied' : 'allow';
    case 'app:view':
    case 'app:manage':
      if (app === null) return user.role === 'admin' ? 'allow' : 'not-found';
      if (!canView(user, app)) return 'not-found';
      if (action === 'app:view') return 'allow';
      return canManage(user, app) ? 'allow' : 'denied';
  }
}
