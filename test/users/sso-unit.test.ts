import { describe, expect, it } from 'vitest';
import { normaliseSsoName, parseIssuerUrl, ssoGroupsClaim, ssoNameClaim } from '../../core/sso.js';
import { ssoCallbackUrl } from '../../receiver/commands/sso.js';

describe('single sign-on names and settings (pure)', () => {
  it('normalises provider names to the app-name rule, or refuses them', () => {
    expect(normaliseSsoName('Alice.Smith')).toBe('alice-smith');
    expect(normaliseSsoName('/eng/Ops')).toBe('eng-ops');
    expect(normaliseSsoName('bob__the  builder')).toBe('bob-the-builder');
    expect(normaliseSsoName('ＡＤＡ')).toBe('ada');
    for (const bad of ['', '42', '-', '9lives', 'x'.repeat(31), 'üü']) expect(normaliseSsoName(bad), bad).toBeNull();
  });

  it('takes the name from the configured claim, then email, then sub; addresses lose their domain', () => {
    expect(ssoNameClaim({ preferred_username: 'ann', email: 'x@y', sub: 's' }, 'preferred_username')).toBe('ann');
    expect(ssoNameClaim({ preferred_username: 'ann@corp.example', sub: 's' }, 'preferred_username')).toBe('ann');
    expect(ssoNameClaim({ preferred_username: '', email: 'bo@example.com', sub: 's' }, 'preferred_username')).toBe('bo');
    expect(ssoNameClaim({ preferred_username: 7, sub: 'sub-1' }, 'preferred_username')).toBe('sub-1');
    expect(ssoNameClaim({ upn: 'cy@x', sub: 's' }, 'upn')).toBe('cy');
  });

  it('reads the groups claim as normalised names; absent is null, not empty', () => {
    expect(ssoGroupsClaim({ groups: ['Eng', '/ops', 'eng', 3, '***'] }, 'groups')).toEqual(['eng', 'ops']);
    expect(ssoGroupsClaim({ roles: 'admins' }, 'roles')).toEqual(['admins']);
    expect(ssoGroupsClaim({ groups: null }, 'groups')).toEqual([]);
    expect(ssoGroupsClaim({}, 'groups')).toBeNull();
  });

  it('takes http(s) issuers as typed and refuses the rest', () => {
    expect(parseIssuerUrl('https://login.example.com/realms/acme')).toBe('https://login.example.com/realms/acme');
    expect(parseIssuerUrl('https://tenant.example.com/')).toBe('https://tenant.example.com/');
    for (const bad of ['login.example.com', 'ftp://x', 'https://u:p@x', 'https://x/?a=1', 'https://x/#f', 'javascript:alert(1)']) {
      expect(() => parseIssuerUrl(bad), bad).toThrow(/invalid issuer URL/);
    }
  });

  it('names the redirect URI the provider must accept', () => {
    expect(ssoCallbackUrl({ domain: 'apps.example.com', httpPort: 80, httpsPort: 443 })).toBe('https://apps.example.com/_auth/oidc/callback');
    expect(ssoCallbackUrl({ domain: 'apps.example.com', httpPort: 8080, httpsPort: 8443 })).toBe('https://apps.example.com:8443/_auth/oidc/callback');
    expect(ssoCallbackUrl({ domain: 'localhost', httpPort: 80, httpsPort: null })).toBe('http://localhost/_auth/oidc/callback');
  });
});
