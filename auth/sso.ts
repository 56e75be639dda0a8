/**
 * The seam between the sign-in server (auth/server.ts) and a single sign-on provider
 * (auth/oidc.ts). The server owns sessions, cookies, CSRF and `next` validation; a provider only
 * turns a browser round trip into a Slipway user name. See README "Users and access".
 */
export interface SsoBeginInput {
  /** Where to go after sign-in; already validated by the server (a path or a platform URL). */
  next: string;
  /** The absolute callback URL the provider must redirect to (…/_auth/oidc/callback). */
  callbackUrl: string;
}

export interface SsoBegin {
  /** Absolute URL at the provider to 302 the browser to. */
  redirect: string;
  /**
   * Opaque value the server stores in a short-lived HttpOnly cookie (`slipway_sso`) and hands
   * back to `finish`; holds state, nonce and PKCE verifier (signed or encrypted by the provider).
   */
  transaction: string;
}

export interface SsoFinishInput {
  /** The full callback URL the browser arrived on (with code and state in the query). */
  callbackUrl: URL;
  /** The `slipway_sso` cookie value from `begin`; '' when missing. */
  transaction: string;
  /** Where the browser came from, for the audit log (`http <address>`); `web` when unset. */
  from?: string;
}

export interface SsoFinish {
  /** The Slipway user name, created or updated by the provider (role, groups) before returning. */
  user: string;
  /** The `next` given to `begin`. */
  next: string;
}

export interface SsoProvider {
  /** The button label on the sign-in page, e.g. "Sign in with SSO". */
  readonly label: string;
  begin(input: SsoBeginInput): Promise<SsoBegin>;
  /** Throws a SlipwayError (code E_SSO_*) on any mismatch; the server answers 401. */
  finish(input: SsoFinishInput): Promise<SsoFinish>;
}
