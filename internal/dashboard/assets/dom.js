// dom.js: small DOM helpers. Data is only ever set with textContent and
// attributes, never parsed as HTML.

const SVGNS = 'http://www.w3.org/2000/svg';

// h builds an element: h('td', {class: 'num'}, 'text', child, ...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// s builds an SVG element.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear removes every child of el and returns it.
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
export function fmtRate(n) { return fmtNum(n, n < 10 ? 2 : 1) + '/s'; }
export function fmtPct(r) { return fmtNum((r || 0) * 100, 2) + '%'; }
export function fmtMS(ms) {
  if (!ms) return '0 ms';
  if (ms >= 1000) return fmtNum(ms / 1000, 2) + ' s';
  return fmtNum(ms, ms < 10 ? 2 : 1) + ' ms';
}
export function fmtBytes(b) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return fmtNum(b, i ? 1 : 0) + ' ' + u[i];
}

// spark draws values as a small SVG polyline.
export function spark(values, w = 90, hgt = 18) {
  const svg = s('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}` });
  if (!values || values.length < 2) return svg;
  const mx = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * w / (values.length - 1)).toFixed(1)},${(hgt - 1 - v * (hgt - 2) / mx).toFixed(1)}`);
  svg.append(s('polyline', { points: pts.join(' '), fill: 'none', stroke: '#2563eb', 'stroke-width': 1.5 }));
  return svg;
}

// table renders rows with sortable columns. cols: [{key, label, num, fmt,
// cell, sortKey}]; state keeps the sort across re-renders.
export function table(cols, rows, state, attrs) {
  state.sort = state.sort || cols[0].key;
  const col = cols.find(c => c.key === state.sort) || cols[0];
  const key = col.sortKey || (r => r[col.key]);
  const sorted = rows.slice().sort((a, b) => {
    const x = key(a), y = key(b);
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
    return state.asc ? c : -c;
  });
  const tbl = h('table', attrs || {});
  const tr = h('tr');
  for (const c of cols) {
    const th = h('th', { class: [c.num ? 'num' : '', c.key === state.sort ? 'sorted' : '', c.key === state.sort && state.asc ? 'asc' : ''].join(' ').trim(), 'data-key': c.key }, c.label);
    th.addEventListener('click', () => {
      if (state.sort === c.key) state.asc = !state.asc; else { state.sort = c.key; state.asc = !c.num; }
      state.rerender && state.rerender();
    });
    tr.append(th);
  }
  tbl.append(h('thead', {}, tr));
  const body = h('tbody');
  for (const r of sorted) {
    const row = h('tr', { 'data-name': r.name ?? '' });
    for (const c of cols) {
      let v = c.cell ? c.cell(r) : (c.fmt ? c.fmt(r[c.key], r) : r[c.key]);
      row.append(h('td', { class: c.num ? 'num' : '', 'data-col': c.key }, v));
    }
    body.append(row);
  }
  tbl.append(body);
  return tbl;
}

export function card(label, value, id, cls) {
  return h('div', { class: 'card' }, h('div', { class: 'k' }, label), h('div', { class: 'v ' + (cls || ''), id }, value));
}
