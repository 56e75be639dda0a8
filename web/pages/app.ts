import type { AppAccess } from '../../core/access.js';
import type { BuildRecord } from '../../core/store.js';
import { html, type Html } from '../html.js';
import { commandForm, failed, layout, when, type Viewer } from './layout.js';

type Loaded<T> = { ok: true; value: T } | { ok: false; error: string };

export interface AppInfo {
  name: string;
  release: string | null;
  commit: string | null;
  url: string;
  pathUrl: string;
  gitSsh: string;
  gitHttp: string;
  formation: Record<string, number>;
  processTypes: Record<string, string>;
  deployBranch: string;
}

export interface ProcessRow {
  name: string;
  type: string;
  state: string;
  release: number | null;
  memory: string | null;
  cpus: number | null;
}

export interface ReleaseRow {
  version: number;
  current: boolean;
  createdAt: string;
  by: string;
  description: string;
  imagePruned: boolean;
  commit: string | null;
}

/** One row of `services <app> --json`: a linked service, never its password. */
export interface LinkedService {
  kind: string;
  name: string;
  var: string;
  condition: string;
}

export interface AppPageData {
  info: AppInfo;
  created: boolean;
  ps: Loaded<ProcessRow[]>;
  builds: Loaded<BuildRecord[]>;
  releases: Loaded<ReleaseRow[]>;
  configKeys: Loaded<string[]>;
  access: Loaded<AppAccess>;
  services: Loaded<LinkedService[]>;
  portal: { title: string; description: string; tags: string[] };
}

const section = (id: string, title: string, body: Html) => html`<section id="${id}" aria-labelledby="${id}-h"><h2 id="${id}-h">${title}</h2>${body}</section>`;
function loaded<T>(what: string, l: Loaded<T>, show: (v: T) => Html): Html {
  return l.ok ? show(l.value) : failed(what, l.error);
}

function overview(d: AppPageData): Html {
  const { info } = d;
  const app = info.name;
  const types = [...new Set([...Object.keys(info.processTypes).filter((t) => t !== 'release'), ...Object.keys(info.formation)])].sort();
  return section(
    'overview',
    'Overview',
    html`<dl class="facts">
<dt>URL</dt><dd><a href="${info.url}">${info.url}</a> (also <a href="${info.pathUrl}">${info.pathUrl}</a>)</dd>
<dt>Release</dt><dd>${info.release ?? 'not deployed yet'}${info.commit ? html` from <code>${info.commit.slice(0, 7)}</code>` : ''}</dd>
<dt>Deploy branch</dt><dd><code>${info.deployBranch}</code></dd>
</dl>
<h3>Containers</h3>
${loaded('containers', d.ps, (ps) =>
  ps.length === 0
    ? html`<p>No containers.</p>`
    : html`<div class="scroll"><table><thead><tr><th scope="col">Container</th><th scope="col">State</th><th scope="col">Release</th><th scope="col">Limits</th></tr></thead><tbody>${ps.map(
        (p) => html`<tr><th scope="row"><code>${p.name}</code></th><td>${p.state}</td><td>${p.release === null ? '-' : `v${p.release}`}</td><td>${p.memory ?? ''} ${p.cpus === null ? '' : `${p.cpus} cpus`}</td></tr>`,
      )}</tbody></table></div>`,
)}
<h3>Scale</h3>
${types.length === 0
  ? html`<p>Deploy first: process types come from the Procfile.</p>`
  : types.map((t) =>
      commandForm(
        `ps:scale ${app} ${t}={count}`,
        html`<label for="scale-${t}">${t} containers</label><input id="scale-${t}" name="count" type="number" min="0" max="100" required value="${info.formation[t] ?? 0}"><button type="submit">Scale ${t}</button>`,
        { then: 'reload', cls: 'cmd inline' },
      ),
    )}
<div class="buttons">
${commandForm(`ps:restart ${app}`, html`<button type="submit">Restart</button>`, { then: 'reload', cls: 'cmd bare' })}
${commandForm(`ps:stop ${app}`, html`<button type="submit">Stop</button>`, { then: 'reload', confirm: `Stop every container of ${app}? Its URL answers 503 until you start it.`, cls: 'cmd bare' })}
${commandForm(`ps:start ${app}`, html`<button type="submit">Start</button>`, { then: 'reload', cls: 'cmd bare' })}
</div>`,
  );
}

function deploy(d: AppPageData): Html {
  const { info } = d;
  return section(
    'deploy',
    'Deploy with git',
    html`${d.created ? html`<p class="note">Created ${info.name}. Push your code to deploy it:</p>` : ''}
<h3>Over SSH</h3>
<pre class="cmdline">git remote add slipway ${info.gitSsh}
git push slipway ${info.deployBranch}</pre>
<p>Your SSH key must be added first (an admin runs <code>slipway ssh-keys:add</code>).</p>
<h3>Over HTTPS</h3>
<pre class="cmdline">git remote add slipway-http ${info.gitHttp}
git push slipway-http ${info.deployBranch}</pre>
<p>Git asks for a password: use a token. A new token is shown only once.</p>
${commandForm(
  'tokens:create {name}',
  html`<label for="token-name">Token name</label><input id="token-name" name="name" required maxlength="30" pattern="[a-z][a-z0-9\\-]{0,29}" value="${info.name}-push"><button type="submit">Create token</button>`,
  { cls: 'cmd inline', label: 'Create a token' },
)}`,
  );
}

function builds(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'builds',
    'Builds',
    html`<div data-builds="${app}">${loaded('builds', d.builds, (bs) =>
      bs.length === 0
        ? html`<p class="empty">No builds yet: push to deploy.</p>`
        : html`<ul class="builds">${bs.map(
            (b) => html`<li><button type="button" class="link" data-build-log="${b.id}">${b.id}</button> <span class="status s-${b.status}">${b.status}</span> <code>${b.commit.slice(0, 7)}</code> by ${b.by}, ${when(b.startedAt)}${b.error ? html` <span class="error">${b.error}</span>` : ''}</li>`,
          )}</ul>`,
    )}</div>
<h3 id="build-log-h">Build log <span data-build-current></span></h3>
<pre class="log" data-build-pane="${app}" aria-labelledby="build-log-h" tabindex="0">Choose a build above; a running build streams here live.</pre>`,
  );
}

function releases(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'releases',
    'Releases',
    loaded('releases', d.releases, (rs) =>
      rs.length === 0
        ? html`<p>No releases yet.</p>`
        : html`<div class="scroll"><table><thead><tr><th scope="col">Release</th><th scope="col">When</th><th scope="col">By</th><th scope="col">What</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead><tbody>${rs.map(
            (r) => html`<tr><th scope="row">v${r.version}${r.current ? ' (current)' : ''}</th><td>${when(r.createdAt)}</td><td>${r.by}</td><td>${r.description}</td><td>${
              r.current || r.imagePruned
                ? r.imagePruned
                  ? 'image pruned'
                  : ''
                : commandForm(`rollback ${app} v${r.version}`, html`<button type="submit">Roll back to v${r.version}</button>`, {
                    confirm: `Roll ${app} back to v${r.version}? This makes a new release with v${r.version}'s image and config.`,
                    then: 'reload',
                    cls: 'cmd bare',
                  })
            }</td></tr>`,
          )}</tbody></table></div>`,
    ),
  );
}

function config(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'config',
    'Config vars',
    html`${loaded('config', d.configKeys, (keys) =>
      keys.length === 0
        ? html`<p>No config vars.</p>`
        : html`<button type="button" data-reveal="${app}" aria-controls="config-table">Reveal values</button>
<div class="scroll"><table id="config-table"><thead><tr><th scope="col">Name</th><th scope="col">Value</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead><tbody>${keys.map(
            (k) => html`<tr><th scope="row"><code>${k}</code></th><td><span class="secret" data-config-key="${k}">hidden</span></td><td>${commandForm(`config:unset ${app} ${k}`, html`<button type="submit" aria-label="Remove ${k}">Remove</button>`, {
              confirm: `Remove ${k}? This makes a new release and restarts ${app}.`,
              then: 'reload',
              cls: 'cmd bare',
            })}</td></tr>`,
          )}</tbody></table></div>`,
    )}
<h3>Add or change</h3>
${commandForm(
  `config:set ${app} {key}={value}`,
  html`<label for="cfg-key">Name</label><input id="cfg-key" name="key" required pattern="[A-Za-z_][A-Za-z0-9_]*" autocomplete="off">
<label for="cfg-value">Value</label><input id="cfg-value" name="value" autocomplete="off">
<button type="submit">Set</button>`,
  { then: 'reload', cls: 'cmd inline', label: 'Set a config var' },
)}
<p>Each change makes a new release and restarts the app without downtime, as <code>slipway config:set</code> does.</p>
<h3>Limits</h3>
${commandForm(
  `ps:set ${app} memory={memory} cpus={cpus}`,
  html`<label for="lim-mem">Memory (e.g. 512m, empty: none)</label><input id="lim-mem" name="memory" pattern="[0-9]{1,7}[kmgKMG]?">
<label for="lim-cpu">CPUs (e.g. 1.5, empty: none)</label><input id="lim-cpu" name="cpus" pattern="[0-9]{1,4}(\\.[0-9]{1,2})?">
<button type="submit">Set limits</button>`,
  { then: 'reload', cls: 'cmd inline', label: 'Set limits' },
)}`,
  );
}

function logs(d: AppPageData): Html {
  const app = d.info.name;
  const types = Object.keys(d.info.processTypes).filter((t) => t !== 'release');
  return section(
    'logs',
    'Logs',
    html`<form class="inline" data-logs="${app}">
<label for="log-type">Process type</label>
<select id="log-type" name="type"><option value="">all</option>${types.map((t) => html`<option value="${t}">${t}</option>`)}</select>
<button type="submit">Tail logs</button>
</form>
<pre class="log" data-log-pane aria-live="off" aria-label="Log lines" tabindex="0">Press "Tail logs" to follow the app's output live.</pre>`,
  );
}

function access(d: AppPageData): Html {
  const app = d.info.name;
  const levels = ['restricted', 'authenticated', 'public'];
  return section(
    'access',
    'Access',
    loaded('access', d.access, (a) => html`${commandForm(
      `access:set ${app} {level}`,
      html`<label for="level">Who may view</label><select id="level" name="level">${levels.map((l) => html`<option value="${l}"${l === a.level ? html` selected` : ''}>${l}</option>`)}</select><button type="submit">Set level</button>`,
      { then: 'reload', cls: 'cmd inline' },
    )}
<p><small>restricted: owners, admins and the viewers below; authenticated: any signed-in user; public: anyone.</small></p>
<h3>Viewers</h3>
${a.users.length + a.groups.length === 0
  ? html`<p>None added.</p>`
  : html`<ul class="people">${[...a.users, ...a.groups.map((g) => `@${g}`)].map(
      (p) => html`<li>${p} ${commandForm(`access:remove ${app} ${p}`, html`<button type="submit" aria-label="Remove viewer ${p}">Remove</button>`, { then: 'reload', cls: 'cmd bare' })}</li>`,
    )}</ul>`}
${commandForm(`access:add ${app} {who}`, html`<label for="viewer">User or @group</label><input id="viewer" name="who" required maxlength="31"><button type="submit">Add viewer</button>`, { then: 'reload', cls: 'cmd inline' })}
<h3>Owners</h3>
<ul class="people">${a.owners.map(
      (o) => html`<li>${o} ${a.owners.length > 1 ? commandForm(`owners:remove ${app} ${o}`, html`<button type="submit" aria-label="Remove owner ${o}">Remove</button>`, { then: 'reload', cls: 'cmd bare' }) : ''}</li>`,
    )}</ul>
${commandForm(`owners:add ${app} {user}`, html`<label for="owner">Co-owner (developer or admin)</label><input id="owner" name="user" required maxlength="30"><button type="submit">Add co-owner</button>`, { then: 'reload', cls: 'cmd inline' })}`),
  );
}

const SERVICE_KINDS = ['postgres', 'redis'];
const kindSelect = (id: string) => html`<label for="${id}">Kind</label><select id="${id}" name="kind">${SERVICE_KINDS.map((k) => html`<option value="${k}">${k}</option>`)}</select>`;
const NAME_PATTERN = '[a-z][a-z0-9\\-]{0,29}';
const VAR_PATTERN = '[A-Za-z_][A-Za-z0-9_]*';

/**
 * Linked Postgres and Redis services (README "Services"): the same `<kind>:create`, `:link` and
 * `:unlink` commands as the CLI, so linking needs the right to change both the service and the app.
 */
function services(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'services',
    'Services',
    html`${loaded('services', d.services, (ss) =>
      ss.length === 0
        ? html`<p>No services linked.</p>`
        : html`<div class="scroll"><table id="services-table"><thead><tr><th scope="col">Kind</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Variable</th><th scope="col"><span class="sr-only">Action</span></th></tr></thead><tbody>${ss.map(
            (s) => html`<tr><td>${s.kind}</td><th scope="row"><code>${s.name}</code></th><td><span class="status s-${s.condition}">${s.condition}</span></td><td><code>${s.var}</code></td><td>${commandForm(`${s.kind}:unlink ${s.name} ${app}`, html`<button type="submit" aria-label="Unlink ${s.kind} ${s.name}">Unlink</button>`, {
              confirm: `Unlink ${s.kind} ${s.name} from ${app}? ${s.var} goes away in a new release; the service and its data stay.`,
              then: 'reload',
              cls: 'cmd bare',
            })}</td></tr>`,
          )}</tbody></table></div>`,
    )}
<h3>Create a service and link it</h3>
${commandForm(
  '{kind}:create {name}',
  html`${kindSelect('svc-new-kind')}
<label for="svc-new-name">Service name</label><input id="svc-new-name" name="name" required pattern="${NAME_PATTERN}" maxlength="30" autocomplete="off">
<label for="svc-new-var">Variable (empty: DATABASE_URL or REDIS_URL)</label><input id="svc-new-var" name="var" pattern="${VAR_PATTERN}" autocomplete="off">
<button type="submit">Create and link</button>`,
  { then: 'reload', cls: 'cmd inline', label: 'Create and link a service', and: `{kind}:link {name} ${app} [--as={var}]` },
)}
<h3>Link an existing service</h3>
${commandForm(
  `{kind}:link {name} ${app} [--as={var}]`,
  html`${kindSelect('svc-link-kind')}
<label for="svc-link-name">Service name</label><input id="svc-link-name" name="name" required pattern="${NAME_PATTERN}" maxlength="30" autocomplete="off">
<label for="svc-link-var">Variable (optional)</label><input id="svc-link-var" name="var" pattern="${VAR_PATTERN}" autocomplete="off">
<button type="submit">Link</button>`,
  { then: 'reload', cls: 'cmd inline', label: 'Link a service' },
)}
<p>Linking sets the variable to the service's URL and restarts ${app} as a new release, as <code>slipway postgres:link</code> does. Passwords are never shown here: <code>slipway postgres:info &lt;name&gt; --reveal</code> on the CLI.</p>`,
  );
}

function portal(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'portal',
    'Portal card',
    commandForm(
      `apps:set ${app} title={title} description={description} tags={tags}`,
      html`<label for="p-title">Title</label><input id="p-title" name="title" maxlength="80" value="${d.portal.title}">
<label for="p-desc">Description</label><textarea id="p-desc" name="description" maxlength="1000" rows="3">${d.portal.description}</textarea>
<label for="p-tags">Tags (comma-separated)</label><input id="p-tags" name="tags" value="${d.portal.tags.join(', ')}">
<button type="submit">Save card</button>`,
      { then: 'reload' },
    ),
  );
}

function danger(d: AppPageData): Html {
  const app = d.info.name;
  return section(
    'destroy',
    'Destroy',
    commandForm(`apps:destroy ${app} --force`, html`<button type="submit" class="danger">Destroy ${app}</button>`, {
      confirm: `Destroy ${app} with its containers, images, repository and logs? This cannot be undone.`,
      then: '/Manager',
      cls: 'cmd bare',
    }),
  );
}

export function appPage(v: Viewer, d: AppPageData): Html {
  const app = d.info.name;
  const parts: [string, string][] = [
    ['overview', 'Overview'],
    ['deploy', 'Deploy'],
    ['builds', 'Builds'],
    ['releases', 'Releases'],
    ['config', 'Config'],
    ['logs', 'Logs'],
    ['access', 'Access'],
    ['services', 'Services'],
    ['portal', 'Portal card'],
    ['destroy', 'Destroy'],
  ];
  return layout(
    app,
    v,
    'manager',
    html`<p class="crumbs"><a href="/Manager">App Manager</a> / ${app}</p>
<h1>${app}</h1>
<nav class="sections" aria-label="Sections of ${app}">${parts.map(([id, label]) => html`<a href="#${id}">${label}</a>`)}</nav>
${overview(d)}${deploy(d)}${builds(d)}${releases(d)}${config(d)}${logs(d)}${access(d)}${services(d)}${portal(d)}${danger(d)}`,
  );
}
