// kpis.js: the business KPIs' recent history, from the history's kpi
// scope (/api/history?scope=kpi): each KPI in all, per label value and per
// split leg (beside the requests the leg served).
import { h, clear, fmtNum, fmtPct, table, card } from './dom.js';
import { lineChart } from './charts.js';

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${url}: HTTP ${r.status}`);
  return body;
}

// windows maps each window to its chart step in seconds.
const windows = { '15m': 10, '1h': 30, '6h': 120, '24h': 600 };
const windowSec = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400 };

// parse splits a KPI series name: kpi, kpi:label=value or kpi@route/service.
function parse(n) {
  let m = /^([^:@]+)@(.+)$/.exec(n);
  if (m) return { kpi: m[1], leg: m[2] };
  m = /^([^:@]+):([^=]+)=(.*)$/.exec(n);
  if (m) return { kpi: m[1], label: m[2], value: m[3] };
  return { kpi: n };
}

export function kpisPage(root) {
  root.append(h('h1', {}, 'Business KPIs'));
  let win = new URLSearchParams(location.search).get('window') || '15m';
  if (!windows[win]) win = '15m';
  const sel = h('select', { id: 'kpi-window' }, Object.keys(windows).map(w => h('option', { value: w }, w)));
  sel.value = win;
  const box = h('div');
  root.append(h('form', { class: 'inline' }, h('label', {}, 'Window', sel)), box);
  const load = async () => {
    try {
      const names = (await getJSON('/api/history/names?scope=kpi')).names || [];
      if (!names.length) {
        clear(box).append(h('p', { class: 'muted', id: 'kpis-none' }, 'No business KPIs are configured (metrics.kpis): once they are, each one\'s recent history shows here.'));
        return;
      }
      const kpis = {};
      for (const n of names) {
        const p = parse(n);
        (kpis[p.kpi] = kpis[p.kpi] || { all: null, labels: [], legs: [] });
        if (p.leg) kpis[p.kpi].legs.push(Object.assign({ name: n }, p));
        else if (p.label) kpis[p.kpi].labels.push(Object.assign({ name: n }, p));
        else kpis[p.kpi].all = n;
      }
      const step = windows[win];
      const series = n => getJSON(`/api/history?scope=kpi&name=${encodeURIComponent(n)}&window=${win}&step=${step}s&series=kpi`);
      const els = [];
      for (const k of Object.keys(kpis).sort()) {
        const kp = kpis[k];
        const all = kp.all ? await series(kp.all) : { total: {}, points: [] };
        const tot = (all.total || {}).kpi || {};
        const pts = all.points || [];
        const hasSum = pts.some(p => (p.kpi || {}).sum);
        const sec = h('section', { class: 'kpi', id: 'kpi-' + k, 'data-kpi': k },
          h('h2', {}, k),
          h('div', { class: 'cards' },
            card('Events', fmtNum(tot.count || 0), 'kpi-count-' + k),
            card('Per minute', fmtNum((tot.count || 0) / (pts.length * step / 60 || 1), 2), 'kpi-rate-' + k),
            hasSum ? card('Sum', fmtNum(tot.sum || 0, 2), 'kpi-sum-' + k) : null,
            hasSum ? card('Mean', fmtNum(tot.mean || 0, 2), 'kpi-mean-' + k) : null));
        sec.append(lineChart(`${k}: events per ${step} s`, pts.map(p => p.t), [{ label: 'events', values: pts.map(p => (p.kpi || {}).count || 0) }]));
        if (hasSum) sec.append(lineChart(`${k}: mean value per ${step} s`, pts.map(p => p.t), [{ label: 'mean', values: pts.map(p => (p.kpi || {}).count ? p.kpi.mean : null), color: '#16a34a' }]));
        if (kp.labels.length) {
          const rows = [];
          for (const l of kp.labels) {
            const r = await series(l.name);
            const t = (r.total || {}).kpi || {};
            rows.push({ name: l.value, label: l.label, count: t.count || 0, share: tot.count ? (t.count || 0) / tot.count : 0, sum: t.sum || 0 });
          }
          sec.append(h('h3', {}, 'By ', kp.labels[0].label), table([
            { key: 'name', label: kp.labels[0].label },
            { key: 'count', label: 'Events', num: true, fmt: v => fmtNum(v) },
            { key: 'share', label: 'Share', num: true, fmt: fmtPct },
            ...(hasSum ? [{ key: 'sum', label: 'Sum', num: true, fmt: v => fmtNum(v, 2) }] : []),
          ], rows, { sort: 'count' }, { class: 'kpi-labels', 'data-kpi': k }));
        }
        if (kp.legs.length) {
          const rows = [];
          for (const l of kp.legs) {
            const [r, lg] = await Promise.all([series(l.name),
              getJSON(`/api/history?scope=leg&name=${encodeURIComponent(l.leg)}&window=${win}&step=${windowSec[win]}s&series=requests`).catch(() => ({ total: {} }))]);
            const t = (r.total || {}).kpi || {};
            const req = (lg.total || {}).requests || 0;
            rows.push({ name: l.leg, count: t.count || 0, requests: req, per: req ? (t.count || 0) / req : 0 });
          }
          sec.append(h('h3', {}, 'By split leg'), table([
            { key: 'name', label: 'Route / service' },
            { key: 'count', label: 'Events', num: true, fmt: v => fmtNum(v) },
            { key: 'requests', label: 'Requests served', num: true, fmt: v => fmtNum(v) },
            { key: 'per', label: 'Events per request', num: true, fmt: fmtPct },
          ], rows, { sort: 'name', asc: true }, { class: 'kpi-legs', 'data-kpi': k }));
        }
        els.push(sec);
      }
      clear(box).append(...els);
    } catch (e) { clear(box).append(h('p', { class: 'bad' }, e.message)); }
  };
  sel.addEventListener('change', () => { win = sel.value; history.replaceState(null, '', `/kpis?window=${win}`); load(); });
  load();
  const timer = setInterval(load, 10000);
  return { leave: () => clearInterval(timer) };
}
