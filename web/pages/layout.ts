import { html, type Html } from '../html.js';

export interface Viewer {
  user: string;
  role: string;
  csrf: string;
  /** The sign-in server's session-bound sign-out token; without it `Sign out` links to its form. */
  signOut?: string;
}

/**
 * The page frame: one stylesheet and one script from the platform itself, nothing inline (CSP).
 * Sign out is one button posting straight to the sign-in server's /_auth/logout with a token
 * bound to this session, which the platform makes with that server's secret (docs/web.md,
 * "Signing out"); without one it links to that server's own sign-out form.
 */
export function layout(title: string, v: Viewer, active: 'manager' | 'portal' | 'admin', body: Html): Html {
  const nav = (href: string, label: string, key: typeof active) => html`<a href="${href}"${key === active ? html` aria-current="page"` : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="slipway-csrf" content="${v.csrf}">
<title>${title} · Slipway</title>
<link rel="stylesheet" href="/_web/assets/app.css">
<script src="/_web/assets/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">Slipway</span>
  <nav aria-label="Platform">
    ${nav('/Manager', 'App Manager', 'manager')}
    ${nav('/Portal', 'Portal', 'portal')}
    ${v.role === 'admin' ? nav('/Manager/admin', 'Admin', 'admin') : ''}
  </nav>
  <div class="who">
    <span>${v.user} (${v.role})</span>
    ${v.signOut
      ? html`<form class="signout" method="post" action="/_auth/logout"><input type="hidden" name="csrf" value="${v.signOut}"><button type="submit">Sign out</button></form>`
      : html`<a href="/_auth/logout">Sign out</a>`}
  </div>
</header>
<main id="main">
<p id="flash" role="status" aria-live="polite" class="flash" hidden></p>
${body}
</main>
</body>
</html>
`;
}

/** A section that could not load says so in one line, and the rest of the page still works. */
export function failed(what: string, error: string): Html {
  return html`<p class="error" role="alert">Could not load ${what}: ${error}</p>`;
}

/** `2026-12-02T03:09:14.000Z` -> `2026-12-02 03:09 UTC`. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '-';
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/**
 * A form the page script turns into one command: `data-argv` is the command line, split on
 * spaces first, then `{field}` in each word replaced by that field's value (one word each, so a
 * value with spaces stays one argument); a word in `[...]` is left out when a field in it is
 * empty (`[--as={var}]`). `and` is a second command run only after the first succeeded
 * (create a service, then link it). docs/web.md lists the attributes.
 */
export function commandForm(argv: string, body: Html, o: { confirm?: string; then?: string; stdin?: string; label?: string; cls?: string; and?: string } = {}): Html {
  return html`<form class="${o.cls ?? 'cmd'}" data-argv="${argv}"${o.and ? html` data-and="${o.and}"` : ''}${o.confirm ? html` data-confirm="${o.confirm}"` : ''}${o.then ? html` data-then="${o.then}"` : ''}${o.stdin ? html` data-stdin="${o.stdin}"` : ''}${o.label ? html` aria-label="${o.label}"` : ''}>${body}<output class="result" aria-live="polite"></output></form>`;
}
