import type { Role } from './access.js';
import { isValidAppName } from './app-name.js';
import type { Db } from './db.js';
import { SlipwayError, usageError } from './errors.js';
import { checkPrincipalName, writeAudit, type Origin } from './users.js';

/**
 * Single sign-on state in the platform database: the one OpenID Connect provider (`auth:oidc`)
 * and which provider account each SSO user is. The protocol itself is auth/oidc.ts; this file
 * only decides, inside one transaction, which Slipway user a verified sign-in is (README,
 * "Single sign-on").
 */
export interface OidcSettings {
  issuer: string;
  clientId: string;
  /** Never printed, logged or audited: commands show `***`. */
  clientSecret: string;
  /** The claim that names the user (falls back to the email's local part, then `sub`). */
  userClaim: string;
  /** The claim that lists the user's groups. */
  groupsClaim: string;
  /** The role of a user created by their first sign-in. */
  role: Role;
  updatedAt: string;
}

export const DEFAULT_USER_CLAIM = 'preferred_username';
export const DEFAULT_GROUPS_CLAIM = 'groups';
export const DEFAULT_SSO_ROLE: Role = 'viewer';

interface SettingsRow {
  issuer: string;
  client_id: string;
  client_secret: string;
  user_claim: string;
  groups_claim: string;
  role: Role;
  updated_at: string;
}

/** The current provider settings; null when single sign-on is off. */
export function readOidcSettings(db: Db): OidcSettings | null {
  const r = db.prepare('SELECT * FROM oidc_settings WHERE id = 1').get() as SettingsRow | undefined;
  if (!r) return null;
  return { issuer: r.issuer, clientId: r.client_id, clientSecret: r.client_secret, userClaim: r.user_claim, groupsClaim: r.groups_claim, role: r.role, updatedAt: r.updated_at };
}

/** What `auth:oidc:info` and the audit log may show: everything but the secret. */
export function describeOidc(s: OidcSettings): string {
  return `issuer=${s.issuer} client=${s.clientId} user-claim=${s.userClaim} groups-claim=${s.groupsClaim} role=${s.role}`;
}

export function writeOidcSettings(db: Db, now: Date, o: Origin, s: Omit<OidcSettings, 'updatedAt'>): void {
  db.transaction(() => {
    db.prepare(
      `INSERT INTO oidc_settings (id, issuer, client_id, client_secret, user_claim, groups_claim, role, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, client_secret = excluded.client_secret,
         user_claim = excluded.user_claim, groups_claim = excluded.groups_claim, role = excluded.role, updated_at = excluded.updated_at`,
    ).run(s.issuer, s.clientId, s.clientSecret, s.userClaim, s.groupsClaim, s.role, now.toISOString());
    writeAudit(db, now, o, 'auth:oidc', null, describeOidc({ ...s, updatedAt: '' }));
  }).immediate();
}

/** Turns single sign-on off; false when it was off already. SSO users and their links stay. */
export function clearOidcSettings(db: Db, now: Date, o: Origin): boolean {
  return db.transaction(() => {
    const removed = db.prepare('DELETE FROM oidc_settings WHERE id = 1').run().changes > 0;
    if (removed) writeAudit(db, now, o, 'auth:oidc:off', null);
    return removed;
  }).immediate();
}

/** Claim names are JSON member names; keep them printable and short so they read back in `auth:oidc:info`. */
export function checkClaimName(text: string, flag: string): string {
  if (!/^[A-Za-z0-9_.:/-]{1,100}$/.test(text)) throw usageError(`invalid ${flag} ${JSON.stringify(text.slice(0, 40))}: use a claim name such as groups or preferred_username`);
  return text;
}

/**
 * A name from the provider in the app-name rule's shape, or null when it cannot be one:
 * lower case, every run of other characters (`.`, `_`, `@`, `/`, spaces) becomes one `-`, and
 * `-` is trimmed from both ends (`John.Doe` -> `john-doe`, Keycloak's `/eng/ops` -> `eng-ops`).
 * Nothing is cut to fit: a shortened name could belong to someone else. Pure.
 */
export function normaliseSsoName(raw: string): string | null {
  const name = raw.normalize('NFKC').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return isValidAppName(name) ? name : null;
}

/**
 * The user name a sign-in asks for: the configured claim, else `email`, else `sub`; of an
 * address (an email, or the `user@domain` names some providers use) only the part before `@`.
 * Pure.
 */
export function ssoNameClaim(claims: Record<string, unknown>, userClaim: string): string {
  const pick = [claims[userClaim], claims.email, claims.sub].find((v): v is string => typeof v === 'string' && v !== '') ?? '';
  return pick.includes('@') ? pick.slice(0, pick.lastIndexOf('@')) : pick;
}

/**
 * The groups claim as a list of normalised group names (anything else in it is ignored), or
 * null when the provider sent no such claim: then memberships are left as admins set them. Pure.
 */
export function ssoGroupsClaim(claims: Record<string, unknown>, groupsClaim: string): string[] | null {
  if (!(groupsClaim in claims)) return null;
  const value = claims[groupsClaim];
  const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  const names = list.filter((g): g is string => typeof g === 'string').map(normaliseSsoName);
  return [...new Set(names.filter((g): g is string => g !== null))].sort();
}

export interface SsoIdentity {
  issuer: string;
  subject: string;
  /** The name the claims ask for, before normalising (shown in errors). */
  requestedName: string;
  email: string | null;
  /** Null: the provider sent no groups claim; memberships stay as they are. */
  groups: readonly string[] | null;
}

export interface SsoSignIn {
  user: string;
  created: boolean;
  /** The user's groups after the sign-in. */
  groups: string[];
}

const show = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

/**
 * The Slipway user for a verified provider account, in one transaction with its audit entry.
 * A known (issuer, subject) is its linked user, whatever name the provider sends today. A new
 * one gets a new user with the configured role, and never an existing user of the same name:
 * that could be a password user, the built-in admin, or an SSO user of another account.
 * Groups: when the provider sends the groups claim, the user's memberships become exactly the
 * claimed groups that exist in Slipway; the provider's other groups are ignored, so an IdP with hundreds of groups does not flood the
 * platform, and admins choose which ones matter by creating them (README, "Single sign-on").
 * Locked users are refused. The role of an existing user is never touched: admins own roles.
 */
export function signInSsoUser(db: Db, now: Date, id: SsoIdentity, o: { role: Role; source: string }): SsoSignIn {
  return db.transaction((): SsoSignIn => {
    const linked = db.prepare('SELECT user_name FROM sso_identities WHERE issuer = ? AND subject = ?').get(id.issuer, id.subject) as { user_name: string } | undefined;
    let user = linked?.user_name;
    let created = false;
    if (user === undefined) {
      const name = normaliseSsoName(id.requestedName);
      if (name === null) {
        throw new SlipwayError('E_SSO_USER', `the name ${show(id.requestedName)} from single sign-on cannot be a Slipway user name (1-30 of a-z, 0-9, '-', starting with a letter): ask an admin to set the user claim (\`slipway auth:oidc ... --user-claim\`)`);
      }
      checkPrincipalName(name, 'user');
      if (db.prepare('SELECT 1 FROM users WHERE name = ?').get(name)) {
        throw new SlipwayError('E_SSO_USER', `a Slipway user named "${name}" exists and is not this single sign-on account: ask an admin to rename or remove it`);
      }
      db.prepare('INSERT INTO users (name, role, email, password_hash, locked, created_at) VALUES (?, ?, ?, NULL, 0, ?)').run(name, o.role, id.email, now.toISOString());
      db.prepare('INSERT INTO sso_identities (issuer, subject, user_name, created_at) VALUES (?, ?, ?, ?)').run(id.issuer, id.subject, name, now.toISOString());
      writeAudit(db, now, { actor: name, source: o.source }, 'users:add', null, `user=${name} role=${o.role} via=oidc`);
      user = name;
      created = true;
    }
    const row = db.prepare('SELECT locked FROM users WHERE name = ?').get(user) as { locked: number };
    if (row.locked === 1) throw new SlipwayError('E_SSO_LOCKED', `the user ${user} is locked: ask an admin to unlock it (\`slipway users:unlock ${user}\`)`);
    if (id.groups !== null) {
      const existing = new Set((db.prepare('SELECT name FROM groups').all() as { name: string }[]).map((g) => g.name));
      db.prepare('DELETE FROM memberships WHERE user_name = ?').run(user);
      const add = db.prepare('INSERT INTO memberships (group_name, user_name) VALUES (?, ?)');
      for (const g of id.groups) if (existing.has(g)) add.run(g, user);
    }
    const groups = (db.prepare('SELECT group_name FROM memberships WHERE user_name = ? ORDER BY group_name').all(user) as { group_name: string }[]).map((r) => r.group_name);
    writeAudit(db, now, { actor: user, source: o.source }, 'sign-in', null, `via=oidc groups=${groups.join(',') || '-'}`);
    return { user, created, groups };
  }).immediate();
}

/** A refused sign-in, for the audit log: the code only, never a token or claim value beyond the name. */
export function auditSsoFailure(db: Db, now: Date, o: Origin, code: string): void {
  writeAudit(db, now, o, 'sign-in-failed', null, `via=oidc code=${code}`);
}

/**
 * An issuer as `auth:oidc` takes it: an absolute http(s) URL without credentials, query or
 * fragment (the Issuer Identifier of OpenID Connect Discovery). It is kept as typed: discovery
 * checks it against the provider's own, trailing `/` included. Plain http is for providers on
 * loopback or a trusted network.
 */
export function parseIssuerUrl(text: string): string {
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash || text.length > 500) {
    throw usageError(`invalid issuer URL ${show(text)}: use the provider's https:// issuer, e.g. https://login.example.com/realms/acme`);
  }
  return text;
}

/** Client ids are opaque to us; keep them to one printable line. */
export function checkClientId(text: string): string {
  if (!/^[\x21-\x7e]{1,200}$/.test(text)) throw usageError(`invalid client id ${show(text)}: use the client id the provider shows (printable, no spaces)`);
  return text;
}

/** The client secret: the first line of standard input, as `--secret-stdin` promises. */
export function clientSecretFromStdin(text: string): string {
  const line = text.split('\n')[0]!.replace(/\r$/, '');
  if (line === '') throw usageError('no client secret on standard input: pipe one line, e.g. `read -rs S; printf "%s\\n" "$S" | slipway auth:oidc ... --secret-stdin`');
  if (line.length > 1024 || /[\0-\x1f\x7f]/.test(line)) throw usageError('the client secret on standard input is not one printable line of at most 1024 characters');
  return line;
}
