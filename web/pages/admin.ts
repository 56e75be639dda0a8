import { BUILTIN_ADMIN, type UserInfo } from '../../core/users.js';
import { html, type Html } from '../html.js';
import { commandForm, failed, layout, when, type Viewer } from './layout.js';

type Loaded<T> = { ok: true; value: T } | { ok: false; error: string };

/** `status --json`: one value per line of the platform, and the services the caller manages. */
export interface StatusService {
  kind: string;
  name: string;
  condition: string;
  links: string[];
}
export interface PlatformStatus {
  services?: StatusService[];
  [line: string]: string | number | StatusService[] | undefined;
}

export interface AdminData {
  status: Loaded<PlatformStatus>;
  users: Loaded<UserInfo[]>;
  groups: Loaded<{ name: string; members: string[] }[]>;
  keys: Loaded<{ name: string; user: string; type: string; fingerprint: string; addedAt: string }[]>;
  tokens: Loaded<{ name: string; user: string; createdAt: string; lastUsedAt: string | null }[]>;
}

const show = <T>(what: string, l: Loaded<T>, f: (v: T) => Html): Html => (l.ok ? f(l.value) : failed(what, l.error));
const roles = ['developer', 'viewer', 'admin'];

export function adminPage(v: Viewer, d: AdminData): Html {
  return layout(
    'Admin',
    v,
    'admin',
    html`<h1>Admin</h1>
<section aria-labelledby="st-h"><h2 id="st-h">Platform status</h2>
${show('the status', d.status, (s) => {
  // `services` is a list (status --json, README "Services"); every other entry is one value.
  const { services, ...rest } = s;
  return html`<dl class="facts">${Object.entries(rest).map(([k, val]) => html`<dt>${k}</dt><dd>${String(val)}</dd>`)}</dl>
${services && services.length > 0
  ? html`<h3>Services</h3><div class="scroll"><table><thead><tr><th scope="col">Kind</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Linked apps</th></tr></thead><tbody>${services.map(
      (x) => html`<tr><td>${x.kind}</td><th scope="row"><code>${x.name}</code></th><td>${x.condition}</td><td>${x.links.join(', ') || '-'}</td></tr>`,
    )}</tbody></table></div>`
  : ''}`;
})}
</section>
<section aria-labelledby="users-h"><h2 id="users-h">Users</h2>
${show('users', d.users, (us) => html`<div class="scroll"><table><thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Groups</th><th scope="col">Actions</th></tr></thead><tbody>${us.map(
  (u) => html`<tr><th scope="row">${u.name}</th><td>${commandForm(`users:role ${u.name} {role}`, html`<label class="sr-only" for="role-${u.name}">Role of ${u.name}</label><select id="role-${u.name}" name="role">${roles.map((r) => html`<option${r === u.role ? html` selected` : ''}>${r}</option>`)}</select><button type="submit">Set role</button>`, { then: 'reload', cls: 'cmd bare' })}</td>
<td>${u.locked ? 'locked' : 'active'}</td><td>${u.groups.join(', ')}</td>
<td>${commandForm(`users:${u.locked ? 'unlock' : 'lock'} ${u.name}`, html`<button type="submit">${u.locked ? 'Unlock' : 'Lock'} ${u.name}</button>`, { then: 'reload', cls: 'cmd bare' })}
${commandForm(`users:passwd ${u.name} --password-stdin`, html`<label for="pw-${u.name}">New password for ${u.name}</label><input id="pw-${u.name}" name="password" type="password" minlength="10" required autocomplete="new-password"><button type="submit">Reset password</button>`, { stdin: 'password', cls: 'cmd inline' })}
${u.name === BUILTIN_ADMIN || u.name === v.user ? '' : commandForm(`users:remove ${u.name}`, html`<button type="submit" class="danger">Remove ${u.name}</button>`, { confirm: `Remove the user ${u.name} with its SSH keys and tokens? Refused while ${u.name} is the only owner of an app.`, then: 'reload', cls: 'cmd bare' })}</td></tr>`,
)}</tbody></table></div>`)}
<h3>Add a user</h3>
${commandForm(
  'users:add {name} --role {role} --password-stdin',
  html`<label for="nu-name">User name</label><input id="nu-name" name="name" required pattern="[a-z][a-z0-9\\-]{0,29}">
<label for="nu-role">Role</label><select id="nu-role" name="role">${roles.map((r) => html`<option>${r}</option>`)}</select>
<label for="nu-pw">Password (at least 10 characters)</label><input id="nu-pw" name="password" type="password" minlength="10" required autocomplete="new-password">
<button type="submit">Add user</button>`,
  { stdin: 'password', then: 'reload', cls: 'cmd inline' },
)}
</section>
<section aria-labelledby="groups-h"><h2 id="groups-h">Groups</h2>
${show('groups', d.groups, (gs) => (gs.length === 0 ? html`<p>No groups.</p>` : html`<ul class="groups">${gs.map(
  (g) => html`<li data-group="${g.name}"><strong>${g.name}</strong> ${commandForm(`groups:destroy ${g.name}`, html`<button type="submit" class="danger">Destroy group ${g.name}</button>`, { confirm: `Destroy the group ${g.name}? Its members stay; apps shared with @${g.name} stop being shared with them.`, then: 'reload', cls: 'cmd bare' })}
${g.members.length === 0 ? html`<p>No members.</p>` : html`<ul class="people">${g.members.map((m) => html`<li>${m} ${commandForm(`groups:remove ${g.name} ${m}`, html`<button type="submit" aria-label="Remove ${m} from ${g.name}">Remove</button>`, { confirm: `Remove ${m} from the group ${g.name}?`, then: 'reload', cls: 'cmd bare' })}</li>`)}</ul>`}</li>`,
)}</ul>`))}
${commandForm('groups:create {name}', html`<label for="ng">New group</label><input id="ng" name="name" required pattern="[a-z][a-z0-9\\-]{0,29}"><button type="submit">Create group</button>`, { then: 'reload', cls: 'cmd inline' })}
${commandForm('groups:add {group} {user}', html`<label for="gm-g">Group</label><input id="gm-g" name="group" required><label for="gm-u">User</label><input id="gm-u" name="user" required><button type="submit">Add to group</button>`, { then: 'reload', cls: 'cmd inline' })}
</section>
<section aria-labelledby="keys-h"><h2 id="keys-h">SSH keys</h2>
${show('keys', d.keys, (ks) => html`<ul class="people">${ks.map((k) => html`<li>${k.name} (${k.user}, ${k.type} <code>${k.fingerprint}</code>, ${when(k.addedAt)}) ${commandForm(`ssh-keys:remove ${k.name}`, html`<button type="submit" aria-label="Remove key ${k.name}">Remove</button>`, { then: 'reload', cls: 'cmd bare', confirm: `Remove the key ${k.name}?` })}</li>`)}</ul>`)}
${commandForm('ssh-keys:add {name} - --user {user}', html`<label for="k-name">Key name</label><input id="k-name" name="name" required><label for="k-user">User</label><input id="k-user" name="user" required><label for="k-pub">Public key</label><textarea id="k-pub" name="pubkey" rows="2" required></textarea><button type="submit">Add key</button>`, { stdin: 'pubkey', then: 'reload', cls: 'cmd inline' })}
</section>
<section aria-labelledby="tokens-h"><h2 id="tokens-h">Tokens</h2>
${show('tokens', d.tokens, (ts) => html`<ul class="people">${ts.map((t) => html`<li>${t.name} (${t.user}, last used ${when(t.lastUsedAt)}) ${commandForm(`tokens:revoke ${t.name}`, html`<button type="submit" aria-label="Revoke token ${t.name}">Revoke</button>`, { then: 'reload', cls: 'cmd bare', confirm: `Revoke the token ${t.name}?` })}</li>`)}</ul>`)}
</section>`,
  );
}
