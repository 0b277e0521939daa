// The admin page: polls GET /api/nodes (docs/api.md) every second with the
// API key, shows every live node, totals, the busiest topics, and the
// cluster's throughput over the last two minutes on a canvas. The key comes
// from the form (kept in sessionStorage) or from ?key= for scripted use.
'use strict';

const POLL_MS = 1000;
const SAMPLES = 120;
const $ = (id) => document.getElementById(id);
const samples = []; // { t, out, in } per poll: rates summed over nodes
let previous = null; // node id -> { t, out, in } counters of the last poll
let timer = null;

const params = new URLSearchParams(location.search);
let key = params.get('key') || sessionStorage.getItem('switchboard-api-key') || '';
$('key').value = key;

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  key = $('key').value.trim();
  sessionStorage.setItem('switchboard-api-key', key);
  start();
});

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

function fmtBytes(n) {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.appendChild(td);
}

function render(nodes) {
  const tbody = $('nodes').querySelector('tbody');
  tbody.replaceChildren();
  const topics = $('topics').querySelector('tbody');
  topics.replaceChildren();
  let connections = 0; let slow = 0; let topicCount = 0;
  for (const n of nodes) {
    const row = document.createElement('tr');
    row.dataset.node = n.node;
    const byProto = Object.entries(n.connections).map(([p, c]) => `${p} ${c}`).join(', ') || 'none';
    connections += Object.values(n.connections).reduce((a, b) => a + b, 0);
    slow += n.slow_consumers_dropped;
    topicCount += n.topics;
    cell(row, n.node.slice(0, 8));
    cell(row, fmtDuration(n.uptime_ms));
    cell(row, byProto);
    cell(row, n.topics);
    cell(row, n.publications);
    cell(row, n.messages_out);
    cell(row, n.slow_consumers_dropped);
    cell(row, fmtBytes(n.rss_bytes));
    const bp = n.backplane;
    cell(row, bp.kind === 'redis' ? `redis ${bp.connected ? 'connected' : 'DISCONNECTED'}, lag ${bp.lag_last_ms} ms` : 'in memory (single node)');
    tbody.appendChild(row);
    for (const t of n.top_topics.slice(0, 10)) {
      const tr = document.createElement('tr');
      cell(tr, t.topic);
      cell(tr, t.subscribers);
      cell(tr, n.node.slice(0, 8));
      topics.appendChild(tr);
    }
  }
  $('total-nodes').textContent = nodes.length;
  $('total-connections').textContent = connections;
  $('total-topics').textContent = topicCount;
  $('total-slow').textContent = slow;
}

/** Adds a throughput sample from the counters' growth since the last poll. */
function sample(nodes) {
  const now = {};
  let out = 0; let pubs = 0; let dt = 0;
  for (const n of nodes) {
    now[n.node] = { t: n.time_ms, out: n.messages_out, in: n.publications };
    const p = previous && previous[n.node];
    if (p && n.time_ms > p.t) {
      const secs = (n.time_ms - p.t) / 1000;
      out += Math.max(0, n.messages_out - p.out) / secs;
      pubs += Math.max(0, n.publications - p.in) / secs;
      dt = 1;
    }
  }
  previous = now;
  if (!dt) return;
  samples.push({ out, in: pubs });
  if (samples.length > SAMPLES) samples.shift();
  $('rate-out').textContent = Math.round(out).toLocaleString();
  $('rate-out').dataset.last = String(out);
  $('rate-in').textContent = Math.round(pubs).toLocaleString();
  $('rate-in').dataset.last = String(pubs);
  draw();
}

function draw() {
  const canvas = $('chart');
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const style = getComputedStyle(document.documentElement);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...samples.map((s) => Math.max(s.out, s.in)));
  const pad = 30;
  ctx.strokeStyle = style.getPropertyValue('--border');
  ctx.fillStyle = style.getPropertyValue('--muted');
  ctx.font = '11px system-ui, sans-serif';
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + ((h - pad) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad + 20, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(Math.round(max * (1 - i / 4)).toLocaleString(), 2, y + 4);
  }
  const x = (i) => pad + 20 + ((w - pad - 20) * i) / (SAMPLES - 1);
  const y = (v) => pad / 2 + (h - pad) * (1 - v / max);
  for (const [field, color] of [['out', '--accent'], ['in', '--second']]) {
    ctx.strokeStyle = style.getPropertyValue(color);
    ctx.lineWidth = 2;
    ctx.beginPath();
    const offset = SAMPLES - samples.length;
    samples.forEach((s, i) => (i ? ctx.lineTo(x(offset + i), y(s[field])) : ctx.moveTo(x(offset + i), y(s[field]))));
    ctx.stroke();
  }
}

async function poll() {
  try {
    const res = await fetch('/api/nodes', { headers: { Authorization: `apikey ${key}` }, cache: 'no-store' });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      setStatus('error', body.error ? body.error.message : `HTTP ${res.status}`);
      return;
    }
    setStatus('ok', `live · ${new Date().toLocaleTimeString()}`);
    render(body.nodes);
    sample(body.nodes);
  } catch (err) {
    setStatus('error', `server unreachable (${err.message})`);
  }
}

function start() {
  if (timer) clearInterval(timer);
  samples.length = 0;
  previous = null;
  poll();
  timer = setInterval(poll, POLL_MS);
}

if (key) start();
