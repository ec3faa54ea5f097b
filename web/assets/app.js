// The mmreplicate web console. Everything that comes from the store is put into the
// page as text (textContent, text nodes): never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { view: 'status', at: '', dir: '', path: '', a: '', b: '' };
let statusTimer = null;
let windowMs = null; // [oldest, newest] in ms
let sliderHeld = false; // the pointer is on the slider: answers do not move it
let seq = 0; // answers of older requests are dropped

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  return p.toString();
}

// api fetches a JSON answer; a request for an instant (which may read the state's index,
// or rebuild a file) dims the page until it answers.
async function api(path, params) {
  if (!('at' in params)) return fetchJSON(path, params);
  $('main').classList.add('loading');
  try { return await fetchJSON(path, params); } finally { $('main').classList.remove('loading'); }
}

async function fetchJSON(path, params) {
  const r = await fetch(path + '?' + qs(params), { credentials: 'same-origin', cache: 'no-store' });
  let body;
  try { body = await r.json(); } catch (e) { throw new Error(path + ': HTTP ' + r.status); }
  if (!r.ok) throw new Error(body.error || (path + ': HTTP ' + r.status));
  return body;
}

function fmtSize(n) {
  if (n < 0) return '?';
  if (n < 1024) return n + ' B';
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + ' ' + u[i];
}

function fmtAge(iso) {
  if (!iso) return '';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!isFinite(s)) return '';
  if (s < 90) return Math.round(s) + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' days ago';
}

function link(view, params, text, id) {
  return el('a', { href: '#' + view + '?' + qs(params), id }, text);
}

function banner(problems) {
  const b = $('banner');
  b.replaceChildren();
  if (problems && problems.length) {
    b.append(el('strong', {}, 'Incomplete: this view lacks what the store could not give. '),
      problems.join('\n'),
      el('div', {}, 'Downloads of this state are refused; add partial=1 to a download address to get what is there.'));
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function setMain(...kids) { $('main').replaceChildren(...kids.filter(k => k !== null && k !== undefined && k !== false)); }

function fail(err) {
  setMain(el('p', { class: 'error', id: 'error' }, String(err.message || err)));
}

// --- routing ---

function readHash() {
  const h = location.hash.replace(/^#/, '');
  const [view, q] = h.split('?');
  const p = new URLSearchParams(q || '');
  state.view = ['status', 'browse', 'file', 'history'].includes(view) ? view : 'status';
  state.at = p.get('at') || '';
  state.dir = p.get('dir') || '';
  state.path = p.get('path') || '';
  state.a = p.get('a') || '';
  state.b = p.get('b') || '';
}

function hashOf() {
  const p = { at: state.at };
  if (state.view === 'browse') p.dir = state.dir;
  if (state.view === 'file' || state.view === 'history') p.path = state.path;
  if (state.view === 'history') { p.a = state.a; p.b = state.b; delete p.at; }
  return '#' + state.view + '?' + qs(p);
}

function go() {
  readHash();
  for (const v of ['status', 'browse']) $('nav-' + v).classList.toggle('active', state.view === v || (v === 'browse' && state.view !== 'status'));
  clearInterval(statusTimer);
  statusTimer = null;
  $('timebar').hidden = !(state.view === 'browse' || state.view === 'file');
  $('timefield').value = state.at || 'latest';
  banner(null);
  render();
}

function render() {
  switch (state.view) {
    case 'status': return showStatus(true);
    case 'browse': return showTree();
    case 'file': return showFile();
    case 'history': return showHistory();
  }
}

// moveTo changes the instant without reloading the page: the hash is replaced and the
// current view fetched again.
function moveTo(at) {
  state.at = at;
  history.replaceState(null, '', hashOf());
  $('timefield').value = at || 'latest';
  render();
}

function setWindow(oldest, newest, at, latest) {
  const s = $('slider');
  if (!oldest || !newest) { s.disabled = true; $('window').textContent = 'nothing stored yet'; return; }
  windowMs = [Date.parse(oldest), Date.parse(newest)];
  s.disabled = false;
  s.min = String(windowMs[0]);
  s.max = String(windowMs[1]);
  if (!sliderHeld) {
    s.value = String(latest ? windowMs[1] : Math.min(Math.max(Date.parse(at), windowMs[0]), windowMs[1]));
  }
  $('window').textContent = 'recoverable window ' + oldest + ' … ' + newest;
}

// --- status ---

function card(label, value, sub, id) {
  return el('div', { class: 'card', id }, el('div', { class: 'muted' }, label), el('div', { class: 'v' }, value), sub ? el('div', { class: 'muted' }, sub) : null);
}

function tableOf(rows, cols, id) {
  return el('table', { id },
    el('tr', {}, cols.map(c => el('th', {}, c[0]))),
    rows.map(r => el('tr', {}, cols.map(c => {
      const v = c[1](r);
      return el('td', { class: typeof v === 'number' ? 'num' : null }, v === undefined || v === null ? '' : v);
    }))));
}

async function showStatus(first) {
  const my = ++seq;
  let s;
  try { s = await api('/api/status', {}); } catch (e) { if (my === seq) fail(e); return; }
  if (my !== seq || state.view !== 'status') return;
  $('host').textContent = 'host ' + s.host;
  banner(s.problems);
  const kids = [];
  kids.push(el('div', { class: 'cards' },
    card('Host', s.host),
    card('Files stored', s.files.toLocaleString(), fmtSize(s.bytes) + (s.counted_at ? ' · counted in the state of ' + s.counted_at : ''), 'stored-files'),
    card('Newest change stored', s.newest || 'none', fmtAge(s.newest), 'stored-newest'),
    card('Recoverable from', s.oldest || 'none', fmtAge(s.oldest))));
  if (s.hosts && s.hosts.length > 1) {
    kids.push(el('p', { id: 'hosts' }, 'Hosts in this store: ' + s.hosts.join(', ') + '. This console shows ' + s.host + '; mmreplicate web --host NAME shows another.'));
  }
  kids.push(el('h2', {}, 'Sources in the store'),
    tableOf(s.sources, [['Source', r => link('browse', { dir: r.name }, r.name)], ['Files', r => r.files], ['Bytes', r => fmtSize(r.bytes)], ['Last change', r => r.last_change + ' (' + fmtAge(r.last_change) + ')']], 'store-sources'));
  const d = s.daemon;
  if (d) {
    kids.push(el('h2', {}, 'Sources watched by the daemon'),
      tableOf(d.sources || [], [['Source', r => r.name], ['Files watched', r => r.files_watched], ['Last change', r => r.last_change ? r.last_change + ' (' + fmtAge(r.last_change) + ')' : 'none yet']], 'daemon-sources'));
    kids.push(el('h2', {}, 'Targets'),
      tableOf(d.sinks || [], [['Sink', r => r.name], ['Target', r => r.target], ['Backlog (records)', r => r.backlog_records],
        ['Last upload', r => r.last_success ? r.last_success + ' (' + fmtAge(r.last_success) + ')' : 'none yet'],
        ['Loss window', r => r.loss_window_seconds.toFixed(1) + ' s'], ['Errors', r => r.errors],
        ['Requests this month', r => r.requests_month ?? 'not reported by this version'],
        ['Projected request cost', r => r.projected_request_usd_month == null ? 'not reported by this version' : '$' + r.projected_request_usd_month.toFixed(2) + ' a month'],
        ['Loss window the budget allows', r => r.budget_loss_window_seconds == null ? 'not reported by this version' : r.budget_loss_window_seconds.toFixed(1) + ' s']], 'daemon-sinks'));
    kids.push(el('h2', {}, 'Journal'),
      tableOf([d.journal], [['Last sequence', r => r.last_seq], ['Published', r => r.published_seq], ['Bytes', r => fmtSize(r.bytes)], ['Full', r => r.full ? 'FULL' : 'no']], 'daemon-journal'));
    kids.push(el('h2', {}, 'Restore drills'),
      (d.drills && d.drills.length) ? tableOf(d.drills, [['Target', r => r.target], ['Last run', r => r.last_run || 'not yet'], ['Last success', r => r.last_success || 'none'],
        ['Files', r => r.files], ['Took', r => r.duration_seconds.toFixed(2) + ' s'], ['Failures', r => r.failures], ['Last error', r => r.last_error || '']], 'daemon-drills')
        : el('p', { class: 'muted' }, 'No drill has run yet.'));
    kids.push(el('h2', {}, 'Git copy'),
      d.git ? tableOf([d.git], [['Last commit', r => r.last_commit || 'none'], ['At', r => r.last_commit_time || ''], ['Commits', r => r.commits],
        ['Pushed', r => r.pushed ? 'yes' : (r.push_error ? 'no: ' + r.push_error : 'no')]], 'daemon-git')
        : el('p', { class: 'muted' }, 'No git copy configured.'));
  } else {
    kids.push(el('p', { class: 'muted', id: 'store-only' }, 'Store view: this console reads the bucket only (mmreplicate web). The daemon\'s own figures (backlog, loss window, drills, git) are on the console of its http.listen.'));
  }
  kids.push(el('p', { class: 'muted', id: 'refreshed' }, 'Refreshed ' + new Date().toISOString() + ' (every 5 s).'));
  setMain(...kids);
  if (first && !statusTimer) statusTimer = setInterval(() => { if (state.view === 'status') showStatus(false); }, 5000);
}

// --- tree ---

function crumbs(path, isFile) {
  const parts = path ? path.split('/') : [];
  const out = [link('browse', { at: state.at }, state.host || 'all sources')];
  let acc = '';
  parts.forEach((p, i) => {
    acc = acc ? acc + '/' + p : p;
    out.push(' / ');
    if (isFile && i === parts.length - 1) out.push(el('strong', {}, p));
    else out.push(link('browse', { at: state.at, dir: acc }, p));
  });
  return el('p', { class: 'crumbs', id: 'crumbs' }, out);
}

function atLine(v) {
  return el('p', { class: 'muted', id: 'at' }, 'State at ' + (v.latest ? 'latest' : v.at) + (v.state_at ? ' (newest change in it: ' + v.state_at + ')' : ' (nothing stored then)'));
}

async function showTree() {
  const my = ++seq;
  let v;
  try { v = await api('/api/tree', { at: state.at, dir: state.dir }); } catch (e) { if (my === seq) fail(e); return; }
  if (my !== seq) return;
  setWindow(v.oldest, v.newest, v.at, v.latest);
  banner(v.problems);
  $('host').textContent = 'host ' + v.host;
  state.host = v.host;
  const rows = v.entries.map(e => el('tr', { 'data-path': e.path, 'data-size': e.size },
    el('td', {}, e.dir ? link('browse', { at: state.at, dir: e.path }, e.name + '/') : link('file', { at: state.at, path: e.path }, e.name)),
    el('td', { class: 'num' }, e.dir ? e.files + ' files' : ''),
    el('td', { class: 'num' }, fmtSize(e.size)),
    el('td', {}, e.time),
    el('td', {}, e.dir ? '' : link('history', { path: e.path }, 'history'))));
  setMain(crumbs(v.dir, false), atLine(v),
    v.entries.length ? el('table', { id: 'tree' }, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Files'), el('th', {}, 'Size'), el('th', {}, 'Captured'), el('th', {}, '')), rows)
      : el('p', { id: 'tree-empty' }, 'Nothing was stored at or before this instant.'),
    el('p', { class: 'actions' }, v.entries.length ? el('a', { id: 'download-dir', href: '/download?' + qs({ at: v.latest ? v.state_at : v.at, dir: v.dir }), download: '' }, 'Download ' + (v.dir || 'everything') + ' as .tar.gz') : null),
    el('div', {}, 'Restore what is on screen:'), el('code', { class: 'cmd', id: 'cmd' }, v.command));
}

// --- file ---

function showMessages(msgs) {
  return el('div', { id: 'messages' }, msgs.map(m => el('div', { class: 'msg ' + m.role, 'data-role': m.role },
    el('div', {}, el('span', { class: 'role' }, m.role), el('span', { class: 'muted' }, (m.time ? m.time + ' · ' : '') + 'line ' + m.line)),
    m.parts.map(p => {
      if (p.kind === 'call') return el('details', { class: 'call' }, el('summary', {}, 'tool call: ' + (p.name || '?')), el('pre', {}, p.text));
      if (p.kind === 'result') return el('details', { class: 'result' }, el('summary', {}, 'tool result' + (p.name ? ': ' + p.name : '') + ' (' + p.text.length + ' chars)'), el('pre', {}, p.text));
      if (p.kind === 'raw') return el('details', { class: 'raw' }, el('summary', {}, 'raw line' + (p.name ? ' (' + p.name + ')' : '')), el('pre', {}, p.text));
      return el('div', { class: 'part' }, p.text);
    }))));
}

function showTables(tables) {
  return el('div', { id: 'tables' }, tables.map(t => el('section', { 'data-table': t.name },
    el('h2', {}, 'Table ' + t.name + ' — ' + t.count.toLocaleString() + ' rows'),
    t.error ? el('p', { class: 'error' }, t.error) : null,
    el('table', {}, el('tr', {}, t.columns.map(c => el('th', {}, c))), t.rows.map(r => el('tr', {}, r.map(c => el('td', {}, c))))))));
}

async function showFile() {
  const my = ++seq;
  let v;
  try { v = await api('/api/file', { at: state.at, path: state.path }); } catch (e) {
    if (my === seq) { fail(e); $('main').prepend(crumbs(state.path, true)); }
    return;
  }
  if (my !== seq) return;
  setWindow(v.oldest, v.newest, v.at, v.latest);
  banner(v.problems);
  $('host').textContent = 'host ' + v.host;
  state.host = v.host;
  const at = v.latest ? v.state_at : v.at;
  let body;
  switch (v.kind) {
    case 'text': body = el('pre', { class: 'text', id: 'filetext' }, v.text); break;
    case 'transcript': body = showMessages(v.messages); break;
    case 'sqlite': body = showTables(v.tables); break;
    default: body = el('p', { id: 'binary' }, v.note || 'Binary file.');
  }
  setMain(crumbs(v.path, true), atLine(v),
    el('p', { id: 'meta' }, fmtSize(v.size) + ', captured ' + v.time + ' · shown as ' + v.kind + (v.truncated ? ' (only the start is shown)' : '')),
    el('p', { class: 'actions' },
      el('a', { id: 'download-file', href: '/download?' + qs({ at, path: v.path }), download: '' }, 'Download'),
      el('a', { id: 'raw', href: '/raw?' + qs({ at, path: v.path }), target: '_blank', rel: 'noopener' }, 'Raw text'),
      link('history', { path: v.path }, 'History', 'history-link')),
    v.note && v.kind !== 'binary' ? el('p', { class: 'muted' }, v.note) : null,
    body,
    el('div', {}, 'Restore what is on screen:'), el('code', { class: 'cmd', id: 'cmd' }, v.command));
}

// --- history ---

async function showHistory() {
  const my = ++seq;
  let h;
  try { h = await api('/api/history', { path: state.path }); } catch (e) { if (my === seq) fail(e); return; }
  if (my !== seq) return;
  const live = h.versions.filter(v => !v.gone);
  if (!state.b && live.length) state.b = live[live.length - 1].time;
  if (!state.a && live.length > 1) state.a = live[live.length - 2].time;
  const radio = (side, t) => el('input', { type: 'radio', name: side, value: t, checked: state[side] === t, onchange: () => { state[side] = t; history.replaceState(null, '', hashOf()); showDiff(); } });
  setMain(crumbs(state.path, true),
    el('h2', {}, 'History of ' + h.path + ' — ' + h.versions.length + ' changes'),
    el('table', { id: 'versions' }, el('tr', {}, el('th', {}, 'A'), el('th', {}, 'B'), el('th', {}, 'Captured'), el('th', {}, 'Size'), el('th', {}, '')),
      h.versions.map(v => el('tr', { 'data-time': v.time },
        el('td', {}, v.gone ? '' : radio('a', v.time)), el('td', {}, v.gone ? '' : radio('b', v.time)),
        el('td', {}, v.time), el('td', { class: 'num' }, v.gone ? 'deleted' : fmtSize(v.size)),
        el('td', {}, v.gone ? '' : link('file', { at: v.time, path: h.path }, 'open at this time'))))),
    el('div', { id: 'diff-area' }));
  showDiff();
}

async function showDiff() {
  const area = $('diff-area');
  if (!area) return;
  if (!state.a || !state.b) { area.replaceChildren(el('p', { class: 'muted' }, 'Pick two versions (A and B) to compare.')); return; }
  const my = seq;
  let d;
  try { d = await api('/api/diff', { path: state.path, a: state.a, b: state.b }); } catch (e) { area.replaceChildren(el('p', { class: 'error' }, e.message)); return; }
  if (my !== seq) return;
  banner(d.problems);
  const head = el('h2', {}, 'From A ' + state.a + ' to B ' + state.b + ': ' +
    (d.kind === 'appended' ? d.added + ' lines added' : '+' + d.added + ' −' + d.removed + ' lines') + (d.coarse ? ' (too large to match line by line)' : '') + (d.truncated ? ' (only the first lines are listed)' : ''));
  if (d.binary) { area.replaceChildren(head, el('p', { id: 'diff' }, 'Binary content: ' + d.a_size + ' → ' + d.b_size + ' bytes.')); return; }
  area.replaceChildren(head, el('div', { class: 'diff', id: 'diff', 'data-kind': d.kind },
    d.lines.map(l => el('div', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same' }, l.op + ' ' + l.text))));
}

// --- wiring ---

let debounce = null;
document.addEventListener('DOMContentLoaded', () => {
  $('slider').addEventListener('pointerdown', () => { sliderHeld = true; });
  window.addEventListener('pointerup', () => { sliderHeld = false; });
  $('slider').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      const v = Number($('slider').value);
      moveTo(windowMs && v >= windowMs[1] ? '' : new Date(v).toISOString());
    }, 120);
  });
  $('timeform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('timefield').value.trim();
    moveTo(v === 'latest' ? '' : v);
  });
  $('timelatest').addEventListener('click', () => moveTo(''));
  window.addEventListener('hashchange', go);
  if (!location.hash) history.replaceState(null, '', '#status');
  go();
});
