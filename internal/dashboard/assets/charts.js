// charts.js: time-series charts with the vendored uPlot.
import { h } from './dom.js';

const palette = ['#2563eb', '#dc2626', '#d97706', '#16a34a', '#7c3aed', '#0891b2'];

// lineChart returns an element holding a uPlot chart of series over the
// Unix-second times t. series: [{label, values, color}].
export function lineChart(title, t, series) {
  const box = h('div', { class: 'chart' }, h('div', { class: 'title' }, title));
  const U = window.uPlot;
  if (!U) { box.append(h('p', { class: 'muted' }, 'Charts are unavailable.')); return box; }
  const width = Math.max(300, Math.min(1360, (document.getElementById('main').clientWidth || 900) - 48));
  const opts = {
    width, height: 180,
    legend: { show: true },
    scales: { x: { time: true } },
    series: [{}].concat(series.map((s, i) => ({ label: s.label, stroke: s.color || palette[i % palette.length], width: 1.5, spanGaps: true }))),
    axes: [{}, { size: 60 }],
  };
  const data = [t].concat(series.map(s => s.values));
  // uPlot sizes itself in a connected element; build it on the next frame.
  requestAnimationFrame(() => { if (box.isConnected) new U(opts, data, box); });
  return box;
}
