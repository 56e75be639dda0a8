/**
 * The sign-in and sign-out pages: small, self-contained HTML (no script, no external assets)
 * that works with any browser and screen reader (README, "Users and access").
 */
const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}' +
  'main{max-width:22rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}' +
  'h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}' +
  'input{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #767676;border-radius:4px}' +
  'button,.sso{display:block;box-sizing:border-box;width:100%;margin-top:1.2rem;padding:.6rem;font:inherit;font-weight:600;text-align:center;border:0;border-radius:4px;background:#0b5cad;color:#fff;text-decoration:none;cursor:pointer}' +
  '.sso{background:#2d3a48}[role=alert]{color:#a4000f;margin:0 0 .5rem}';

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

export interface LoginPage {
  csrf: string;
  next: string;
  /** Shown above the form (a wrong password, an expired form, too many attempts). */
  error?: string;
  username?: string;
  /** The single sign-on button's label, when a provider is configured. */
  sso?: string;
}

export function loginPage(p: LoginPage): string {
  const alert = p.error ? `<p role="alert">${esc(p.error)}</p>\n` : '';
  const sso = p.sso ? `\n<a class="sso" href="/_auth/oidc/start?next=${esc(encodeURIComponent(p.next))}">${esc(p.sso)}</a>` : '';
  return layout(
    'Sign in · Slipway',
    `<h1>Sign in to Slipway</h1>
${alert}<form method="post" action="/_auth/login">
<input type="hidden" name="csrf" value="${esc(p.csrf)}">
<input type="hidden" name="next" value="${esc(p.next)}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${esc(p.username ?? '')}"${p.username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${p.username ? ' autofocus' : ''}>
<button type="submit">Sign in</button>
</form>${sso}`,
  );
}

export function logoutPage(p: { csrf: string; user: string | null }): string {
  const who = p.user ? `<p>Signed in as ${esc(p.user)}.</p>\n` : '<p>You are not signed in.</p>\n';
  return layout(
    'Sign out · Slipway',
    `<h1>Sign out</h1>
${who}<form method="post" action="/_auth/logout">
<input type="hidden" name="csrf" value="${esc(p.csrf)}">
<button type="submit">Sign out</button>
</form>`,
  );
}

export function messagePage(title: string, text: string): string {
  return layout(`${title} · Slipway`, `<h1>${esc(title)}</h1>\n<p role="alert">${esc(text)}</p>\n<p><a href="/_auth/login">Back to sign-in</a></p>`);
}
