import type { Config } from '../../core/config.js';
import { parseRole } from '../../core/users.js';
import {
  DEFAULT_GROUPS_CLAIM,
  DEFAULT_SSO_ROLE,
  DEFAULT_USER_CLAIM,
  checkClaimName,
  checkClientId,
  clearOidcSettings,
  clientSecretFromStdin,
  parseIssuerUrl,
  readOidcSettings,
  writeOidcSettings,
} from '../../core/sso.js';
import { usageError } from '../../core/errors.js';
import { originOf } from './caller.js';
import { json, table } from './output.js';
import type { Command } from './types.js';

/** The redirect URI the provider must accept: the sign-in server's callback on the platform's domain. */
export function ssoCallbackUrl(config: Pick<Config, 'domain' | 'httpPort' | 'httpsPort'>): string {
  const https = config.httpsPort !== null;
  const port = https ? config.httpsPort : config.httpPort;
  const shown = port === (https ? 443 : 80) ? '' : `:${port}`;
  return `${https ? 'https' : 'http'}://${config.domain}${shown}/_auth/oidc/callback`;
}

/**
 * Single sign-on with an OpenID Connect provider (README, "Single sign-on"). Admins only (no
 * `access`). The client secret comes only from standard input and no command ever prints it.
 */
export const ssoCommands: Command[] = [
  {
    name: 'auth:oidc',
    usage: '<issuer-url> <client-id> --secret-stdin [--groups-claim groups] [--role viewer] [--user-claim preferred_username]',
    summary: 'Turn on single sign-on with an OpenID Connect provider (checked by discovery); the client secret is read from standard input',
    flags: { 'secret-stdin': { type: 'boolean' }, 'groups-claim': { type: 'string' }, role: { type: 'string' }, 'user-claim': { type: 'string' } },
    args: [2, 2],
    async run(io, { positionals, flags }, platform) {
      const issuer = parseIssuerUrl(positionals[0]!);
      const clientId = checkClientId(positionals[1]!);
      const groupsClaim = checkClaimName((flags['groups-claim'] as string | undefined) ?? DEFAULT_GROUPS_CLAIM, '--groups-claim');
      const userClaim = checkClaimName((flags['user-claim'] as string | undefined) ?? DEFAULT_USER_CLAIM, '--user-claim');
      const role = parseRole((flags.role as string | undefined) ?? DEFAULT_SSO_ROLE);
      if (flags['secret-stdin'] !== true) throw usageError('auth:oidc needs --secret-stdin: pipe the client secret on standard input, never as an argument');
      const clientSecret = clientSecretFromStdin(await io.readStdin());
      await platform.sso.check({ issuer, clientId, clientSecret });
      writeOidcSettings(platform.users.db, new Date(), originOf(io), { issuer, clientId, clientSecret, userClaim, groupsClaim, role });
      io.out(
        `-----> Single sign-on on: ${issuer} (client ${clientId}); new users are ${role}s\n` +
          `       Register this redirect URI at the provider: ${ssoCallbackUrl(platform.config)}\n`,
      );
    },
  },
  {
    name: 'auth:oidc:off',
    usage: '',
    summary: 'Turn single sign-on off (users it created stay, without a password until an admin sets one)',
    args: [0, 0],
    async run(io, _parsed, platform) {
      const removed = clearOidcSettings(platform.users.db, new Date(), originOf(io));
      io.out(removed ? '-----> Single sign-on off\n' : 'single sign-on was already off\n');
    },
  },
  {
    name: 'auth:oidc:info',
    usage: '[--json]',
    summary: 'Show the single sign-on settings (the client secret shows as ***)',
    flags: { json: { type: 'boolean' } },
    args: [0, 0],
    async run(io, { flags }, platform) {
      const s = readOidcSettings(platform.users.db);
      const shown = s && { issuer: s.issuer, clientId: s.clientId, clientSecret: '***', userClaim: s.userClaim, groupsClaim: s.groupsClaim, role: s.role, redirectUri: ssoCallbackUrl(platform.config), updatedAt: s.updatedAt };
      if (flags.json) {
        io.out(json(shown));
        return;
      }
      if (!shown) {
        io.out('single sign-on is off: turn it on with `slipway auth:oidc <issuer-url> <client-id> --secret-stdin`\n');
        return;
      }
      io.out(
        table([
          ['issuer', shown.issuer],
          ['client', shown.clientId],
          ['secret', shown.clientSecret],
          ['user claim', shown.userClaim],
          ['groups claim', shown.groupsClaim],
          ['new users', shown.role],
          ['redirect URI', shown.redirectUri],
          ['changed', shown.updatedAt],
        ]),
      );
    },
  },
];
