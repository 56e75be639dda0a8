import { html, type Html } from '../html.js';
import { commandForm, layout, when, type Viewer } from './layout.js';

/** One app as `apps:list --json` describes it. */
export interface AppRow {
  name: string;
  release: number | null;
  createdAt: string;
  url: string;
  status: string;
  lastDeploy: { at: string; by: string; commit: string | null; description: string } | null;
  owners: string[];
  access: string;
  manage: boolean;
  title: string;
  description: string;
  tags: string[];
}

export type SortKey = 'name' | 'status' | 'deployed';
export const SORT_KEYS: readonly SortKey[] = ['name', 'status', 'deployed'];

/** The apps a search and sort leave, in order. Pure. */
export function selectApps(rows: readonly AppRow[], q: string, sort: SortKey): AppRow[] {
  const needle = q.trim().toLowerCase();
  const hit = (r: AppRow) => needle === '' || [r.name, r.title, r.description, r.status, ...r.owners, ...r.tags].some((t) => t.toLowerCase().includes(needle));
  const order: Record<SortKey, (a: AppRow, b: AppRow) => number> = {
    name: (a, b) => a.name.localeCompare(b.name),
    status: (a, b) => a.status.localeCompare(b.status) || a.name.localeCompare(b.name),
    // Newest deploy first; never-deployed apps last.
    deployed: (a, b) => (b.lastDeploy?.at ?? '').localeCompare(a.lastDeploy?.at ?? '') || a.name.localeCompare(b.name),
  };
  return rows.filter(hit).sort(order[sort]);
}

export function managerPage(v: Viewer, rows: readonly AppRow[], q: string, sort: SortKey, total: number): Html {
  const create =
    v.role === 'viewer'
      ? html`<p>Viewers see apps in the <a href="/Portal">Portal</a>; ask an admin for the developer role to create apps.</p>`
      : commandForm(
          'apps:create {name}',
          html`<label for="new-app">App name</label>
<input id="new-app" name="name" required maxlength="30" pattern="[a-z][a-z0-9\\-]{0,29}" autocomplete="off" aria-describedby="new-app-help">
<button type="submit">Create app</button>
<small id="new-app-help">1-30 characters: a-z, 0-9 and -, starting with a letter.</small>`,
          { then: '/Manager/apps/{name}?created=1', label: 'Create app', cls: 'cmd inline' },
        );
  const sortOption = (k: SortKey, label: string) => html`<option value="${k}"${k === sort ? html` selected` : ''}>${label}</option>`;
  const table =
    rows.length === 0
      ? html`<p>${total === 0 ? 'No apps you may manage yet.' : 'No app matches this search.'}</p>`
      : html`<div class="scroll"><table class="apps">
<caption class="sr-only">Apps you may manage</caption>
<thead><tr><th scope="col">App</th><th scope="col">Status</th><th scope="col">URL</th><th scope="col">Last deploy</th><th scope="col">Owner</th></tr></thead>
<tbody>${rows.map(
          (r) => html`<tr>
<th scope="row"><a href="/Manager/apps/${r.name}">${r.name}</a></th>
<td><span class="status s-${r.status.replace(' ', '-')}">${r.status}</span></td>
<td><a href="${r.url}">${r.url}</a></td>
<td>${r.lastDeploy ? html`${when(r.lastDeploy.at)} by ${r.lastDeploy.by}${r.lastDeploy.commit ? html` <code>${r.lastDeploy.commit.slice(0, 7)}</code>` : ''}` : 'never'}</td>
<td>${r.owners.join(', ') || 'admins'}</td>
</tr>`,
        )}</tbody></table></div>`;
  return layout(
    'App Manager',
    v,
    'manager',
    html`<h1>App Manager</h1>
${create}
<form class="search" method="get" action="/Manager" role="search">
<label for="q">Search apps</label>
<input id="q" name="q" type="search" value="${q}">
<label for="sort">Sort by</label>
<select id="sort" name="sort">${sortOption('name', 'Name')}${sortOption('status', 'Status')}${sortOption('deployed', 'Last deploy')}</select>
<button type="submit">Search</button>
</form>
<p class="count">${rows.length} of ${total} apps</p>
${table}`,
  );
}
