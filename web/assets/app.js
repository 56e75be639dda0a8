// The App Manager's only script (docs/web.md). Forms become commands sent to the JSON API with
// the page's CSRF token; build logs and logs stream over Server-Sent Events. Everything that
// came from the server or a user is written with textContent, never as HTML.
'use strict';

const csrf = document.querySelector('meta[name="slipway-csrf"]')?.getAttribute('content') ?? '';

async function runCommand(argv, stdin) {
  const res = await fetch('/_web/api/commands', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Slipway-CSRF': csrf },
    body: JSON.stringify(stdin === undefined ? { argv } : { argv, stdin }),
    credentials: 'same-origin',
  });
  let body;
  try {
    body = await res.json();
  } catch {
    body = { err: `the server answered ${res.status}` };
  }
  return { ok: res.ok, status: res.status, out: body.out ?? '', err: body.err ?? body.error ?? '' };
}

/**
 * `config:set app {key}={value}` -> argv: split on spaces, then fill each word's fields. A word in
 * brackets, `[--as={var}]`, is optional: left out when any field in it is empty.
 */
function argvOf(template, data) {
  const field = (name) => String(data.get(name) ?? '').trim();
  const words = [];
  for (const raw of template.split(' ')) {
    if (raw === '') continue;
    const optional = raw.startsWith('[') && raw.endsWith(']');
    const word = optional ? raw.slice(1, -1) : raw;
    const names = [...word.matchAll(/\{([a-z]+)\}/g)].map((m) => m[1]);
    if (optional && names.some((n) => field(n) === '')) continue;
    words.push(word.replace(/\{([a-z]+)\}/g, (_, name) => field(name)));
  }
  return words;
}

function say(el, text, ok) {
  el.textContent = text;
  el.classList.toggle('bad', !ok);
  el.hidden = false;
}

document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.argv) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const data = new FormData(form);
  const argv = argvOf(form.dataset.argv, data);
  const stdin = form.dataset.stdin ? String(data.get(form.dataset.stdin) ?? '') : undefined;
  const out = form.querySelector('output.result') ?? document.getElementById('flash');
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => (b.disabled = true));
  say(out, `Running ${argv.slice(0, 2).join(' ')}…`, true);
  try {
    let r = await runCommand(argv, stdin);
    let text = `${r.out}${r.err}`.trim().replace(/^slipway: /, '');
    // A second command, only after the first succeeded: `postgres:create db`, then `postgres:link db shop`.
    if (r.ok && form.dataset.and) {
      const next = argvOf(form.dataset.and, data);
      say(out, `${text}\nRunning ${next.slice(0, 2).join(' ')}…`, true);
      r = await runCommand(next);
      text = `${text}\n${`${r.out}${r.err}`.trim().replace(/^slipway: /, '')}`.trim();
    }
    say(out, text || (r.ok ? 'Done.' : `Failed (${r.status}).`), r.ok);
    if (r.ok && form.dataset.then) {
      const then = form.dataset.then;
      if (then === 'reload') window.location.reload();
      else window.location.assign(then.replace(/\{([a-z]+)\}/g, (_, name) => encodeURIComponent(String(data.get(name) ?? '').trim())));
    }
  } catch (err) {
    say(out, `Could not reach the platform: ${err.message}`, false);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
});

// Config values stay on the server until asked for.
document.addEventListener('click', async (event) => {
  const button = event.target instanceof Element ? event.target.closest('[data-reveal]') : null;
  if (!button) return;
  const app = button.getAttribute('data-reveal');
  const r = await runCommand(['config', app, '--json']);
  if (!r.ok) return say(document.getElementById('flash'), r.err, false);
  const values = JSON.parse(r.out);
  document.querySelectorAll('[data-config-key]').forEach((cell) => {
    cell.textContent = values[cell.getAttribute('data-config-key')] ?? '';
    cell.classList.remove('secret');
  });
  button.hidden = true;
});

/** Follows a command's output into a <pre>, one line per event, until it ends or another starts. */
function streamInto(pane, argv, onEnd) {
  const params = new URLSearchParams();
  for (const a of argv) params.append('argv', a);
  pane.textContent = '';
  const source = new EventSource(`/_web/api/stream?${params}`);
  const append = (text) => {
    const atEnd = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
    pane.append(document.createTextNode(`${text}\n`));
    if (atEnd) pane.scrollTop = pane.scrollHeight;
  };
  source.onmessage = (e) => append(e.data);
  source.addEventListener('failure', (e) => append(`! ${e.data}`));
  source.addEventListener('end', () => {
    source.close();
    pane.dataset.streaming = '';
    onEnd?.();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) append('! the stream closed');
  };
  pane.dataset.streaming = 'yes';
  return source;
}

// Logs: live tail, optionally one process type.
let logSource = null;
document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.logs) return;
  event.preventDefault();
  logSource?.close();
  const type = new FormData(form).get('type');
  const argv = ['logs', form.dataset.logs, '-n', '200', ...(type ? ['--type', String(type)] : [])];
  logSource = streamInto(document.querySelector('[data-log-pane]'), argv);
});

// Builds: the list refreshes every second, so a push in progress shows up at once; its log streams.
const buildsBox = document.querySelector('[data-builds]');
if (buildsBox) {
  const app = buildsBox.getAttribute('data-builds');
  const pane = document.querySelector('[data-build-pane]');
  const current = document.querySelector('[data-build-current]');
  let shown = null;
  let source = null;
  let seen = '';
  const open = (id) => {
    source?.close();
    shown = id;
    current.textContent = id;
    source = streamInto(pane, ['builds:log', app, id]);
  };
  buildsBox.addEventListener('click', (event) => {
    const b = event.target instanceof Element ? event.target.closest('[data-build-log]') : null;
    if (b) open(b.getAttribute('data-build-log'));
  });
  const render = (builds) => {
    const list = document.createElement('ul');
    list.className = 'builds';
    for (const b of builds) {
      const li = document.createElement('li');
      const link = document.createElement('button');
      link.type = 'button';
      link.className = 'link';
      link.dataset.buildLog = b.id;
      link.textContent = b.id;
      const status = document.createElement('span');
      status.className = `status s-${b.status}`;
      status.textContent = b.status;
      const commit = document.createElement('code');
      commit.textContent = b.commit.slice(0, 7);
      li.append(link, ' ', status, ' ', commit, ` by ${b.by}, ${b.startedAt.slice(0, 16).replace('T', ' ')} UTC`);
      if (b.error) {
        const e = document.createElement('span');
        e.className = 'error';
        e.textContent = ` ${b.error}`;
        li.append(e);
      }
      list.append(li);
    }
    buildsBox.replaceChildren(list);
  };
  const poll = async () => {
    const r = await runCommand(['builds', app, '--json']).catch(() => null);
    if (r?.ok) {
      const builds = JSON.parse(r.out);
      const key = builds.map((b) => `${b.id}:${b.status}`).join(',');
      if (key !== seen) {
        seen = key;
        if (builds.length > 0) render(builds);
        const running = builds.find((b) => b.status === 'running');
        if (running && running.id !== shown) open(running.id);
      }
    }
    setTimeout(poll, 1000);
  };
  void poll();
}
