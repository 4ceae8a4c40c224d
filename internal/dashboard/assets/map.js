// map.js: the service map from the calls between services the traces show
// (/api/dashboard/dependencies), with
// each service's rate, error ratio and latency from the history.
import { h, s, clear, fmtNum, fmtRate, fmtPct, fmtMS } from './dom.js';

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  return body;
}

export function mapPage(root, _args, ctx) {
  root.append(h('h1', {}, 'Service map ', h('span', { class: 'muted' }, '(calls in the last 15 minutes)')));
  const box = h('div');
  root.append(box);
  let links = null;
  const lookback = 15 * 60;
  const render = d => {
    if (!links) return;
    const stats = {};
    for (const x of (d && d.services) || []) stats[x.name] = x;
    // The gateway's own spans carry its service.name (vantage by default);
    // its node shows the whole gateway's figures.
    if (d && d.gateway && !stats.vantage) stats.vantage = Object.assign({ gateway: true }, d.gateway);
    clear(box).append(draw(links, stats, lookback));
  };
  getJSON(`/api/dashboard/dependencies?lookback=${lookback}s`).then(r => {
    links = r.dependencies || [];
    render(ctx.live.data);
    ctx.live.listeners.add(render);
  }).catch(e => box.append(h('p', { class: 'bad' }, 'Trace store: ' + e.message)));
}

// draw lays the services out in columns by call depth and returns the SVG.
function draw(links, stats, lookback) {
  const names = [...new Set(links.flatMap(l => [l.parent, l.child]))].sort();
  if (!names.length) return h('p', { class: 'muted', id: 'map-empty' }, 'No calls between services were stored yet.');
  // Layers by breadth-first distance from the services nobody calls (the
  // gateway when every service is called, as when services call each
  // other back through it), so that cycles cannot push every node to the
  // last column.
  const out = {}, called = new Set();
  for (const l of links) {
    if (l.parent === l.child) continue;
    (out[l.parent] = out[l.parent] || []).push(l.child);
    called.add(l.child);
  }
  const depth = {};
  const bfs = start => {
    const q = [start];
    depth[start] = depth[start] ?? 0;
    while (q.length) {
      const n = q.shift();
      for (const c of out[n] || []) if (depth[c] === undefined) { depth[c] = depth[n] + 1; q.push(c); }
    }
  };
  const roots = names.filter(n => !called.has(n));
  if (!roots.length) roots.push(names.includes('vantage') ? 'vantage' : names[0]);
  roots.forEach(bfs);
  for (const n of names) if (depth[n] === undefined) bfs(n);
  const cols = {};
  for (const n of names) (cols[depth[n]] = cols[depth[n]] || []).push(n);
  const colKeys = Object.keys(cols).map(Number).sort((a, b) => a - b);
  const W = 310, H = 90, nodeW = 180, nodeH = 54;
  const rows = Math.max(...colKeys.map(k => cols[k].length));
  const width = colKeys.length * W + 40, height = rows * H + 90;
  const pos = {};
  colKeys.forEach((k, ci) => cols[k].forEach((n, ri) => { pos[n] = { x: 20 + ci * W, y: 20 + ri * H + (rows - cols[k].length) * H / 2 }; }));
  const svg = s('svg', { class: 'map', id: 'service-map', width, height, viewBox: `0 0 ${width} ${height}` });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#6b7280' }))));
  for (const l of links) {
    const a = pos[l.parent], b = pos[l.child];
    if (!a || !b) continue;
    const st = stats[l.child] || {};
    const bad = st.error_ratio >= 0.05;
    let d, lx, ly;
    if (b.x > a.x) {
      // Forward: from the caller's right side to the callee's left.
      const x1 = a.x + nodeW, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2;
      d = `M ${x1} ${y1} C ${x1 + 40} ${y1}, ${x2 - 40} ${y2}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 4;
    } else {
      // Back (a call to an earlier column, or within one): under the nodes.
      const x1 = a.x + nodeW / 2, y1 = a.y + nodeH, x2 = b.x + nodeW / 2 + 12, y2 = b.y + nodeH;
      const dip = Math.max(y1, y2) + 40;
      d = `M ${x1} ${y1} C ${x1} ${dip}, ${x2} ${dip}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2; ly = dip - 4;
    }
    svg.append(s('path', { class: 'edge', d, fill: 'none', stroke: bad ? '#dc2626' : '#9ca3af', 'stroke-width': 1.5, 'marker-end': 'url(#arrow)', 'data-parent': l.parent, 'data-child': l.child }));
    svg.append(s('text', { x: lx, y: ly, 'text-anchor': 'middle', fill: '#374151', class: 'edge-label', 'data-parent': l.parent, 'data-child': l.child },
      `${fmtNum(l.calls)} call${l.calls === 1 ? '' : 's'} · ${fmtRate(l.calls / lookback)}`));
  }
  for (const n of names) {
    const p = pos[n], st = stats[n];
    const g = s('g', { class: 'node', 'data-service': n });
    g.append(s('rect', { x: p.x, y: p.y, width: nodeW, height: nodeH, rx: 6, fill: '#fff', stroke: st && st.error_ratio >= 0.05 ? '#dc2626' : '#2563eb', 'stroke-width': 1.5 }));
    g.append(s('text', { x: p.x + 8, y: p.y + 18, 'font-weight': 600 }, n));
    g.append(s('text', { x: p.x + 8, y: p.y + 36, fill: '#6b7280' }, st ? `${st.gateway ? 'gateway ' : ''}${fmtRate(st.rate)} · ${fmtPct(st.error_ratio)} 5xx` : 'seen in traces only'));
    if (st) g.append(s('text', { x: p.x + 8, y: p.y + 50, fill: '#6b7280' }, `p99 ${fmtMS(st.p99_ms)}`));
    svg.append(g);
  }
  return svg;
}
