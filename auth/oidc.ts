import * as client from 'openid-client';
import type { Db } from '../core/db.js';
import { SlipwayError, oneLine } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Paths } from '../core/paths.js';
import { auditSsoFailure, normaliseSsoName, readOidcSettings, signInSsoUser, ssoGroupsClaim, ssoNameClaim, type OidcSettings } from '../core/sso.js';
import { checkEmail } from '../core/users.js';
import type { SsoBegin, SsoBeginInput, SsoFinish, SsoFinishInput, SsoProvider } from './sso.js';
import { SSO_TRANSACTION_TTL_MS, loadSsoKey, openTransaction, sealTransaction } from './sso-transaction.js';

/**
 * Single sign-on with an OpenID Connect provider through `openid-client`: the authorization-code
 * flow with PKCE (S256), state and nonce. `begin` sends the browser to the provider with a sealed
 * transaction for its cookie; `finish` checks that transaction against the callback, exchanges
 * the code, has the ID token verified (signature, issuer, audience, nonce, expiry) and signs the
 * account in as a Slipway user (core/sso.ts). Tokens, codes and the client secret are never
 * logged or audited (README, "Single sign-on"; docs/security.md).
 */

/** Seconds for any one request to the provider: a dead provider fails the sign-in, not the server. */
const PROVIDER_TIMEOUT_S = 10;

export type OidcClientSettings = Pick<OidcSettings, 'issuer' | 'clientId' | 'clientSecret'>;

/** Why a request to the provider failed, in words that hold no secret (never the response body). */
function reason(err: unknown): string {
  // A network failure is a TypeError('fetch failed') whose cause, some levels down, has the errno code.
  let deepest: unknown = err;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer in ${PROVIDER_TIMEOUT_S} s`;
    deepest = e;
  }
  return oneLine(deepest);
}

/** The provider's metadata for these settings (OpenID Connect Discovery), or one clear error. */
export async function discoverOidc(s: OidcClientSettings): Promise<client.Configuration> {
  const issuer = new URL(s.issuer);
  try {
    // ClientSecretBasic: the method providers support by default (OpenID Connect Core 9).
    return await client.discovery(issuer, s.clientId, undefined, client.ClientSecretBasic(s.clientSecret), {
      timeout: PROVIDER_TIMEOUT_S,
      execute: issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
    });
  } catch (err) {
    throw new SlipwayError('E_SSO_CONFIG', `could not read the OpenID configuration of ${s.issuer} (${reason(err)}): check the issuer URL and that this server reaches it`);
  }
}

/** An `openid-client` failure as the E_SSO_* error a user sees; its text holds no token or code. */
function providerError(err: unknown): SlipwayError {
  if (err instanceof client.AuthorizationResponseError) {
    return new SlipwayError('E_SSO_PROVIDER', `the identity provider refused the sign-in (${err.error}): try again, or ask an admin to check the client at the provider`);
  }
  if (err instanceof client.ResponseBodyError) {
    return new SlipwayError('E_SSO_PROVIDER', `the identity provider refused the code (${err.error}): start again; if it persists, an admin checks the client id and secret (\`slipway auth:oidc\`)`);
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const error = err.cause[0]?.parameters.error ?? `HTTP ${err.status}`;
    return new SlipwayError('E_SSO_PROVIDER', `the identity provider refused this platform as its client (${error}): an admin checks the client id and secret (\`slipway auth:oidc\`)`);
  }
  if (err instanceof client.ClientError) {
    // The wrapped protocol error says which check failed (`unexpected ID Token "nonce" claim
    // value`); its message names claims, never their values.
    const detail = err.cause instanceof Error ? err.cause.message : err.message;
    return new SlipwayError('E_SSO_TOKEN', `the identity provider's answer did not verify (${oneLine(detail)}): start again from the sign-in page`);
  }
  return new SlipwayError('E_SSO_PROVIDER', `could not reach the identity provider (${reason(err)}): try again later`);
}

/** Scopes to ask for: `openid`, and profile, email and the groups claim's scope where offered. */
function scopesFor(config: client.Configuration, groupsClaim: string): string {
  const offered = config.serverMetadata().scopes_supported;
  const wanted = ['profile', 'email', groupsClaim].filter((s) => (offered === undefined ? s !== groupsClaim : offered.includes(s)));
  return ['openid', ...new Set(wanted)].join(' ');
}

export interface OidcDeps {
  db: Db;
  paths: Paths;
  logger: Logger;
  now?: () => Date;
}

class OidcProvider implements SsoProvider {
  readonly label = 'Sign in with SSO';
  readonly #s: OidcSettings;
  readonly #deps: OidcDeps;
  readonly #key: () => Promise<Buffer>;
  #config: Promise<client.Configuration> | null = null;

  constructor(s: OidcSettings, deps: OidcDeps, key: () => Promise<Buffer>) {
    this.#s = s;
    this.#deps = deps;
    this.#key = key;
  }

  #now(): Date {
    return this.#deps.now?.() ?? new Date();
  }

  /** Discovered once per settings; a failure is not kept, so the next sign-in tries again. */
  #configuration(): Promise<client.Configuration> {
    if (this.#config === null) {
      this.#config = discoverOidc(this.#s);
      this.#config.catch(() => (this.#config = null));
    }
    return this.#config;
  }

  async begin(input: SsoBeginInput): Promise<SsoBegin> {
    const config = await this.#configuration();
    const verifier = client.randomPKCECodeVerifier();
    const t = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier,
      next: input.next,
      callback: input.callbackUrl,
      issuer: this.#s.issuer,
      expires: this.#now().getTime() + SSO_TRANSACTION_TTL_MS,
    };
    const redirect = client.buildAuthorizationUrl(config, {
      redirect_uri: t.callback,
      scope: scopesFor(config, this.#s.groupsClaim),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: t.state,
      nonce: t.nonce,
    });
    return { redirect: redirect.href, transaction: sealTransaction(await this.#key(), t) };
  }

  async finish(input: SsoFinishInput): Promise<SsoFinish> {
    const source = input.from ?? 'web';
    let who = 'unknown';
    try {
      const t = openTransaction(await this.#key(), input.transaction, this.#now().getTime());
      if (t.issuer !== this.#s.issuer) throw new SlipwayError('E_SSO_TRANSACTION', 'single sign-on was started with another provider: start again from the sign-in page');
      // Checked here too, before any request: a callback meant for another round trip stops at once.
      if (input.callbackUrl.searchParams.get('state') !== t.state) throw new SlipwayError('E_SSO_TRANSACTION', 'single sign-on answered a different sign-in (state mismatch): start again from the sign-in page');
      const config = await this.#configuration();
      // The token request repeats the redirect_uri of `begin` exactly, whatever host or proxy
      // spelling the browser's callback arrived under; only the query is the provider's answer.
      const response = new URL(t.callback);
      response.search = input.callbackUrl.search;
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(config, response, { pkceCodeVerifier: t.verifier, expectedState: t.state, expectedNonce: t.nonce, idTokenExpected: true });
      } catch (err) {
        throw providerError(err);
      }
      const idToken = tokens.claims();
      if (!idToken) throw new SlipwayError('E_SSO_TOKEN', 'the identity provider sent no ID token: an admin checks that the client is an OpenID Connect client');
      let claims: Record<string, unknown> = idToken;
      // Providers that follow OpenID Connect Core 5.4 to the letter put profile and group claims
      // only in the UserInfo response when an access token is issued; ask it when they are missing.
      if (!(this.#s.userClaim in idToken && this.#s.groupsClaim in idToken) && config.serverMetadata().userinfo_endpoint) {
        try {
          claims = { ...(await client.fetchUserInfo(config, tokens.access_token, idToken.sub)), ...idToken };
        } catch (err) {
          throw providerError(err);
        }
      }
      const requestedName = ssoNameClaim(claims, this.#s.userClaim);
      who = normaliseSsoName(requestedName) ?? who;
      const email = typeof claims.email === 'string' && claims.email_verified !== false ? validEmail(claims.email) : null;
      const signed = signInSsoUser(
        this.#deps.db,
        this.#now(),
        { issuer: idToken.iss, subject: idToken.sub, requestedName, email, groups: ssoGroupsClaim(claims, this.#s.groupsClaim) },
        { role: this.#s.role, source },
      );
      this.#deps.logger.info({ user: signed.user, created: signed.created }, 'single sign-on');
      return { user: signed.user, next: t.next };
    } catch (err) {
      const e = err instanceof SlipwayError ? err : new SlipwayError('E_SSO_PROVIDER', `single sign-on failed (${oneLine(err)}): start again from the sign-in page`);
      // Only our own message and code: errors from the client library may carry response bodies.
      this.#deps.logger.warn({ code: e.code, reason: e.message }, 'single sign-on refused');
      auditSsoFailure(this.#deps.db, this.#now(), { actor: who, source }, e.code);
      throw e;
    }
  }
}

function validEmail(text: string): string | null {
  try {
    return checkEmail(text);
  } catch {
    return null;
  }
}

/**
 * What the sign-in server calls on each SSO request: the provider for the current settings, or
 * null when single sign-on is off. Settings are read from the database every time (one indexed
 * row), so `auth:oidc` and `auth:oidc:off` apply at once without a restart; discovery is kept
 * while the settings stay the same.
 */
export function ssoProviderLoader(deps: OidcDeps): () => SsoProvider | null {
  let key: Promise<Buffer> | null = null;
  const sealingKey = (): Promise<Buffer> => {
    key ??= loadSsoKey(deps.paths.ssoKey);
    key.catch(() => (key = null));
    return key;
  };
  let cached: { settings: string; provider: SsoProvider } | null = null;
  return () => {
    const s = readOidcSettings(deps.db);
    if (s === null) {
      cached = null;
      return null;
    }
    const settings = JSON.stringify(s);
    if (cached?.settings !== settings) cached = { settings, provider: new OidcProvider(s, deps, sealingKey) };
    return cached.provider;
  };
}
