// traces.js: trace search, the paste box and the waterfall of one trace
// with its log lines (from /api/dashboard/traces, the dashboard's Traces
// source).
import { h, clear, fmtNum, fmtMS, table } from './dom.js';

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }

  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  return body;
}

const idRe = /^[0-9a-fA-F]{1,32}$/;

export function tracesPage(root, args, ctx) {
  if (args.length && args[0]) return traceView(root, args[0], ctx);
  root.append(h('h1', {}, 'Traces'));
  const idIn = h('input', { id: 'trace-id', placeholder: 'paste a trace id (from a traceresponse header)', size: 48, autocomplete: 'off' });
  const go = h('form', { class: 'inline', id: 'trace-id-form' }, h('label', {}, 'Trace id', idIn), h('button', { type: 'submit' }, 'Open'));
  go.addEventListener('submit', ev => {
    ev.preventDefault();
    let v = idIn.value.trim();
    // A traceresponse / traceparent value: 00-<trace id>-<span id>-<flags>.
    const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/i.exec(v);
    if (m) v = m[1];
    if (!idRe.test(v)) { idIn.setCustomValidity('a trace id is up to 32 hex digits'); idIn.reportValidity(); return; }
    ctx.navigate('/traces/' + v.toLowerCase());
  });
  const f = {
    route: h('input', { name: 'route', size: 12 }), service: h('input', { name: 'service', size: 12 }),
    status: h('input', { name: 'status', size: 5, placeholder: '5xx' }), min_duration: h('input', { name: 'min_duration', size: 6, placeholder: '100ms' }),
    since: h('select', { name: 'since' }, ['15m', '1h', '6h', '24h'].map(x => h('option', { value: x }, x))),
  };
  f.since.value = '1h';
  const search = h('form', { class: 'inline', id: 'trace-search' }, Object.entries(f).map(([k, el]) => h('label', {}, k.replace('_', ' '), el)), h('button', { type: 'submit' }, 'Search'));
  const results = h('div', { id: 'trace-results' });
  const errs = h('div'), slow = h('div');
  root.append(go, h('h2', {}, 'Search'), search, results, h('div', { class: 'row' }, h('div', {}, h('h2', {}, 'Recent error traces'), errs), h('div', {}, h('h2', {}, 'Recent slow traces'), slow)));
  const list = (el, q) => getJSON('/api/dashboard/traces?' + q).then(r => {
    clear(el).append(r.traces.length ? traceTable(r.traces) : h('p', { class: 'muted' }, 'None.'));
  }).catch(e => clear(el).append(h('p', { class: 'bad' }, 'Trace store: ' + e.message)));
  search.addEventListener('submit', ev => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) q.set(k, el.value.trim());
    q.set('limit', '50');
    list(results, q.toString());
  });
  list(errs, 'class=error&limit=10');
  list(slow, 'class=slow&limit=10');
}

function traceTable(ts) {
  return table([
    { key: 'trace_id', label: 'Trace', cell: r => h('a', { href: '/traces/' + r.trace_id, class: 'mono' }, r.trace_id.slice(0, 16) + '…') },
    { key: 'start', label: 'Start', cell: r => new Date(r.start).toLocaleTimeString() },
    { key: 'route', label: 'Route' },
    { key: 'root_name', label: 'Root' },
    { key: 'status', label: 'Status', num: true },
    { key: 'duration_ms', label: 'Duration', num: true, fmt: fmtMS },
    { key: 'spans', label: 'Spans', num: true },
    { key: 'services', label: 'Services', cell: r => (r.services || []).join(', '), sortKey: r => (r.services || []).length },
    { key: 'error_kind', label: 'Error kind' },
  ], ts, { sort: 'start' });
}

const colors = ['#2563eb', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#9333ea'];

function traceView(root, id, ctx) {
  root.append(h('h1', {}, 'Trace ', h('span', { id: 'trace-view-id' }, id)));
  const body = h('div');
  root.append(body);
  getJSON('/api/dashboard/traces/' + encodeURIComponent(id)).then(doc => renderTrace(body, doc)).catch(e => body.append(h('p', { class: 'bad', id: 'trace-error' }, e.message)));
}

function renderTrace(body, doc) {
  const spans = doc.spans || [];
  const byID = new Map(spans.map(s => [s.span_id, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_span_id && byID.has(s.parent_span_id)) {
      if (!kids.has(s.parent_span_id)) kids.set(s.parent_span_id, []);
      kids.get(s.parent_span_id).push(s);
    } else roots.push(s);
  }
  const t0 = Math.min(...spans.map(s => Date.parse(s.start)));
  const total = Math.max(1, doc.duration_ms || 1);
  const services = [...new Set(spans.map(s => s.service))];
  const color = sv => colors[services.indexOf(sv) % colors.length];
  body.append(h('p', {},
    h('span', { id: 'trace-span-count' }, String(spans.length)), ' spans, ',
    h('span', { id: 'trace-service-count' }, String(services.length)), ' services, ',
    fmtMS(doc.duration_ms), ', class ', doc.class || '–'));
  body.append(h('div', { class: 'legend' }, services.map(sv => h('span', {}, h('span', { class: 'sw', style: undefined, 'data-color': color(sv) }), sv))));
  const wf = h('div', { class: 'wf', id: 'waterfall' });
  const order = [];
  const walk = (s, depth) => {
    order.push([s, depth]);
    for (const c of (kids.get(s.span_id) || []).sort((a, b) => Date.parse(a.start) - Date.parse(b.start))) walk(c, depth + 1);
  };
  roots.sort((a, b) => Date.parse(a.start) - Date.parse(b.start)).forEach(r => walk(r, 0));
  for (const [s, depth] of order) {
    const off = (Date.parse(s.start) - t0) / total * 100;
    const w = Math.max(0.2, s.duration_ms / total * 100);
    const bar = h('div', { class: 'wf-bar' + (s.status === 'error' ? ' error' : '') });
    bar.style.left = off.toFixed(3) + '%';
    bar.style.width = w.toFixed(3) + '%';
    bar.style.background = color(s.service);
    const dur = h('span', { class: 'wf-dur' }, fmtMS(s.duration_ms));
    dur.style.left = Math.min(92, off + w + 0.5).toFixed(3) + '%';
    const nev = (s.events || []).length;
    const name = h('div', { class: 'wf-name', title: `${s.service}: ${s.name}` }, h('b', {}, s.service), ' ', s.name, nev ? h('span', { class: 'muted' }, ` · ${nev} event${nev > 1 ? 's' : ''}`) : null);
    name.style.paddingLeft = (6 + depth * 14) + 'px';
    const area = h('div', { class: 'wf-bar-area' }, bar, dur);
    // Each span event (retries, breaker and split decisions, the
    // services' own) is a tick on the bar at its time.
    for (const e of s.events || []) {
      const tick = h('span', { class: 'wf-event', title: e.name });
      tick.style.left = Math.min(99.5, (Date.parse(e.time) - t0) / total * 100).toFixed(3) + '%';
      area.append(tick);
    }
    const row = h('div', { class: 'wf-row', 'data-span-id': s.span_id, 'data-service': s.service, 'data-kind': s.kind || 'internal' }, name, area);
    const detail = spanDetail(s);
    detail.hidden = true;
    row.addEventListener('click', () => { detail.hidden = !detail.hidden; });
    wf.append(row, detail);
  }
  body.append(wf);
  for (const sw of body.querySelectorAll('.sw')) sw.style.background = sw.getAttribute('data-color');
  const logs = doc.logs || [];
  body.append(h('h2', {}, 'Log lines (', h('span', { id: 'trace-log-count' }, String(logs.length)), ')'));
  const lb = h('div', { class: 'logs', id: 'trace-logs' });
  for (const l of logs) {
    const attrs = Object.entries(l.attributes || {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
    lb.append(h('div', { class: 'log-line', title: l.body }, `${l.time} ${l.severity || ''} [${l.service || ''}] ${logBody(l.body)} ${attrs}`));
  }
  if (!logs.length) lb.append(h('div', {}, 'No log lines were stored for this trace.'));
  body.append(lb);
}

// logBody shortens an access-log record (a JSON body) to its request,
// status, route, service and duration; other bodies stay as they are (the
// whole record is the line's tooltip).
function logBody(body) {
  if (!body || body[0] !== '{') return body;
  let r;
  try { r = JSON.parse(body); } catch (e) { return body; }
  if (!r || typeof r !== 'object' || !r['http.request.method']) return body;
  const parts = [`${r['http.request.method']} ${r['url.path'] || r['url.full'] || ''} → ${r['http.response.status_code'] ?? '–'}`];
  for (const k of ['route', 'service', 'upstream', 'attempts', 'error.type']) if (r[k] !== undefined && r[k] !== '') parts.push(`${k}=${typeof r[k] === 'string' ? r[k] : JSON.stringify(r[k])}`);
  if (r.duration_seconds !== undefined) parts.push(fmtMS(r.duration_seconds * 1000));
  return parts.join(' ');
}

function spanDetail(s) {
  const dl = h('dl');
  const add = (k, v) => dl.append(h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v)));
  add('span', `${s.span_id} (${s.kind || 'internal'}), status ${s.status}${s.status_message ? ': ' + s.status_message : ''}`);
  add('start', s.start);
  for (const [k, v] of Object.entries(s.attributes || {})) add(k, v);
  const box = h('div', { class: 'wf-detail', 'data-span-id': s.span_id, 'data-service': s.service, 'data-kind': s.kind || 'internal' }, dl);
  if (s.events && s.events.length) {
    box.append(h('b', {}, 'Events'));
    box.append(h('ul', { class: 'wf-events' }, s.events.map(e => h('li', {}, `${e.time} ${e.name} ${Object.entries(e.attributes || {}).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ')}`))));
  }
  return box;
}
