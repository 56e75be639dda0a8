import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/**
 * A real OpenID provider (`oidc-provider`) on 127.0.0.1 and a random port, with one static
 * confidential client and accounts whose claims a test sets. `login` plays the browser through
 * the provider's own (development) login and consent pages with plain HTTP: manual redirects and
 * a cookie jar, no browser and nothing beyond loopback.
 */
export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Claims by account id (the `sub`); change them between sign-ins. */
  accounts: Map<string, Record<string, unknown>>;
  /** Follows `authorizeUrl` as `account` through login and consent; the URL the provider sends the browser back to. */
  login(authorizeUrl: string, account: string): Promise<URL>;
  close(): Promise<void>;
}

export async function startIdp(o: { redirectUri: string }): Promise<TestIdp> {
  let handler: http.RequestListener = (_req, res) => void res.writeHead(503).end();
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const accounts = new Map<string, Record<string, unknown>>();
  const clientId = 'slipway';
  const clientSecret = 'idp-client-secret-0123456789abcdef';
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: [o.redirectUri], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' }],
    async findAccount(_ctx, id) {
      if (!accounts.has(id)) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...accounts.get(id) }) };
    },
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    pkce: { required: () => true },
    cookies: { keys: ['test-idp-cookie-key-0123456789'] },
    features: { devInteractions: { enabled: true } },
  });
  handler = provider.callback();

  async function login(authorizeUrl: string, account: string): Promise<URL> {
    const jar = new Map<string, string>();
    const request = async (url: URL, body?: URLSearchParams): Promise<Response> => {
      if (url.origin !== issuer) throw new Error(`the test browser only talks to the provider, not ${url.origin}`);
      const res = await fetch(url, {
        method: body ? 'POST' : 'GET',
        redirect: 'manual',
        headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(body ? { body: body.toString() } : {}),
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair!.indexOf('=');
        const name = pair!.slice(0, eq).trim();
        const value = pair!.slice(eq + 1).trim();
        if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name);
        else jar.set(name, value);
      }
      return res;
    };
    let url = new URL(authorizeUrl);
    for (let hop = 0; hop < 20; hop++) {
      let res = await request(url);
      if (res.status === 200 && url.pathname.startsWith('/interaction/')) {
        // The provider's own page says which step it wants: log in, or consent.
        const prompt = /name="prompt" value="(\w+)"/.exec(await res.text())?.[1];
        const form = new URLSearchParams(prompt === 'login' ? { prompt, login: account, password: 'any' } : { prompt: prompt ?? '' });
        res = await request(url, form);
      }
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) throw new Error(`the provider answered ${res.status} at ${url.pathname}: ${(await res.text()).slice(0, 300)}`);
      const next = new URL(location, url);
      if (next.href.startsWith(o.redirectUri)) return next;
      url = next;
    }
    throw new Error('the provider redirected more than 20 times');
  }

  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    login,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
