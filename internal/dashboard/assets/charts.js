// charts.js: time-series charts with the vendored uPlot.
import { h } from './dom.js';

const palette = ['#2563eb', '#dc2626', '#d97706', '#16a34a', '#7c3aed', '#0891b2'];

// lineChart returns an element holding a uPlot chart of series over the
// Unix-second times t. series: [{label, values, color}]. The chart takes
// the width of the element it is placed in. A series with a single sample
// (uPlot draws a line only between two) is drawn as points, and a chart of
// one time gets a minute of axis around it.
export function lineChart(title, t, series) {
  const box = h('div', { class: 'chart' }, h('div', { class: 'title' }, title));
  const U = window.uPlot;
  if (!U) { box.append(h('p', { class: 'muted' }, 'Charts are unavailable.')); return box; }
  const samples = vs => vs.reduce((n, v) => n + (v === null || v === undefined ? 0 : 1), 0);
  const opts = {
    height: 180,
    legend: { show: true },
    scales: { x: { time: true } },
    series: [{}].concat(series.map((s, i) => {
      const o = { label: s.label, stroke: s.color || palette[i % palette.length], width: 1.5, spanGaps: true };
      if (samples(s.values) <= 1) o.points = { show: true, size: 7, fill: o.stroke };
      return o;
    })),
    axes: [{}, { size: 60 }],
  };
  if (t.length === 1) opts.scales.x.range = () => [t[0] - 30, t[0] + 30];
  const data = [t].concat(series.map(s => s.values));
  // uPlot sizes itself in a connected element: build it on the first
  // frame the box is in the page (pages may place it after further
  // fetches; give up after about 10 s), as wide as the box.
  let frames = 0;
  const build = () => {
    if (!box.isConnected) {
      if (++frames < 600) requestAnimationFrame(build);
      return;
    }
    opts.width = Math.max(280, Math.min(1360, (box.clientWidth || 900) - 14));
    new U(opts, data, box);
  };
  requestAnimationFrame(build);
  return box;
}
