import fs from 'node:fs/promises';
import { getEventListeners } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { followBuildLog } from '../../core/build-logs.js';
import type { Paths } from '../../core/paths.js';
import { appStatus, parsePortalFields } from '../../core/portal.js';
import type { AppRecord } from '../../core/store.js';
import { Csrf, sessionOf } from '../../web/csrf.js';
import { html } from '../../web/html.js';
import { adminPage } from '../../web/pages/admin.js';
import { selectApps, type AppRow } from '../../web/pages/manager.js';
import { selectCards } from '../../web/pages/portal.js';

describe('html', () => {
  it('escapes every value, in content and attributes, and keeps only its own output raw', () => {
    const evil = `<script>"x"&'y'\``;
    const inner = html`<b>${evil}</b>`;
    expect(html`<p title="${evil}">${[inner, evil, null, undefined, false, 3]}</p>`.text).toBe(
      '<p title="&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&#96;"><b>&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&#96;</b>&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&#96;3</p>',
    );
    // A plain object that looks like Html output is still text.
    expect(html`${{ text: '<i>' } as unknown as string}`.text).toBe('[object Object]');
  });
});

describe('Portal cards', () => {
  it('parses title, description and tags, and refuses what is not plain text', () => {
    expect(parsePortalFields(['title=Sales forecast', 'description=Weekly, by region', 'tags=ML, sales,,ml'])).toEqual({ title: 'Sales forecast', description: 'Weekly, by region', tags: ['ml', 'sales'] });
    expect(parsePortalFields(['tags='])).toEqual({ tags: [] });
    expect(() => parsePortalFields(['title=a\nb'])).toThrow(/control characters/);
    expect(() => parsePortalFields(['colour=red'])).toThrow(/expected title=/);
    expect(() => parsePortalFields(['title=a', 'title=b'])).toThrow(/given twice/);
    expect(() => parsePortalFields(['tags=<b>'])).toThrow(/invalid tag/);
    expect(() => parsePortalFields([`title=${'x'.repeat(81)}`])).toThrow(/at most 80/);
  });

  it('says an app\'s status from its record and its routes', () => {
    const app = (o: Partial<AppRecord>): AppRecord => ({ name: 'a', createdAt: '', config: {}, formation: { web: 1 }, buildpacks: [], releases: [], current: null, builds: [], ...o });
    const release = { version: 1, image: 'i', buildId: null, commit: null, configHash: '', processTypes: { web: 'x' }, defaultConfig: {}, createdAt: '', by: 'd', description: '' };
    const build = (status: 'running' | 'failed' | 'succeeded') => ({ id: '1', commit: 'c', status, startedAt: '', finishedAt: null, durationMs: null, buildpacks: [], error: null, by: 'd' });
    expect(appStatus(app({}), 0)).toBe('not deployed');
    expect(appStatus(app({ releases: [release], current: 1 }), 1)).toBe('running');
    expect(appStatus(app({ releases: [release], current: 1 }), 0)).toBe('stopped');
    expect(appStatus(app({ releases: [release], current: 1, builds: [build('failed')] }), 1)).toBe('failed build');
    expect(appStatus(app({ releases: [release], current: 1, builds: [build('running')] }), 1)).toBe('building');
    expect(appStatus(app({ releases: [{ ...release, processTypes: { worker: 'w' } }], current: 1, formation: { worker: 1 } }), 0)).toBe('running');
  });
});

describe('lists', () => {
  const row = (name: string, o: Partial<AppRow> = {}): AppRow => ({ name, release: null, createdAt: '', url: '', status: 'running', lastDeploy: null, owners: ['dev'], access: 'restricted', manage: true, title: '', description: '', tags: [], ...o });
  const rows = [row('b', { lastDeploy: { at: '2026-01-02', by: 'x', commit: null, description: '' }, tags: ['ml'] }), row('a', { status: 'stopped', title: 'Forecast' }), row('c')];

  it('searches and sorts the manager list', () => {
    expect(selectApps(rows, '', 'name').map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(selectApps(rows, '', 'deployed').map((r) => r.name)).toEqual(['b', 'a', 'c']);
    expect(selectApps(rows, '', 'status').map((r) => r.name)).toEqual(['b', 'c', 'a']);
    expect(selectApps(rows, 'FORE', 'name').map((r) => r.name)).toEqual(['a']);
  });

  it('filters Portal cards by text and tag', () => {
    expect(selectCards(rows, '', 'ml').map((r) => r.name)).toEqual(['b']);
    expect(selectCards(rows, 'forecast', '').map((r) => r.name)).toEqual(['a']);
  });
});

describe('CSRF tokens', () => {
  it('bind to the user and the session', () => {
    const csrf = new Csrf();
    const t = csrf.token('dev', 's1');
    expect(csrf.check('dev', 's1', t)).toBe(true);
    expect(csrf.check('dev', 's2', t)).toBe(false);
    expect(csrf.check('vic', 's1', t)).toBe(false);
    expect(csrf.check('dev', 's1', undefined)).toBe(false);
    expect(new Csrf().check('dev', 's1', t)).toBe(false);
    expect(sessionOf('a=1; slipway_session=abc.def; b=2')).toBe('abc.def');
    expect(sessionOf(undefined)).toBe('');
  });
});

describe('builds:log --follow', () => {
  it('writes a running build\'s log as it grows and ends with the build, last lines included', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-follow-'));
    try {
      const id = '20261202030000-abcdef';
      await fs.mkdir(path.join(dir, 'shop'));
      const file = path.join(dir, 'shop', `${id}.log`);
      await fs.writeFile(file, 'one\n');
      let status: 'running' | 'succeeded' = 'running';
      const record = async () => ({ name: 'shop', builds: [{ id, status }] }) as unknown as AppRecord;
      let out = '';
      const signal = new AbortController().signal;
      const following = followBuildLog({ buildsDir: dir } as Paths, record, undefined, { out: (t) => void (out += t), signal }, 20);
      await expect.poll(() => out).toBe('one\n');
      await fs.appendFile(file, 'two\n');
      await expect.poll(() => out).toBe('one\ntwo\n');
      // Polls many times meanwhile, holding at most one abort listener (they once piled up, one per poll).
      await new Promise((r) => setTimeout(r, 200));
      expect(getEventListeners(signal, 'abort').length).toBeLessThanOrEqual(1);
      await fs.appendFile(file, 'three\n');
      status = 'succeeded';
      await following;
      expect(out).toBe('one\ntwo\nthree\n');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('admin page', () => {
  it('shows the status services as a table, not as "[object Object]"', () => {
    const failedLoad = { ok: false as const, error: 'x' };
    const page = adminPage(
      { user: 'admin', role: 'admin', csrf: 't' },
      {
        status: { ok: true, value: { daemon: 'running', apps: 2, services: [{ kind: 'redis', name: 'cache', condition: 'healthy', links: ['shop', 'blog'] }] } },
        users: failedLoad,
        groups: failedLoad,
        keys: failedLoad,
        tokens: failedLoad,
      },
    ).text;
    expect(page).not.toContain('[object Object]');
    expect(page).toContain('<dt>apps</dt><dd>2</dd>');
    expect(page).toContain('<tr><td>redis</td><th scope="row"><code>cache</code></th><td>healthy</td><td>shop, blog</td></tr>');
  });
});
