// pages.js: one function per page. Each renders into its root element and
// returns {leave} to stop its timers.
import { h, s, clear, fmtNum, fmtRate, fmtPct, fmtMS, fmtBytes, spark, table, card } from './dom.js';
import { lineChart } from './charts.js';
import { tracesPage } from './traces.js';
import { mapPage } from './map.js';
import { kpisPage } from './kpis.js';
import { firingPanel, alertsPage, rolloutsPage, decisionTimeline } from './alerts.js';

export async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${url}: HTTP ${r.status}`);
  return body;
}

function errorBox(root, err) {
  root.append(h('p', { class: 'bad' }, String(err.message || err)));
}

function statusCell(st) {
  const parts = [];
  for (const k of ['2xx', '3xx', '4xx', '5xx', 'other', 'none']) {
    if (st && st[k]) parts.push(h('span', { class: 'pill ' + (k === '5xx' ? 'bad' : k === '4xx' ? 'warn' : k === '2xx' ? 'ok' : '') }, `${k} ${fmtNum(st[k])}`), ' ');
  }
  return parts.length ? parts : '–';
}
function kindsCell(ek) {
  const ks = Object.entries(ek || {});
  return ks.length ? ks.map(([k, v]) => `${k} ${fmtNum(v)}`).join(', ') : '–';
}

// statCols are the columns of a table of series figures. split adds the
// gateway/upstream split of latency, which host series do not record (a
// host's latency is its attempts' own time), so host tables leave it out
// rather than show a split of zeros.
const statCols = (link, split = true) => [
  { key: 'name', label: 'Name', cell: r => link ? h('a', { href: link(r) }, r.name) : r.name },
  { key: 'rate', label: 'Rate', num: true, fmt: v => fmtRate(v) },
  { key: 'spark', label: 'Last minute', cell: r => spark(r.spark), sortKey: r => r.requests },
  { key: 'requests', label: 'Requests', num: true, fmt: v => fmtNum(v) },
  { key: 'error_ratio', label: '5xx ratio', num: true, cell: r => h('span', { class: r.error_ratio > 0 ? 'bad' : '' }, fmtPct(r.error_ratio)) },
  { key: 'p50_ms', label: 'p50', num: true, fmt: fmtMS },
  { key: 'p99_ms', label: 'p99', num: true, fmt: fmtMS },
  ...(split ? [
    { key: 'overhead_mean_ms', label: 'Gateway (mean)', num: true, fmt: fmtMS },
    { key: 'upstream_mean_ms', label: 'Upstream (mean)', num: true, fmt: fmtMS },
  ] : []),
  { key: 'status', label: 'Status classes', cell: r => statusCell(r.status), sortKey: r => r.errors_5xx },
  { key: 'error_kinds', label: 'Error kinds', cell: r => kindsCell(r.error_kinds), sortKey: r => Object.keys(r.error_kinds || {}).length },
];

function onLive(ctx, f) {
  ctx.live.listeners.add(f);
  if (ctx.live.data) f(ctx.live.data);
}

function overview(root, _args, ctx) {
  root.append(h('h1', {}, 'Overview ', h('span', { class: 'muted' }, '(last minute, live)')));
  const cards = h('div', { class: 'cards' });
  const tops = h('div', { class: 'row' });
  const reload = h('div');
  const notes = h('div');
  const firing = h('div');
  root.append(notes, cards, h('h2', {}, h('a', { href: '/alerts' }, 'Firing alerts')), firing, tops, h('h2', {}, 'Last reload'), reload);
  const stop = firingPanel(firing);
  onLive(ctx, d => {
    const g = d.gateway || {};
    clear(notes);
    for (const n of d.notes || []) notes.append(h('p', { class: 'warn' }, n));
    clear(cards).append(
      card('Requests', fmtNum(g.requests), 'ov-requests'),
      card('Rate', fmtRate(g.rate), 'ov-rate'),
      card('Now', fmtRate((d.now || {}).requests || 0), 'ov-now'),
      card('5xx ratio', fmtPct(g.error_ratio), 'ov-error-ratio', g.error_ratio > 0 ? 'bad' : ''),
      card('p50', fmtMS(g.p50_ms), 'ov-p50'),
      card('p99', fmtMS(g.p99_ms), 'ov-p99'),
      card('Gateway overhead (mean)', fmtMS(g.overhead_mean_ms), 'ov-overhead'),
      card('Upstream (mean)', fmtMS(g.upstream_mean_ms), 'ov-upstream'),
    );
    const cols = [
      { key: 'name', label: 'Route', cell: r => h('a', { href: '/route/' + encodeURIComponent(r.name) }, r.name) },
      { key: 'errors_5xx', label: '5xx', num: true, fmt: v => fmtNum(v) },
      { key: 'error_ratio', label: '5xx ratio', num: true, fmt: fmtPct },
      { key: 'p99_ms', label: 'p99', num: true, fmt: fmtMS },
      { key: 'rate', label: 'Rate', num: true, fmt: fmtRate },
    ];
    clear(tops).append(
      h('div', {}, h('h2', {}, 'Top routes by errors'), d.top_errors.length ? table(cols, d.top_errors, { sort: 'errors_5xx' }, { id: 'top-errors' }) : h('p', { class: 'muted' }, 'No 5xx in the last minute.')),
      h('div', {}, h('h2', {}, 'Top routes by p99 latency'), d.top_latency.length ? table(cols, d.top_latency, { sort: 'p99_ms' }, { id: 'top-latency' }) : h('p', { class: 'muted' }, 'No traffic in the last minute.')),
    );
    clear(reload).append(reloadView(d.reload));
  });
  return { leave: stop };
}

function reloadView(r) {
  if (!r) return h('p', { class: 'muted' }, 'No reload information.');
  const t = r.time ? new Date(r.time).toLocaleString() : '–';
  const el = h('div', { id: 'reload' },
    h('p', {}, h('span', { class: 'pill ' + (r.success ? 'ok' : 'bad') }, r.success ? 'ok' : 'failed'), ` ${t} from ${r.source || '–'}; serving config loaded ${r.last_success ? new Date(r.last_success).toLocaleString() : '–'}`));
  if (r.errors && r.errors.length) el.append(h('ul', { class: 'err-list' }, r.errors.map(e => h('li', {}, e))));
  return el;
}

function statTable(title, key, link, extra) {
  return (root, _args, ctx) => {
    root.append(h('h1', {}, title, ' ', h('span', { class: 'muted' }, '(last minute, live)')));
    const box = h('div');
    const state = {};
    let last = null;
    let status = {};
    root.append(box);
    state.rerender = () => last && render(last);
    const render = d => {
      last = d;
      const cols = statCols(link, key !== 'hosts').concat(extra ? extra(status) : []);
      clear(box).append(d[key].length ? table(cols, d[key], state, { id: key + '-table' }) : h('p', { class: 'muted' }, 'No ' + key + ' with traffic yet.'));
    };
    if (key === 'services' || key === 'hosts') {
      getJSON('/api/services').then(ss => {
        for (const sv of ss) {
          status[sv.name] = sv;
          for (const hs of (sv.pool && sv.pool.hosts) || []) status[sv.name + '/' + hs.addr] = hs;
        }
        state.rerender();
      }).catch(() => {});
    }
    onLive(ctx, render);
  };
}

// breakerDetail says what a breaker's status holds in words: since when
// it is in its state, its window and its probes.
const breakerDetail = b => [
  b.since ? 'since ' + new Date(b.since).toLocaleTimeString() : '',
  b.window_requests !== undefined ? `window: ${fmtNum(b.window_requests)} requests, ${fmtNum(b.window_failures || 0)} failed, ${fmtNum(b.window_slow_calls || 0)} slow` : '',
  b.consecutive_failures ? `${fmtNum(b.consecutive_failures)} consecutive failures` : '',
  b.probes_in_flight ? `${fmtNum(b.probes_in_flight)} probes in flight` : '',
  b.probe_successes ? `${fmtNum(b.probe_successes)} probes passed` : '',
  b.open_until ? 'open until ' + new Date(b.open_until).toLocaleTimeString() : '',
  b.last_reason ? 'last: ' + b.last_reason : '',
  b.fallback ? 'fallback ' + b.fallback : '',
].filter(Boolean).join(' · ') || '–';

const breakerName = n => ['closed', 'half-open', 'open'][n] || String(n);

function healthCell(st, r) {
  const p = [];
  if (r.decisions && r.decisions.ejected) p.push(h('span', { class: 'pill bad' }, 'ejected'));
  if (r.decisions && r.decisions.unhealthy) p.push(h('span', { class: 'pill bad' }, 'unhealthy'));
  if (r.decisions && r.decisions.breaker_state) p.push(h('span', { class: 'pill ' + (r.decisions.breaker_state === 2 ? 'bad' : 'warn') }, 'breaker ' + breakerName(r.decisions.breaker_state)));
  const sv = st[r.name];
  if (sv && sv.status) p.push(h('span', { class: 'pill ' + (sv.status === 'enabled' || sv.status === 'healthy' ? 'ok' : 'warn') }, sv.status));
  if (sv && sv.addr !== undefined) {
    if (sv.ejected) p.push(h('span', { class: 'pill bad' }, 'ejected now'));
    if (!sv.healthy) p.push(h('span', { class: 'pill bad' }, 'unhealthy now'));
    if (sv.available) p.push(h('span', { class: 'pill ok' }, 'available'));
  }
  if (r.decisions && r.decisions.ejections) p.push(` ${r.decisions.ejections} ejections`);
  return p.length ? p : h('span', { class: 'pill ok' }, 'ok');
}

function routeDetail(root, args) {
  const name = args.join('/');
  const windows = ['5m', '15m', '1h', '6h', '24h'];
  let win = new URLSearchParams(location.search).get('window') || '5m';
  root.append(h('h1', {}, 'Route ', h('span', { id: 'rd-name' }, name)));
  const sel = h('select', { id: 'rd-window' }, windows.map(w => h('option', { value: w }, w)));
  sel.value = win;
  const sum = h('div', { class: 'cards' });
  const charts = h('div');
  root.append(h('form', { class: 'inline' }, h('label', {}, 'Window', sel)), sum, charts);
  let timer = null;
  const load = async () => {
    const stepFor = { '5m': 1, '15m': 5, '1h': 15, '6h': 60, '24h': 300 };
    try {
      const res = await getJSON(`/api/history?scope=route&name=${encodeURIComponent(name)}&window=${win}&step=${stepFor[win]}s&series=requests,status,errors,latency,overhead,upstream,inflight`);
      const tot = res.total || {};
      const st = tot.status || {};
      const req = tot.requests || 0;
      clear(sum).append(
        card('Requests', fmtNum(req), 'rd-requests'),
        card('5xx ratio', fmtPct(req ? (st['5xx'] || 0) / req : 0), 'rd-error-ratio', st['5xx'] ? 'bad' : ''),
        card('4xx', fmtNum(st['4xx'] || 0), 'rd-4xx'),
        card('p50', fmtMS((tot.latency || {}).p50_ms), 'rd-p50'),
        card('p99', fmtMS((tot.latency || {}).p99_ms), 'rd-p99'),
        card('Gateway overhead (mean)', fmtMS((tot.overhead || {}).mean_ms), 'rd-overhead'),
        card('Upstream (mean)', fmtMS((tot.upstream || {}).mean_ms), 'rd-upstream'),
        card('Error kinds', kindsCell(tot.errors), 'rd-kinds'),
      );
      const step = stepFor[win];
      const pts = res.points || [];
      const t = pts.map(p => p.t);
      clear(charts).append(
        lineChart('Requests per second', t, [
          { label: 'requests/s', values: pts.map(p => (p.requests || 0) / step) },
          { label: '5xx/s', values: pts.map(p => ((p.status || {})['5xx'] || 0) / step), color: '#dc2626' },
          { label: '4xx/s', values: pts.map(p => ((p.status || {})['4xx'] || 0) / step), color: '#d97706' },
        ]),
        lineChart('Latency (ms)', t, [
          { label: 'p50', values: pts.map(p => (p.latency || {}).p50_ms || null) },
          { label: 'p99', values: pts.map(p => (p.latency || {}).p99_ms || null), color: '#7c3aed' },
        ]),
        lineChart('Gateway vs upstream (mean ms)', t, [
          { label: 'gateway overhead', values: pts.map(p => (p.overhead || {}).mean_ms || null), color: '#0891b2' },
          { label: 'upstream', values: pts.map(p => (p.upstream || {}).mean_ms || null), color: '#16a34a' },
        ]),
      );
    } catch (e) { clear(sum); errorBox(sum, e); }
  };
  sel.addEventListener('change', () => { win = sel.value; history.replaceState(null, '', `/route/${encodeURIComponent(name)}?window=${win}`); load(); });
  load();
  timer = setInterval(load, 5000);
  return { leave: () => clearInterval(timer) };
}

function traffic(root, _args, ctx) {
  root.append(h('h1', {}, 'Traffic control ', h('span', { class: 'muted' }, '(last minute, live)')));
  const splits = h('div'), breakers = h('div'), limits = h('div'), events = h('div', { id: 'decision-timeline' });
  root.append(h('h2', {}, 'Decision events'), events, h('h2', {}, 'Splits: configured weight vs served share'), splits, h('h2', {}, 'Breakers'), breakers, h('h2', {}, 'Rate limits and retries per route'), limits);
  const stop = decisionTimeline(events);
  let routes = [];
  let services = [];
  const render = d => {
    const legs = {};
    for (const l of d.legs || []) legs[l.name] = l;
    clear(splits);
    const withSplit = routes.filter(r => r.weights && r.weights.length);
    if (!withSplit.length) splits.append(h('p', { class: 'muted' }, 'No route has a weighted split.'));
    for (const r of withSplit) {
      const total = r.weights.reduce((a, w) => a + (w.weight || 0), 0) || 1;
      const served = r.weights.reduce((a, w) => a + ((legs[r.name + '/' + w.service] || {}).requests || 0), 0);
      const rows = r.weights.map(w => {
        const l = legs[r.name + '/' + w.service] || {};
        return { name: w.service, weight: (w.weight || 0) / total, served: served ? (l.requests || 0) / served : 0, requests: l.requests || 0, error_ratio: l.error_ratio || 0, p99_ms: l.p99_ms || 0, spark: l.spark };
      });
      splits.append(h('h3', {}, 'Route ', h('a', { href: '/route/' + encodeURIComponent(r.name) }, r.name)), table([
        { key: 'name', label: 'Service (leg)' },
        { key: 'weight', label: 'Configured', num: true, fmt: fmtPct },
        { key: 'served', label: 'Served', num: true, fmt: fmtPct },
        { key: 'requests', label: 'Requests', num: true, fmt: v => fmtNum(v) },
        { key: 'error_ratio', label: '5xx ratio', num: true, fmt: fmtPct },
        { key: 'p99_ms', label: 'p99', num: true, fmt: fmtMS },
        { key: 'spark', label: 'Last minute', cell: r => spark(r.spark) },
      ], rows, { sort: 'name', asc: true }, { class: 'split-table', 'data-route': r.name }));
    }
    clear(breakers);
    const bs = [];
    for (const sv of services) {
      if (sv.breaker) bs.push({ name: sv.name, state: sv.breaker.state || '', detail: breakerDetail(sv.breaker) });
      for (const [host, b] of Object.entries(sv.host_breakers || {})) bs.push({ name: sv.name + ' / ' + host, state: b.state || '', detail: breakerDetail(b) });
    }
    const svcStats = {};
    for (const x of d.services || []) svcStats[x.name] = x;
    for (const b of bs) b.rejected = ((svcStats[b.name] || {}).error_kinds || {}).breaker_open || 0;
    breakers.append(bs.length ? table([
      { key: 'name', label: 'Breaker' },
      { key: 'state', label: 'State', cell: r => h('span', { class: 'pill ' + (r.state === 'open' ? 'bad' : r.state === 'half_open' || r.state === 'half-open' ? 'warn' : 'ok') }, r.state || '–') },
      { key: 'rejected', label: 'Rejected (last minute)', num: true, fmt: v => fmtNum(v) },
      { key: 'detail', label: 'Details' },
    ], bs, {}) : h('p', { class: 'muted' }, 'No breakers configured.'));
    const rows = (d.routes || []).map(r => ({
      name: r.name,
      rate_limited: (r.error_kinds || {}).rate_limited || 0,
      breaker_open: (r.error_kinds || {}).breaker_open || 0,
      retries: (r.decisions || {}).retries || 0,
      budget: (r.decisions || {}).retry_budget_exhausted || 0,
      requests: r.requests,
    }));
    clear(limits).append(rows.length ? table([
      { key: 'name', label: 'Route', cell: r => h('a', { href: '/route/' + encodeURIComponent(r.name) }, r.name) },
      { key: 'requests', label: 'Requests', num: true, fmt: v => fmtNum(v) },
      { key: 'rate_limited', label: 'Rate-limited', num: true, fmt: v => fmtNum(v) },
      { key: 'breaker_open', label: 'Breaker rejections', num: true, fmt: v => fmtNum(v) },
      { key: 'retries', label: 'Retries', num: true, fmt: v => fmtNum(v) },
      { key: 'budget', label: 'Retry budget refusals', num: true, fmt: v => fmtNum(v) },
    ], rows, { sort: 'rate_limited' }) : h('p', { class: 'muted' }, 'No traffic yet.'));
  };
  Promise.all([getJSON('/api/routes'), getJSON('/api/services')]).then(([r, sv]) => {
    routes = r; services = sv;
    onLive(ctx, render);
  }).catch(e => errorBox(root, e));
  return { leave: stop };
}

function host(root) {
  root.append(h('h1', {}, 'Host'));
  const cards = h('div', { class: 'cards' }), charts = h('div');
  root.append(cards, charts);
  const load = async () => {
    try {
      const res = await getJSON('/api/history?scope=gateway&window=15m&step=10s&series=machine');
      const pts = res.points || [];
      const t = pts.map(p => p.t);
      const m = p => p.machine || {};
      const last = [...pts].reverse().find(p => m(p).memory_total_bytes);
      if (!last) {
        // No machine sample in the window: say so rather than draw zeros.
        clear(cards);
        clear(charts).append(h('p', { class: 'muted', id: 'host-none' },
          'No host metrics in the last 15 minutes (the history reads them from /proc on Linux).'));
        return;
      }
      clear(cards).append(
        card('CPU busy (last 10 s)', fmtNum((m(last).cpu_ms || 0) / 10000, 2) + ' CPUs', 'host-cpu'),
        card('Memory used', fmtBytes(m(last).memory_used_bytes || 0) + ' / ' + fmtBytes(m(last).memory_total_bytes || 0), 'host-mem'),
      );
      // A step without a machine sample (before the process started, or
      // off Linux) is a gap, not a zero.
      const mv = (f, div) => pts.map(p => m(p).memory_total_bytes ? (m(p)[f] || 0) / div : null);
      clear(charts).append(
        lineChart('CPU busy (CPUs)', t, [{ label: 'busy CPUs', values: mv('cpu_ms', 10000) }]),
        lineChart('Memory used (MiB)', t, [{ label: 'used', values: mv('memory_used_bytes', 1048576) }]),
        lineChart('Disk (KiB/s)', t, [
          { label: 'read', values: mv('disk_read_bytes', 10240) },
          { label: 'written', values: mv('disk_written_bytes', 10240), color: '#d97706' }]),
        lineChart('Network (KiB/s)', t, [
          { label: 'received', values: mv('net_rx_bytes', 10240) },
          { label: 'sent', values: mv('net_tx_bytes', 10240), color: '#16a34a' }]),
      );
    } catch (e) { clear(cards); errorBox(cards, e); }
  };
  load();
  const timer = setInterval(load, 10000);
  return { leave: () => clearInterval(timer) };
}

function config(root) {
  root.append(h('h1', {}, 'Config'));
  const rl = h('div'), rs = h('div'), ss = h('div');
  root.append(h('h2', {}, 'Last reload'), rl, h('h2', {}, 'Routes serving'), rs, h('h2', {}, 'Services serving'), ss);
  getJSON('/api/reload').then(r => rl.append(reloadView(r))).catch(e => errorBox(rl, e));
  getJSON('/api/routes').then(routes => rs.append(table([
    { key: 'name', label: 'Route', cell: r => h('a', { href: '/route/' + encodeURIComponent(r.name) }, r.name) },
    { key: 'template', label: 'Template' },
    { key: 'service', label: 'Service(s)', cell: r => r.service || (r.weights || []).map(w => `${w.service} (${w.weight})`).join(', ') },
    { key: 'priority', label: 'Priority', num: true },
    { key: 'status', label: 'Status', cell: r => h('span', { class: 'pill ' + (r.status === 'enabled' ? 'ok' : 'warn') }, r.status) },
    { key: 'errors', label: 'Problems', cell: r => (r.errors || []).join('; ') || '–' },
  ], routes, { sort: 'name', asc: true }, { id: 'config-routes' }))).catch(e => errorBox(rs, e));
  getJSON('/api/services').then(svcs => ss.append(table([
    { key: 'name', label: 'Service' },
    { key: 'load_balancing', label: 'Load balancing' },
    { key: 'status', label: 'Status' },
    { key: 'hosts', label: 'Hosts', cell: r => ((r.pool && r.pool.hosts) || []).map(x => x.addr + (x.available ? '' : ' (unavailable)')).join(', ') },
  ], svcs, { sort: 'name', asc: true }, { id: 'config-services' }))).catch(e => errorBox(ss, e));
}

export const pages = {
  overview,
  routes: statTable('Routes', 'routes', r => '/route/' + encodeURIComponent(r.name)),
  route: routeDetail,
  services: statTable('Services', 'services', null, st => [{ key: 'health', label: 'Health', cell: r => healthCell(st, r), sortKey: r => (r.decisions || {}).breaker_state || 0 }]),
  hosts: statTable('Upstream hosts', 'hosts', null, st => [{ key: 'health', label: 'Health / ejection', cell: r => healthCell(st, r), sortKey: r => (r.decisions || {}).ejected || 0 }]),
  traffic,
  alerts: alertsPage,
  rollouts: rolloutsPage,
  traces: tracesPage,
  map: mapPage,
  host,
  config,
  kpis: kpisPage,
};
