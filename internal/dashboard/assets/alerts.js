// alerts.js: firing alerts (overview panel and the alerts page, from
// /api/alerts), rollouts (from /api/rollouts) and the shared timeline of
// decision events (rollout decisions, alert transitions, reloads).
import { h, s, clear, fmtNum, fmtPct, fmtMS, table, card } from './dom.js';
import { lineChart } from './charts.js';

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 404 && url.startsWith('/api/alerts')) throw new Error('alerts are off (the history is disabled)');
  if (r.status === 404 && url.startsWith('/api/rollouts')) return { rollouts: [] };
  if (!r.ok) throw new Error((body && body.error) || `${url}: HTTP ${r.status}`);
  return body;
}

// every runs f now and every ms until the page is left.
function every(ms, f) {
  f();
  const id = setInterval(f, ms);
  return () => clearInterval(id);
}

const stateClass = st => ({ firing: 'bad', pending: 'warn', resolved: 'ok', inactive: '' }[st] || '');
const since = t => t ? new Date(t).toLocaleTimeString() : '–';

// fmtValue shows an alert's value or threshold in its metric's unit.
function fmtValue(metric, v) {
  if (v === undefined || v === null) return '–';
  switch (metric) {
    case 'error_ratio': case 'rate_limited_ratio': case 'memory': case 'burn_rate':
      return metric === 'burn_rate' ? fmtNum(v, 2) + '×' : fmtPct(v);
    case 'latency': case 'overhead':
      return fmtMS(v * 1000);
    case 'request_rate': case 'retry_budget_exhausted':
      return fmtNum(v, 2) + '/s';
  }
  return fmtNum(v, 3);
}

function labelText(labels) {
  return Object.entries(labels || {}).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(' ');
}

function exemplarLinks(a) {
  const ex = (a.exemplars || []).slice(0, 3);
  if (!ex.length) return '–';
  return ex.map(e => h('a', { href: '/traces/' + e.trace_id, class: 'mono exemplar', title: `${e.kind} ${e.status || ''}` }, e.trace_id.slice(0, 8) + '…'));
}

function alertRow(rules) {
  return [
    { key: 'rule', label: 'Alert', cell: a => h('a', { href: '/alerts/' + encodeURIComponent(a.rule) }, a.rule) },
    { key: 'labels', label: 'Labels', cell: a => labelText(a.labels) },
    { key: 'state', label: 'State', cell: a => h('span', { class: 'pill ' + stateClass(a.state) }, a.state + (a.inhibited ? ' (inhibited)' : '')) },
    { key: 'active_at', label: 'Since', cell: a => since(a.fired_at || a.active_at), sortKey: a => a.fired_at || a.active_at || '' },
    { key: 'value', label: 'Value', num: true, cell: a => fmtValue((rules[a.rule] || {}).metric, a.value) },
    // A firing alert is held against its rule's resolve threshold; say so,
    // or the row seems to contradict the rule's "fires" threshold.
    { key: 'threshold', label: 'Threshold', num: true, cell: a => {
      const r = rules[a.rule] || {};
      const resolving = a.state === 'firing' && r.resolve_threshold !== undefined && r.resolve_threshold !== r.threshold && a.threshold === r.resolve_threshold;
      return `${a.op || ''} ${fmtValue(r.metric, a.threshold)}${resolving ? ' (resolve)' : ''}`;
    } },
    { key: 'requests', label: 'Requests', num: true, fmt: v => fmtNum(v) },
    { key: 'exemplars', label: 'Exemplar traces', cell: exemplarLinks, sortKey: a => (a.exemplars || []).length },
  ];
}

const ruleMap = doc => Object.fromEntries((doc.rules || []).map(r => [r.name, r]));

// firingPanel fills el with the firing alerts, refreshed every 2 s; it
// returns the function that stops the refresh.
export function firingPanel(el) {
  return every(2000, () => getJSON('/api/alerts').then(doc => {
    const firing = (doc.alerts || []).filter(a => a.state === 'firing');
    clear(el).append(firing.length
      ? table(alertRow(ruleMap(doc)), firing, { sort: 'active_at' }, { id: 'firing-alerts' })
      : h('p', { class: 'muted', id: 'no-firing' }, `No alert is firing (${(doc.rules || []).length} rules).`));
  }).catch(e => clear(el).append(h('p', { class: 'muted' }, e.message))));
}

// alertsPage lists every rule and alert; /alerts/{rule} adds the rule's
// recent history on a chart with its threshold.
export function alertsPage(root, args) {
  const rule = args.join('/');
  root.append(h('h1', {}, rule ? ['Alert rule ', h('span', { id: 'alert-rule' }, rule)] : 'Alerts'));
  const head = h('p', { class: 'muted' }), alertsBox = h('div'), rulesBox = h('div'), chartBox = h('div', { id: 'alert-chart' });
  root.append(head, h('h2', {}, 'Alerts'), alertsBox);
  if (rule) root.append(h('h2', {}, 'Recent history (last 5 minutes)'), chartBox);
  root.append(h('h2', {}, 'Rules'), rulesBox);
  const state = {}, rstate = { sort: 'name', asc: true };
  let charted = '';
  return { leave: every(2000, () => getJSON('/api/alerts').then(doc => {
    const rules = ruleMap(doc);
    head.textContent = `Evaluated every ${doc.evaluation_interval}, last at ${since(doc.evaluated_at)}.` + (doc.error ? ' Last error: ' + doc.error : '');
    const alerts = (doc.alerts || []).filter(a => !rule || a.rule === rule);
    clear(alertsBox).append(alerts.length ? table(alertRow(rules), alerts, state, { id: 'alerts-table' }) : h('p', { class: 'muted', id: 'alerts-none' }, 'No pending, firing or recently resolved alerts.'));
    const rs = (doc.rules || []).filter(r => !rule || r.name === rule);
    clear(rulesBox).append(rs.length ? table([
      { key: 'name', label: 'Rule', cell: r => h('a', { href: '/alerts/' + encodeURIComponent(r.name) }, r.name) },
      { key: 'state', label: 'State', cell: r => h('span', { class: 'pill ' + stateClass(r.state) }, r.state) },
      { key: 'scope', label: 'Scope', cell: r => r.scope + (r.target ? ' ' + r.target : ' (each)') },
      { key: 'metric', label: 'Metric' },
      { key: 'threshold', label: 'Fires', num: true, cell: r => `${r.op} ${fmtValue(r.metric, r.threshold)}` },
      { key: 'resolve_threshold', label: 'Resolves', num: true, cell: r => fmtValue(r.metric, r.resolve_threshold) },
      { key: 'window', label: 'Window' }, { key: 'for', label: 'For' },
      { key: 'alerts', label: 'Alerts', num: true },
    ], rs, rstate, { id: 'rules-table' }) : h('p', { class: 'muted' }, rule ? 'No such rule.' : 'No rules are configured.'));
    const r = rules[rule];
    // The chart is drawn once per rule and series; the table refreshes.
    if (r) {
      const a = alerts[0];
      const name = r.target || (a && a.labels && (a.labels[r.scope] || a.labels.route)) || '';
      const key = r.scope + '/' + name;
      if (key !== charted) { charted = key; ruleChart(chartBox, r, name); }
    }
  }).catch(e => clear(alertsBox).append(h('p', { class: 'bad' }, e.message)))) };
}

// ruleChart draws the series a rule watches over the last 5 minutes, per
// 5 s step, beside its threshold.
async function ruleChart(el, r, name) {
  const pick = {
    error_ratio: p => p.requests ? ((p.status || {})['5xx'] || 0) / p.requests : null,
    request_rate: p => (p.requests || 0) / 5,
    latency: p => (p.latency || {}).p99_ms ? p.latency.p99_ms / 1000 : null,
    overhead: p => (p.overhead || {}).p99_ms ? p.overhead.p99_ms / 1000 : null,
  }[r.metric];
  if (!pick || (r.scope !== 'gateway' && !name)) {
    clear(el).append(h('p', { class: 'muted' }, `No chart for ${r.metric} of ${r.scope}: the page charts error_ratio, request_rate, latency and overhead of one series.`));
    return;
  }
  try {
    const q = new URLSearchParams({ scope: r.scope, window: '5m', step: '5s', series: 'requests,status,latency,overhead' });
    if (r.scope !== 'gateway') q.set('name', name);
    const res = await getJSON('/api/history?' + q);
    const pts = res.points || [];
    const scale = ['error_ratio'].includes(r.metric) ? 100 : ['latency', 'overhead'].includes(r.metric) ? 1000 : 1;
    const unit = scale === 100 ? ' (%)' : scale === 1000 ? ' (ms)' : '';
    clear(el).append(lineChart(`${r.metric} of ${r.scope} ${name}${unit}, per 5 s`, pts.map(p => p.t), [
      { label: r.metric, values: pts.map(p => { const v = pick(p); return v === null ? null : v * scale; }) },
      { label: 'threshold', values: pts.map(() => r.threshold * scale), color: '#dc2626' },
    ]));
  } catch (e) { clear(el).append(h('p', { class: 'bad' }, e.message)); }
}

// rolloutsPage shows each rollout: state, step and weight, canary vs
// stable charts, the last analysis' checks and the decision timeline.
export function rolloutsPage(root) {
  root.append(h('h1', {}, 'Rollouts'));
  const box = h('div');
  root.append(box);
  const charts = {};
  return { leave: every(2000, () => getJSON('/api/rollouts').then(doc => {
    const rs = doc.rollouts || [];
    if (!rs.length) { clear(box).append(h('p', { class: 'muted', id: 'rollouts-none' }, 'No rollouts are configured.')); return; }
    // Keep each rollout's chart element across refreshes (it loads its
    // history every 10 s on its own).
    const els = rs.map(r => rolloutView(r, charts));
    clear(box).append(...els);
  }).catch(e => clear(box).append(h('p', { class: 'bad' }, e.message)))) };
}

function rolloutView(r, charts) {
  const steps = (r.steps || []).map((w, i) => h('span', { class: 'pill ' + (i === r.step ? 'ok' : i < r.step ? '' : 'muted'), 'data-step': i }, w + '%'));
  const box = h('section', { class: 'rollout', id: 'rollout-' + r.name, 'data-name': r.name },
    h('h2', {}, 'Rollout ', r.name, ' ', h('span', { class: 'muted' }, `route ${r.route}: ${r.stable} → ${r.canary}`)),
    h('div', { class: 'cards' },
      card('State', r.state, 'ro-state-' + r.name, { rolled_back: 'bad', holding: 'warn', promoted: 'ok', progressing: 'ok' }[r.state] || ''),
      card('Step', r.step < 0 ? 'not started' : `${r.step + 1} of ${(r.steps || []).length}`, 'ro-step-' + r.name),
      card('Canary weight', r.weight + '%', 'ro-weight-' + r.name),
      card('Passes / failures', `${r.passes} / ${r.failures}`, 'ro-passes-' + r.name),
      card('Next analysis', r.next_analysis ? new Date(r.next_analysis).toLocaleTimeString() : '–', 'ro-next-' + r.name),
    ),
    h('p', {}, 'Steps: ', steps),
    r.error ? h('p', { class: 'bad' }, r.error) : null);
  if (!charts[r.name]) charts[r.name] = { el: h('div', { class: 'row' }), at: 0 };
  const c = charts[r.name];
  if (Date.now() - c.at > 10000) { c.at = Date.now(); legCharts(c.el, r); }
  box.append(c.el);
  if (r.last_analysis) box.append(h('h3', {}, 'Last analysis: ', h('span', { class: 'pill ' + verdictClass(r.last_analysis.verdict) }, r.last_analysis.verdict), ' ', r.last_analysis.reason || ''), checksTable(r.last_analysis));
  box.append(h('h3', {}, 'Decisions'), decisionsTable(r));
  return box;
}

const verdictClass = v => ({ pass: 'ok', fail: 'bad', hold: 'warn' }[v] || '');

function checksTable(a) {
  const fmt = (c, v) => c.name.includes('latency') ? fmtMS(v) : fmtPct(v);
  return table([
    { key: 'name', label: 'Check' },
    { key: 'canary', label: 'Canary', num: true, cell: c => fmt(c, c.canary) },
    { key: 'stable', label: 'Stable', num: true, cell: c => c.relative ? fmt(c, c.stable) : '–' },
    { key: 'threshold', label: 'Limit', num: true, cell: c => fmt(c, c.threshold) },
    { key: 'verdict', label: 'Verdict', cell: c => h('span', { class: 'pill ' + verdictClass(c.verdict) }, c.verdict) },
    { key: 'reason', label: 'Why' },
  ], (a.checks || []).map(c => Object.assign({}, c)), { sort: 'name', asc: true }, { class: 'checks-table' });
}

function decisionsTable(r) {
  const ds = (r.decisions || []).map((d, i) => Object.assign({ i }, d));
  if (!ds.length) return h('p', { class: 'muted' }, 'No decisions yet.');
  return table([
    { key: 'time', label: 'Time', cell: d => new Date(d.time).toLocaleTimeString(), sortKey: d => d.i },
    { key: 'action', label: 'Action', cell: d => h('span', { class: 'pill ' + ({ rollback: 'bad', hold: 'warn', promote: 'ok', step: 'ok' }[d.action] || '') }, d.action) },
    { key: 'from', label: 'From → to', cell: d => `${d.from} → ${d.to}` },
    { key: 'weight', label: 'Weight', num: true, cell: d => d.weight + '%' },
    { key: 'reason', label: 'Reason' },
    { key: 'checks', label: 'Check values (canary / stable)', cell: d => checkValues(d.analysis) },
  ], ds, { sort: 'time' }, { class: 'decisions-table', 'data-rollout': r.name });
}

function checkValues(a) {
  if (!a) return '–';
  const n = `canary ${fmtNum(a.canary.requests)} req, stable ${fmtNum(a.stable.requests)} req`;
  return [n].concat((a.checks || []).map(c => `${c.name} ${c.name.includes('latency') ? fmtMS(c.canary) : fmtPct(c.canary)} / ${c.relative ? (c.name.includes('latency') ? fmtMS(c.stable) : fmtPct(c.stable)) : '–'} (${c.verdict})`)).join('; ');
}

// legCharts draws the canary's and the stable's error ratio and p99 over
// the last 5 minutes, per 5 s step.
async function legCharts(el, r) {
  const q = leg => getJSON(`/api/history?scope=leg&name=${encodeURIComponent(r.route + '/' + leg)}&window=5m&step=5s&series=requests,status,latency`).catch(() => ({ points: [] }));
  const [c, st] = await Promise.all([q(r.canary), q(r.stable)]);
  const pc = c.points || [], ps = st.points || [];
  const t = (pc.length >= ps.length ? pc : ps).map(p => p.t);
  const ratio = pts => pts.map(p => p.requests ? 100 * ((p.status || {})['5xx'] || 0) / p.requests : null);
  const p99 = pts => pts.map(p => (p.latency || {}).p99_ms || null);
  clear(el).append(
    lineChart('5xx ratio (%), per 5 s', t, [{ label: 'canary ' + r.canary, values: ratio(pc), color: '#d97706' }, { label: 'stable ' + r.stable, values: ratio(ps), color: '#2563eb' }]),
    lineChart('p99 latency (ms), per 5 s', t, [{ label: 'canary ' + r.canary, values: p99(pc), color: '#d97706' }, { label: 'stable ' + r.stable, values: p99(ps), color: '#2563eb' }]),
  );
}

// decisionTimeline fills el with the decision events of the last 15
// minutes on one time axis: rollout decisions, alert transitions and the
// last reload, refreshed every 5 s.
export function decisionTimeline(el) {
  return every(5000, () => Promise.all([
    getJSON('/api/rollouts').catch(() => ({ rollouts: [] })),
    getJSON('/api/alerts').catch(() => ({ alerts: [] })),
    getJSON('/api/reload').catch(() => null),
  ]).then(([ro, al, rl]) => {
    const ev = [];
    for (const r of ro.rollouts || []) for (const d of r.decisions || []) ev.push({ t: Date.parse(d.time), kind: 'rollout', name: r.name, what: `${d.action}: ${d.from} → ${d.to}, canary ${d.weight}%`, detail: d.reason || '' });
    for (const a of al.alerts || []) {
      const who = a.rule + (labelText(a.labels) ? ' ' + labelText(a.labels) : '');
      if (a.active_at) ev.push({ t: Date.parse(a.active_at), kind: 'alert', name: who, what: 'pending', detail: '' });
      if (a.fired_at) ev.push({ t: Date.parse(a.fired_at), kind: 'alert', name: who, what: 'firing', detail: `value ${fmtNum(a.value, 3)} ${a.op} ${fmtNum(a.threshold, 3)}` });
      if (a.resolved_at) ev.push({ t: Date.parse(a.resolved_at), kind: 'alert', name: who, what: 'resolved', detail: '' });
    }
    if (rl && rl.time) ev.push({ t: Date.parse(rl.time), kind: 'reload', name: rl.source || 'reload', what: rl.success ? 'reload ok' : 'reload failed', detail: (rl.errors || []).join('; ') });
    const now = Date.now();
    const shown = ev.filter(e => e.t >= now - 15 * 60 * 1000).sort((a, b) => b.t - a.t);
    // The axis starts a little before the oldest event shown (at most 15
    // minutes back), so that recent events do not crowd its right end.
    const from = shown.length ? Math.max(now - 15 * 60 * 1000, shown[shown.length - 1].t - Math.max(30000, (now - shown[shown.length - 1].t) / 5)) : now - 15 * 60 * 1000;
    clear(el);
    const W = 1000, H = 46;
    const svg = s('svg', { class: 'timeline', viewBox: `0 0 ${W} ${H}`, width: '100%', height: H, preserveAspectRatio: 'none' });
    svg.append(s('line', { x1: 0, y1: H - 10, x2: W, y2: H - 10, stroke: '#9ca3af' }));
    const color = { rollout: '#7c3aed', alert: '#dc2626', reload: '#0891b2' };
    const row = { rollout: 6, alert: 16, reload: 26 };
    for (const e of shown) {
      const x = (e.t - from) / (now - from) * W;
      svg.append(s('rect', { x: x - 1.5, y: row[e.kind], width: 3, height: 10, fill: color[e.kind], 'data-kind': e.kind }, s('title', {}, `${new Date(e.t).toLocaleTimeString()} ${e.name}: ${e.what}`)));
    }
    el.append(h('div', { class: 'chart' }, h('div', { class: 'title' }, `Since ${new Date(from).toLocaleTimeString()}: `, h('span', { style: undefined, class: 'ev-rollout' }, '▮ rollouts'), ' ', h('span', { class: 'ev-alert' }, '▮ alerts'), ' ', h('span', { class: 'ev-reload' }, '▮ reloads')), svg));
    el.append(shown.length ? table([
      { key: 't', label: 'Time', cell: e => new Date(e.t).toLocaleTimeString() },
      { key: 'kind', label: 'Kind', cell: e => h('span', { class: 'ev-' + e.kind }, e.kind) },
      { key: 'name', label: 'What' },
      { key: 'what', label: 'Event' },
      { key: 'detail', label: 'Details' },
    ], shown.map(e => Object.assign({ name: e.name }, e)), { sort: 't' }, { id: 'decision-events' }) : h('p', { class: 'muted', id: 'decision-events-none' }, 'No decision events in the last 15 minutes.'));
  }));
}
