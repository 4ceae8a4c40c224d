// app.js: the dashboard's single-page application. Pages are addressed by
// path (/routes, /route/{name}, /traces/{traceID}, ...) so that every view
// has a shareable URL; the admin listener serves index.html for each.
import { h, clear, fmtNum, fmtRate, fmtPct, fmtMS, fmtBytes, spark, table, card } from './dom.js';
import { pages } from './pages.js';

const main = document.getElementById('main');
const liveEl = document.getElementById('live');

// state shared by the pages: the latest live snapshot and its listeners.
export const live = { data: null, listeners: new Set() };

function connect() {
  if (!window.EventSource) return;
  const es = new EventSource('/api/dashboard/stream');
  es.addEventListener('overview', ev => {
    try { live.data = JSON.parse(ev.data); } catch (e) { return; }
    liveEl.textContent = 'live';
    liveEl.className = 'live on';
    for (const f of live.listeners) f(live.data);
  });
  es.onerror = () => {
    liveEl.textContent = 'reconnecting';
    liveEl.className = 'live off';
  };
}

let current = null;

function route() {
  const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || 'overview';
  const page = pages[name] || pages.overview;
  if (current && current.leave) current.leave();
  live.listeners.clear();
  for (const a of document.querySelectorAll('#nav a')) {
    const p = a.getAttribute('data-page');
    a.classList.toggle('active', p === name || (name === 'route' && p === 'routes'));
  }
  clear(main);
  current = page(main, parts.slice(1), { live, navigate }) || {};
}

// navigate shows path without a page load.
export function navigate(path) {
  history.pushState(null, '', path);
  route();
}

document.addEventListener('click', ev => {
  const a = ev.target.closest && ev.target.closest('a');
  if (!a || a.target || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/') || href.startsWith('/api/') || href.startsWith('/assets/')) return;
  ev.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', route);

connect();
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route); else route();
