import { html, type Html } from '../html.js';
import { layout, type Viewer } from './layout.js';
import type { AppRow } from './manager.js';

/** The apps a text search and a tag leave, by title. Pure. */
export function selectCards(rows: readonly AppRow[], q: string, tag: string): AppRow[] {
  const needle = q.trim().toLowerCase();
  return rows
    .filter((r) => tag === '' || r.tags.includes(tag))
    .filter((r) => needle === '' || [r.name, r.title, r.description, ...r.tags].some((t) => t.toLowerCase().includes(needle)))
    .sort((a, b) => (a.title || a.name).localeCompare(b.title || b.name));
}

export function portalPage(v: Viewer, all: readonly AppRow[], q: string, tag: string): Html {
  const cards = selectCards(all, q, tag);
  const tags = [...new Set(all.flatMap((r) => r.tags))].sort();
  return layout(
    'Portal',
    v,
    'portal',
    html`<h1>Portal</h1>
<form class="search" method="get" action="/Portal" role="search">
<label for="q">Search</label><input id="q" name="q" type="search" value="${q}">
<label for="tag">Tag</label><select id="tag" name="tag"><option value="">any</option>${tags.map((t) => html`<option value="${t}"${t === tag ? html` selected` : ''}>${t}</option>`)}</select>
<button type="submit">Search</button>
</form>
${cards.length === 0
  ? html`<p>${all.length === 0 ? 'No apps are shared with you yet.' : 'No app matches this search.'}</p>`
  : html`<ul class="gallery">${cards.map(
      (r) => html`<li class="card">
<h2><a href="${r.url}">${r.title || r.name}</a></h2>
<p class="app-name"><code>${r.name}</code>${r.manage ? html` · <a href="/Manager/apps/${r.name}">manage</a>` : ''}</p>
${r.description ? html`<p class="desc">${r.description}</p>` : ''}
${r.tags.length ? html`<p class="tags">${r.tags.map((t) => html`<a class="tag" href="/Portal?tag=${encodeURIComponent(t)}">${t}</a> `)}</p>` : ''}
</li>`,
    )}</ul>`}`,
  );
}
